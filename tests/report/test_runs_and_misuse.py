"""Issue 16 items 7 and 9: naming runs (full ids, latest, ambiguous prefixes), readable and JSON `runs` output,
verifying against a copy of the inputs, and one-line refusals of misuse (never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from cquin.demo import DEMO_DIR
from cquin.exceptions import StoreError
from cquin.render.runs import render_run, render_run_list
from cquin.runner import run_evaluation, verify_run
from cquin.store import list_runs, load_run, open_store, resolve_run_id

from .conftest import CONTRACT_VALUE, DemoRun


def cquin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "cquin.cli", *args], cwd=cwd, capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """Two runs of a copy of the demo data in one store (their ids share the date prefix)."""
    base = tmp_path_factory.mktemp("runs")
    data = base / "records"
    shutil.copytree(DEMO_DIR, data)
    store = base / "audit.sqlite"
    ids = []
    for value in (CONTRACT_VALUE, None):
        ev = run_evaluation(data, contract_value=value, store=store)
        assert ev.run_id is not None
        ids.append(ev.run_id)
        ev.dataset.con.close()
    return store, ids, data


def test_latest_names_the_last_run_started(two_runs: tuple[Path, list[str], Path]) -> None:
    store, ids, _ = two_runs
    assert resolve_run_id(open_store(store), "latest") == ids[-1]


def test_an_ambiguous_prefix_lists_the_candidates(two_runs: tuple[Path, list[str], Path]) -> None:
    store, ids, _ = two_runs
    with pytest.raises(StoreError) as err:
        load_run(open_store(store), "2")
    assert "ambiguous" in str(err.value) and all(i in str(err.value) for i in ids)


def test_a_unique_prefix_and_a_missing_run(two_runs: tuple[Path, list[str], Path]) -> None:
    store, ids, _ = two_runs
    assert load_run(open_store(store), ids[0][:-1]).run["run_id"] == ids[0]
    with pytest.raises(StoreError, match="no run 'nope'"):
        load_run(open_store(store), "nope")


def test_runs_list_shows_every_run_id_whole_at_80_columns(two_runs: tuple[Path, list[str], Path]) -> None:
    store, ids, _ = two_runs
    console = Console(width=80, record=True, color_system=None)
    render_run_list(console, list_runs(open_store(store)))
    text = console.export_text()
    assert all(i in text for i in ids)
    assert "no contract value" in text  # the second run was given none: not £0.00


def test_runs_show_is_readable(two_runs: tuple[Path, list[str], Path]) -> None:
    store, ids, _ = two_runs
    console = Console(width=80, record=True, color_system=None)
    render_run(console, load_run(open_store(store), ids[0]))
    text = " ".join(console.export_text().split())  # words, whatever the wrapping
    assert "pays 70% of a 30% share" in text and "pays 0.7" not in text
    assert "{" not in text  # no raw JSON
    assert "contract value £12,000,000.00 x 0.25% weighting" in text and "Total: £49,800.00 earned of £60,000.00" in text


def test_runs_list_and_show_as_json(two_runs: tuple[Path, list[str], Path], tmp_path: Path) -> None:
    store, ids, _ = two_runs
    done = cquin("runs", "list", "--store", str(store), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r["run_id"] for r in json.loads(done.stdout)] == ids
    done = cquin("runs", "show", "latest", "--store", str(store), "--format", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["run_id"] == ids[-1] and doc["basis"]["earned"] is None  # no contract value given


def test_runs_verify_against_a_copy_of_the_inputs_elsewhere(two_runs: tuple[Path, list[str], Path], tmp_path: Path) -> None:
    store, ids, data = two_runs
    copy = tmp_path / "elsewhere"
    shutil.copytree(data, copy)
    moved = tmp_path / "moved"
    data.rename(moved)  # the run's own folder is gone
    try:
        assert not verify_run(store, ids[0]).identical
        v = verify_run(store, ids[0], inputs=copy)
        assert v.identical, v.problems
        (copy / "staff.csv").write_text((copy / "staff.csv").read_text() + "\n", encoding="utf-8")
        changed = verify_run(store, ids[0], inputs=copy)
        assert not changed.identical and any("staff.csv" in p for p in changed.problems)
    finally:
        moved.rename(data)


MISUSE = [
    (["submission", "RUN", "--out", "{tmp}/no/such/folder/s.csv"], "does not exist"),
    (["submission", "RUN", "--out", "{tmp}"], "is a folder"),
    (["cohort", "RUN", "--out", "{tmp}/missing/c.csv"], "does not exist"),
    (["report", "RUN", "--out", "{tmp}"], "is a folder"),
    (["export", "RUN", "--fhir-measure-report", "{tmp}/missing/m.json"], "does not exist"),
    (["export", "RUN", "--xlsx", "{tmp}"], "is a folder"),
    (["worklist", "RUN", "--out", "{tmp}/missing/w.csv"], "does not exist"),
    (["evaluate", "{tmp}", "--demo", "--no-store"], "not both"),
    (["evaluate", "--demo", "--no-store", "--publish"], "--publish"),
]


@pytest.mark.parametrize(("args", "says"), MISUSE)
def test_misuse_is_one_line_never_a_traceback(demo_run: DemoRun, tmp_path: Path, args: list[str], says: str) -> None:
    filled = [a.replace("{tmp}", str(tmp_path)).replace("RUN", demo_run.run_id) for a in args]
    done = cquin(*filled, "--store", str(demo_run.store), cwd=tmp_path) if args[0] != "evaluate" else cquin(*filled, cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert says in lines[0]


def test_evaluate_many_with_a_bad_out_stores_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(f"providers:\n  - name: Demo\n    source: {DEMO_DIR}\n    contract_value: 12000000\n", encoding="utf-8")
    store = tmp_path / "audit.sqlite"
    done = cquin(
        "evaluate-many", str(manifest), "--out", str(tmp_path / "missing" / "c.html"), "--store", str(store), cwd=tmp_path
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not store.exists() or list_runs(open_store(store)) == []


def test_without_a_contract_value_the_terminal_says_so_not_zero(tmp_path: Path) -> None:
    done = cquin("evaluate", "--demo", "--no-store", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no contract value given" in done.stdout and "£0.00" not in done.stdout


def test_help_shows_plain_types(tmp_path: Path) -> None:
    done = cquin("evaluate", "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "<bool>" not in done.stdout and "list[str]" not in done.stdout


def test_latest_of_two_runs_started_in_the_same_second_is_the_one_stored_last(two_runs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    store, ids, _ = two_runs
    copy = tmp_path / "same-second.sqlite"
    shutil.copy(store, copy)
    con = sqlite3.connect(copy)
    con.execute("UPDATE runs SET started_at = (SELECT min(started_at) FROM runs)")
    con.commit()
    con.close()
    for _ in range(3):
        assert resolve_run_id(open_store(copy), "latest") == ids[-1]
