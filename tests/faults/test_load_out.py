"""``cquin load --out``: the folder is written whole or refused; nothing from an earlier load survives.

A monthly job reusing one output folder used to keep last month's tables where
this month's export had none (LTC identification 2/2 where the truth is 0/2).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from tests.faults.helpers import no_traceback, run_main


def _records(tmp_path: Path, name: str, drop: tuple[str, ...] = ()) -> Path:
    folder = tmp_path / name
    shutil.copytree(DEMO_DIR, folder, ignore=shutil.ignore_patterns("README.md", *drop))
    return folder


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_second_load_without_conditions_leaves_no_conditions_from_the_first(tmp_path, capsys):
    out = tmp_path / "canonical"
    first = run_main(capsys, "load", str(_records(tmp_path, "april")), "--out", str(out))
    assert first.code == 0, first.err
    assert (out / "conditions.csv").exists()
    second = run_main(capsys, "load", str(_records(tmp_path, "may", drop=("conditions.csv",))), "--out", str(out))
    assert second.code == 0, second.err
    assert not (out / "conditions.csv").exists()
    report = json.loads((out / "load-report.json").read_text(encoding="utf-8"))
    assert "conditions" in report["tables_not_supplied"]
    assert "may" in report["source"]


def test_a_folder_holding_anything_else_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "shared"
    out.mkdir()
    (out / "minutes.docx").write_bytes(b"board minutes")
    (out / "patients.csv").write_text("someone else's\n")
    before = _listing(out)
    ran = run_main(capsys, "load", str(_records(tmp_path, "records")), "--out", str(out))
    no_traceback(ran)
    assert ran.code == 2 and "minutes.docx" in ran.err, ran.err
    assert _listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records", "shared"]  # no half-written folder beside it


def test_a_folder_of_canonical_files_not_written_by_cquin_load_is_refused(tmp_path, capsys):
    records = _records(tmp_path, "records")
    before = _listing(records)
    for out in (records, tmp_path / "copy"):
        if out != records:
            shutil.copytree(records, out)
        ran = run_main(capsys, "load", str(records), "--out", str(out))
        assert ran.code == 2, ran.err
    assert _listing(records) == before


def test_every_table_with_a_source_is_written_even_when_all_its_rows_were_rejected(tmp_path, capsys):
    records = _records(tmp_path, "records")
    (records / "training.csv").write_text("staff_id,completed_on,course\nS99999,not a date,x\n", encoding="utf-8")
    out = tmp_path / "out"
    ran = run_main(capsys, "load", str(records), "--out", str(out))
    assert ran.code == 0, ran.err
    with (out / "training.csv").open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert len(rows) == 1 and "staff_id" in rows[0]


def test_load_output_is_owner_only_at_any_umask(tmp_path, capsys):
    old = os.umask(0)
    try:
        ran = run_main(capsys, "load", str(_records(tmp_path, "records")), "--out", str(tmp_path / "new" / "out"))
    finally:
        os.umask(old)
    assert ran.code == 0, ran.err
    out = tmp_path / "new" / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {p.name: 0o600 for p in out.iterdir()}


def test_formula_cells_are_neutralised_in_the_canonical_files(tmp_path, capsys):
    records = _records(tmp_path, "records")
    for name in ("staff.csv", "conversations.csv"):
        path = records / name
        path.write_text(path.read_text(encoding="utf-8").replace("S00003", "=S3+SUM(A1:A9)"), encoding="utf-8")
    out = tmp_path / "out"
    ran = run_main(capsys, "load", str(records), "--out", str(out))
    assert ran.code == 0, ran.err
    for name in ("staff.csv", "conversations.csv"):
        cells = [c for row in csv.reader((out / name).open(encoding="utf-8")) for c in row]
        assert "'=S3+SUM(A1:A9)" in cells, name
        assert not any(c.startswith(("=", "+", "@")) for c in cells), name


def test_a_load_that_fails_part_way_leaves_the_earlier_folder_as_it_was(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert run_main(capsys, "load", str(_records(tmp_path, "april")), "--out", str(out)).code == 0
    before = _listing(out)
    import cquin.runner

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cquin.runner, "_write_load", full)
    ran = run_main(capsys, "load", str(_records(tmp_path, "may")), "--out", str(out))
    no_traceback(ran)
    assert ran.code == 7 and "no space left on" in ran.err, ran.err
    assert _listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["april", "may", "out"]


@pytest.mark.parametrize("bad", ["file", "dangling link"])
def test_an_out_path_that_is_not_a_folder_is_refused(tmp_path, capsys, bad):
    out = tmp_path / "out"
    if bad == "file":
        out.write_text("x")
    else:
        out.symlink_to(tmp_path / "nowhere")
    ran = run_main(capsys, "load", str(_records(tmp_path, "records")), "--out", str(out))
    assert ran.code == 2, ran.err
    no_traceback(ran)
