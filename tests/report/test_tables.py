"""A run's long-format tables for BI tools: per-subject decisions, rejections, components and inputs, as Parquet and CSV."""

from __future__ import annotations

import csv
import sqlite3
import stat
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.exceptions import StoreError, UserError
from cquin.render.tables import write_tables
from cquin.store import decisions_for, open_store

from .conftest import DemoRun

NAMES = ("decisions", "rejections", "components", "inputs")


@pytest.fixture(scope="module")
def tables(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tables")
    write_tables(demo_run.store, demo_run.run_id, out)
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_every_table_is_written_as_parquet_and_csv_with_the_same_rows(tables: Path) -> None:
    for name in NAMES:
        parquet = pq.read_table(tables / f"{name}.parquet")
        assert parquet.num_rows == len(_csv(tables / f"{name}.csv")) > 0, name
        assert "run_id" in parquet.column_names


def test_decisions_are_one_row_per_subject_and_component_and_add_up_to_the_counts(demo_run: DemoRun, tables: Path) -> None:
    t = pq.read_table(tables / "decisions.parquet").to_pylist()
    for c in demo_run.evaluation.result.components:
        rows = [r for r in t if r["component"] == c.id]
        if c.numerator is None:
            assert rows == []
            continue
        assert sum(r["in_denominator"] for r in rows) == c.denominator, c.id
        assert sum(r["in_numerator"] for r in rows) == c.numerator, c.id
        assert {r["year"] for r in rows} == {c.year}


def test_a_patients_decisions_match_the_audit_store(demo_run: DemoRun, tables: Path) -> None:
    t = pq.read_table(tables / "decisions.parquet").to_pylist()
    mine = [r for r in t if r["subject_id"] == "9990000018"]
    stored = decisions_for(open_store(demo_run.store), demo_run.run_id, "9990000018")
    assert [(r["component"], r["in_denominator"], r["in_numerator"], r["rule"], r["fact"]) for r in mine] == [
        (d["component"], bool(d["in_denominator"]), bool(d["in_numerator"]), d["rule"], d["reason"]) for d in stored
    ]


def test_parquet_keeps_types_booleans_integers_and_exact_money(demo_run: DemoRun, tables: Path) -> None:
    d = pq.read_schema(tables / "decisions.parquet")
    assert (str(d.field("in_denominator").type), str(d.field("in_numerator").type)) == ("bool", "bool")
    comps = pq.read_table(tables / "components.parquet").to_pylist()
    assert str(pq.read_schema(tables / "components.parquet").field("payment").type) == "decimal128(18, 2)"
    result = demo_run.evaluation.result
    assert [r["payment"] for r in comps] == [c.payment for c in result.components]
    assert sum(r["payment_pence"] for r in comps) == sum(int(v * 100) for v in result.totals.values())
    assert all(isinstance(r["payment"], Decimal) for r in comps)


def test_rejections_carry_their_line_and_reason_group(demo_run: DemoRun, tables: Path) -> None:
    rows = pq.read_table(tables / "rejections.parquet").to_pylist()
    inputs = pq.read_table(tables / "inputs.parquet").to_pylist()
    assert len(rows) == sum(i["rejected"] for i in inputs)
    assert all(r["line"] > 1 and r["reason"] for r in rows)
    assert all(i["read"] == i["accepted"] + i["rejected"] for i in inputs)


def test_files_that_hold_nhs_numbers_are_owner_only(tables: Path) -> None:
    for name in ("decisions", "rejections"):
        for ext in ("parquet", "csv"):
            assert stat.S_IMODE((tables / f"{name}.{ext}").stat().st_mode) == 0o600


def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(demo_run: DemoRun, tmp_path: Path) -> None:
    store = tmp_path / "copy.sqlite"
    with sqlite3.connect(demo_run.store) as src, sqlite3.connect(store) as dst:
        src.backup(dst)  # the store is in WAL mode: a file copy could miss the last transactions
    db = open_store(store)
    db["run_rejections"].insert(
        {"run_id": demo_run.run_id, "file": "patients.csv", "line": 99, "value": '=HYPERLINK("x")', "reason": "-2+3 bad"}
    )
    write_tables(store, demo_run.run_id, tmp_path / "out")
    row = next(r for r in _csv(tmp_path / "out" / "rejections.csv") if r["line"] == "99")
    assert row["value"] == '\'=HYPERLINK("x")' and row["reason"] == "'-2+3 bad"
    parquet = next(r for r in pq.read_table(tmp_path / "out" / "rejections.parquet").to_pylist() if r["line"] == 99)
    assert parquet["value"] == '=HYPERLINK("x")'  # Parquet is typed, not a spreadsheet: values kept as they are


def test_an_unknown_run_is_a_clear_error_and_writes_nothing(demo_run: DemoRun, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no run"):
        write_tables(demo_run.store, "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_file_given_as_the_folder_is_refused(demo_run: DemoRun, tmp_path: Path) -> None:
    (tmp_path / "f").write_text("mine", encoding="utf-8")
    with pytest.raises(UserError, match="this is a file"):
        write_tables(demo_run.store, demo_run.run_id, tmp_path / "f")
    assert (tmp_path / "f").read_text(encoding="utf-8") == "mine"


def test_the_export_command_writes_the_tables(demo_run: DemoRun, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["export", demo_run.run_id, "--store", str(demo_run.store), "--tables", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "decisions (" in result.output
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == sorted(f"{n}.{e}" for n in NAMES for e in ("csv", "parquet"))
