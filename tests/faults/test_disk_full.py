"""A full disk is said as such: which file system, and what needed the space; nothing partial is kept.

Real faults where the machine allows (a small tmpfs, mounted as root), and
SQLite's own "disk is full" (a page limit on the connection) everywhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from tests.faults.helpers import cquin_process, no_traceback


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.slow
def test_a_full_temporary_folder_says_no_space_left_and_leaves_nothing_there(small_fs, tmp_path):
    tmpdir = small_fs("600k")  # room for cquin's folder, not for the data engine's work file
    ran = cquin_process(
        "evaluate",
        "--demo",
        "--store",
        str(tmp_path / "audit.sqlite"),
        cwd=tmp_path,
        env={"TMPDIR": str(tmpdir), "CQUIN_WORK_STORAGE": "disk"},
    )
    no_traceback(ran)
    assert ran.code == 7, ran.err
    assert f"no space left on {tmpdir}" in ran.err and "TMPDIR" in ran.err and "temporary" in ran.err, ran.err
    assert _leftovers(tmpdir) == []


@pytest.mark.slow
def test_a_full_temporary_folder_while_copying_an_input_names_the_copy(small_fs, tmp_path):
    records = tmp_path / "records"
    shutil.copytree(DEMO_DIR, records)
    patients = records / "patients.csv"
    lines = patients.read_text(encoding="utf-8").splitlines(keepends=True)
    # Blank lines make cquin read a copy without them (to keep line numbers exact); make it larger than the folder.
    patients.write_text(lines[0] + "".join(line + "\n" for line in lines[1:] * 60), encoding="utf-8")
    tmpdir = small_fs("256k")
    ran = cquin_process(
        "evaluate", str(records), "--no-store", cwd=tmp_path, env={"TMPDIR": str(tmpdir), "CQUIN_WORK_STORAGE": "memory"}
    )
    no_traceback(ran)
    assert ran.code == 7, ran.err
    assert f"no space left on {tmpdir}" in ran.err and "copy of patients.csv" in ran.err, ran.err
    assert _leftovers(tmpdir) == []


@pytest.mark.slow
def test_a_full_disk_under_the_store_keeps_the_runs_it_had_and_says_so(small_fs, tmp_path):
    import os

    disk = small_fs("8m")
    store = disk / "audit.sqlite"
    first = cquin_process("evaluate", "--demo", "--store", str(store), "--format", "json", cwd=tmp_path)
    assert first.code == 0, first.err
    st = os.statvfs(disk)
    with (disk / "filler").open("wb") as fh:  # leave 256 KB: far less than a run needs
        fh.write(b"\0" * (st.f_bavail * st.f_frsize - 256 * 1024))
    second = cquin_process("evaluate", "--demo", "--store", str(store), cwd=tmp_path)
    no_traceback(second)
    assert second.code == 7, second.err
    assert f"no space left on {disk}" in second.err and "audit store" in second.err, second.err
    assert "cannot rollback" not in second.err
    listed = cquin_process("store", "check", "--store", str(store), cwd=tmp_path)
    assert listed.code == 0 and "1 runs" in listed.out, listed.out + listed.err


def test_sqlite_reporting_the_disk_full_during_the_store_write_is_no_space_and_stores_nothing(tmp_path, monkeypatch):
    """The same without a mount: SQLite's SQLITE_FULL, from a page limit on the store's connection."""
    import sqlite3

    from cquin import storefile
    from cquin.exceptions import ResourceError
    from cquin.runner import run_evaluation

    store = tmp_path / "audit.sqlite"
    real = storefile.connect_write

    def limited(path, identity):  # type: ignore[no-untyped-def]
        con = real(path, identity)
        con.execute("PRAGMA max_page_count = 40")  # a few pages more than the empty store's tables
        return con

    monkeypatch.setattr(storefile, "connect_write", limited)
    with pytest.raises(ResourceError, match="no space left on") as caught:
        run_evaluation(DEMO_DIR, store=store)
    assert str(store) in str(caught.value) and "nothing in the store changed" in str(caught.value)
    con = sqlite3.connect(store)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM run_components").fetchone()[0] == 0
