"""The audit store identifies itself, and cquin never writes a file that is not its own.

A file given as ``--store`` is a new (absent or empty) file, a cquin store, or
refused before a byte is written, whatever the command.  Reading commands
open the store read-only: they never write, migrate or wait behind a writer,
and they work on a store the user may not write.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from cquin.store import SCHEMA_VERSION, open_store
from cquin.storefile import APPLICATION_ID
from tests.faults.helpers import no_traceback, run_main, sha256

RUN = "20170401T000000-abcdef"


def _sqlite(path: Path, *statements: str) -> None:
    con = sqlite3.connect(path)
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()


FOREIGN: dict[str, Callable[[Path], None]] = {
    "another program's tables": lambda p: _sqlite(
        p, "CREATE TABLE patients (nhs_number TEXT, name TEXT)", "INSERT INTO patients VALUES ('9990000018', 'A')"
    ),
    "its own runs table": lambda p: _sqlite(
        p, "CREATE TABLE runs (id INTEGER PRIMARY KEY, started TEXT)", "INSERT INTO runs (started) VALUES ('2017-04-01')"
    ),
    "write-ahead logged": lambda p: _sqlite(p, "PRAGMA journal_mode = WAL", "CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"),
    "another application id": lambda p: _sqlite(p, "PRAGMA application_id = 1598903374", "CREATE TABLE t (x)"),
    "no tables, user version 1": lambda p: _sqlite(p, "PRAGMA user_version = 1"),
    "tables named like cquin's": lambda p: _sqlite(
        p,
        "PRAGMA user_version = 1",
        *(
            f"CREATE TABLE {t} (run_id TEXT)"
            for t in ("runs", "run_inputs", "run_components", "run_milestones", "run_cohorts", "run_subjects")
        ),
    ),
    "a CSV file": lambda p: p.write_text("nhs_number,date_of_birth\n9990000018,1941-06-01\n", encoding="utf-8"),
}


def _commands(tmp: Path) -> list[list[str]]:
    manifest = tmp / "providers.yaml"
    manifest.write_text(f"providers:\n  - name: demo\n    source: {DEMO_DIR}\n    contract_value: 1000\n", encoding="utf-8")
    return [
        ["evaluate", "--demo"],
        ["evaluate-many", str(manifest)],
        ["runs", "list"],
        ["runs", "show", RUN],
        ["runs", "verify", RUN],
        ["report", RUN, "--out", str(tmp / "report.html")],
        ["cohort", RUN, "--out", str(tmp / "cohort.csv")],
        ["submission", RUN, "--out", str(tmp / "submission.csv")],
        ["export", RUN, "--fhir-measure-report", str(tmp / "measure.json")],
        ["export", RUN, "--tables", str(tmp / "tables")],
        ["explain", RUN, "9990000018"],
        ["store", "check"],
        ["store", "migrate"],
    ]


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_no_command_changes_a_byte_of_a_file_that_is_not_a_cquin_store(tmp_path, capsys, kind):
    foreign = tmp_path / "other.db"
    FOREIGN[kind](foreign)
    before = sha256(foreign)
    listing = sorted(p.name for p in tmp_path.iterdir())
    for args in _commands(tmp_path):
        ran = run_main(capsys, *args, "--store", str(foreign))
        no_traceback(ran)
        assert ran.code == 6, (args, ran.err)
        assert "not a cquin audit store" in ran.err and "other.db" in ran.err, (args, ran.err)
        assert sha256(foreign) == before, args
    # Nor anything beside it: no journal, WAL or shared-memory file, no output file.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(listing + ["providers.yaml"])


def test_a_folder_or_a_device_given_as_the_store_is_refused(tmp_path, capsys):
    for where, says in ((tmp_path, "is a folder"), (Path("/dev/zero"), "not a regular file")):
        ran = run_main(capsys, "runs", "list", "--store", str(where))
        assert ran.code == 6 and says in ran.err, ran.err
        no_traceback(ran)


def test_an_absent_or_empty_file_becomes_a_store_that_names_itself(tmp_path):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for path in (tmp_path / "new.sqlite", empty):
        open_store(path).conn.close()
        header = path.read_bytes()[:100]
        assert int.from_bytes(header[68:72], "big") == APPLICATION_ID
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert dict(con.execute("SELECT key, value FROM cquin_store"))["format"] == "cquin audit store"
        con.close()


def test_reading_commands_refuse_an_absent_or_empty_store_without_creating_it(tmp_path, capsys):
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    for path in (tmp_path / "absent.sqlite", empty):
        ran = run_main(capsys, "runs", "list", "--store", str(path))
        assert ran.code == 6 and "no audit store here" in ran.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]
    assert empty.stat().st_size == 0


def _unmarked_store(path: Path, version: int) -> None:
    """A store as cquin wrote it before stores identified themselves: application id 0, tables without keys."""
    from sqlite_utils.db import Database

    from cquin.store.schema import FORMAT4_TRACE_TABLES, TABLES

    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    db = Database(con)
    old_columns = {"reason_group", "available_pence", "payment_pence", "payment_fraction_numerator"}
    old_columns |= {"payment_fraction_denominator", "share_numerator", "share_denominator"}
    for name, spec in {**TABLES, **FORMAT4_TRACE_TABLES}.items():
        if version == 1 and name == "run_totals":
            continue
        columns = {c: t for c, t in spec["columns"].items() if version > 1 or c not in old_columns}
        db.table(name).create(columns, pk=spec.get("pk"))
    if version >= 3:
        from cquin.storeguards import create_signoff_tables

        create_signoff_tables(db)
    con.execute(f"PRAGMA user_version = {version}")
    con.close()


def test_reading_commands_ask_for_a_migration_of_a_store_too_old_to_read_and_change_nothing(tmp_path, capsys):
    store = tmp_path / "old.sqlite"
    _unmarked_store(store, 1)
    before = sha256(store)
    for args in (["runs", "list"], ["runs", "show", RUN], ["report", RUN]):
        ran = run_main(capsys, *args, "--store", str(store))
        no_traceback(ran)
        assert ran.code == 6 and "cquin store migrate" in ran.err, ran.err
    assert run_main(capsys, "store", "check", "--store", str(store)).code == 0
    assert sha256(store) == before
    migrated = run_main(capsys, "store", "migrate", "--store", str(store))
    assert migrated.code == 0 and f"from format 1 to {SCHEMA_VERSION}" in migrated.out, migrated.err
    assert run_main(capsys, "runs", "list", "--store", str(store)).code == 0
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA foreign_key_list(run_subjects)").fetchall()  # format 2's keys, added on the way
    con.close()


def test_a_store_of_the_format_before_the_marker_is_read_as_it_is(tmp_path, capsys):
    store = tmp_path / "format3.sqlite"
    _unmarked_store(store, 3)
    before = sha256(store)
    ran = run_main(capsys, "runs", "list", "--store", str(store))
    assert ran.code == 0, ran.err
    assert sha256(store) == before
    assert run_main(capsys, "evaluate", "--demo", "--store", str(store), "--format", "json").code == 0
    con = sqlite3.connect(store)
    assert con.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 1
    con.close()


def test_a_store_from_a_newer_cquin_is_refused_unchanged(tmp_path, capsys):
    store = tmp_path / "new.sqlite"
    open_store(store).conn.close()
    _sqlite(store, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = sha256(store)
    for args in (["runs", "list"], ["evaluate", "--demo"]):
        ran = run_main(capsys, *args, "--store", str(store))
        assert ran.code == 6 and "newer cquin" in ran.err, ran.err
    assert sha256(store) == before


def test_reading_commands_do_not_write_a_cquin_store(stored_demo, tmp_path, capsys):
    source, run_id = stored_demo
    store = tmp_path / "audit.sqlite"
    shutil.copy(source, store)
    before = sha256(store)
    patient = sqlite3.connect(store).execute("SELECT patient_id FROM run_cohorts LIMIT 1").fetchone()[0]
    for args in (
        ["runs", "list"],
        ["runs", "show", run_id],
        ["report", run_id, "--out", str(tmp_path / "r.html")],
        ["cohort", run_id, "--out", str(tmp_path / "c.csv")],
        ["submission", run_id, "--out", str(tmp_path / "s.csv")],
        ["export", run_id, "--fhir-measure-report", str(tmp_path / "m.json")],
        ["export", run_id, "--tables", str(tmp_path / "tables")],
        ["explain", run_id, patient],
        ["store", "check"],
    ):
        ran = run_main(capsys, *args, "--store", str(store))
        assert ran.code == 0, (args, ran.err)
    assert sha256(store) == before


# --------------------------------------------------------------------------- a store the user cannot write


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder whose files cannot be written: a read-only mount as root (who ignores permissions), else chmod."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder
        os.chmod(folder, 0o700)
        for p in folder.iterdir():
            os.chmod(p, 0o600)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a file system here to make a read-only folder for root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _make_read_only(folder: Path) -> None:
    if os.geteuid() == 0:
        assert subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True).returncode == 0
    else:
        for p in folder.iterdir():
            os.chmod(p, 0o400)
        os.chmod(folder, 0o500)


def test_reading_commands_work_on_a_store_in_a_read_only_folder(stored_demo, read_only_folder, capsys):
    source, run_id = stored_demo
    store = read_only_folder / "audit.sqlite"
    shutil.copy(source, store)
    _make_read_only(read_only_folder)
    for args in (["runs", "list"], ["runs", "show", run_id], ["store", "check"]):
        ran = run_main(capsys, *args, "--store", str(store))
        assert ran.code == 0, (args, ran.err)
        assert args[0] != "store" or "intact" in ran.out
    written = run_main(capsys, "evaluate", "--demo", "--store", str(store))
    no_traceback(written)
    assert written.code == 6 and "read-only" in written.err, written.err


# --------------------------------------------------------------------------- readers never wait


@pytest.mark.slow
def test_a_reader_lists_the_committed_runs_at_once_while_a_writer_holds_the_store(stored_demo, tmp_path):
    source, run_id = stored_demo
    store = tmp_path / "audit.sqlite"
    shutil.copy(source, store)
    ready = tmp_path / "locked"
    # Another process holds the write lock with an uncommitted run, as a long `cquin evaluate` does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time, pathlib\n"
            f"c = sqlite3.connect({str(store)!r}, isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "c.execute(\"INSERT INTO runs (run_id) VALUES ('uncommitted')\")\n"
            f"pathlib.Path({str(ready)!r}).touch()\n"
            "time.sleep(120)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 90
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        started = time.monotonic()
        from cquin.store import list_runs

        listed = [r["run_id"] for r in list_runs(open_store(store, read_only=True))]
        took = time.monotonic() - started
        assert holder.poll() is None  # the writer still holds its lock
    finally:
        holder.kill()
        holder.wait()
    assert listed == [run_id]  # the committed run, not the writer's uncommitted one
    assert took < 30  # milliseconds really; a reader waiting behind the writer would wait the writer's 120 s


def test_an_existing_store_readable_by_others_is_made_owner_only_when_written(tmp_path):
    store = tmp_path / "audit.sqlite"
    open_store(store).conn.close()
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(store) + suffix)
        if not p.exists():
            p.touch()
        os.chmod(p, 0o644)
    db = open_store(store)
    db.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    db.conn.close()
    assert modes == {"audit.sqlite": 0o600, "audit.sqlite-wal": 0o600, "audit.sqlite-shm": 0o600}, modes


def test_a_store_in_a_new_folder_is_made_owner_only_at_any_umask(tmp_path):
    old = os.umask(0)
    try:
        open_store(tmp_path / "a" / "b" / "audit.sqlite").conn.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


def test_an_existing_store_readable_by_others_is_made_owner_only_when_read(stored_demo, tmp_path, capsys):
    source, _ = stored_demo
    store = tmp_path / "audit.sqlite"
    shutil.copy(source, store)
    os.chmod(store, 0o644)
    before = sha256(store)
    assert run_main(capsys, "runs", "list", "--store", str(store)).code == 0
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert sha256(store) == before
