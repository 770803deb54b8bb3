"""A damaged audit store is named as damaged by every command; nothing is read from it as if it were sound."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3

import pytest

from tests.faults.helpers import no_traceback, run_main, sha256


@pytest.fixture
def damaged(stored_demo, tmp_path):
    """A copy of a stored demo run with 64 KiB of garbage written over the middle of the file."""
    source, run_id = stored_demo
    store = tmp_path / "audit.sqlite"
    shutil.copy(source, store)
    patient = sqlite3.connect(store).execute("SELECT patient_id FROM run_cohorts LIMIT 1").fetchone()[0]
    size = store.stat().st_size
    with store.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(random.Random(12).randbytes(64 * 1024))
    return store, run_id, patient


def test_every_command_says_the_store_is_damaged_and_changes_nothing(damaged, tmp_path, capsys):
    store, run_id, patient = damaged
    before = sha256(store)
    for args in (
        ["evaluate", "--demo"],
        ["runs", "list"],
        ["runs", "show", run_id],
        ["runs", "verify", run_id],
        ["report", run_id, "--out", str(tmp_path / "r.html")],
        ["cohort", run_id, "--out", str(tmp_path / "c.csv")],
        ["submission", run_id, "--out", str(tmp_path / "s.csv")],
        ["export", run_id, "--fhir-measure-report", str(tmp_path / "m.json")],
        ["explain", run_id, patient],
    ):
        ran = run_main(capsys, *args, "--store", str(store))
        no_traceback(ran)
        assert ran.code == 6, (args, ran.out, ran.err)
        assert "damaged" in ran.err and str(store) in ran.err and "backup" in ran.err, (args, ran.err)
        assert "identical" not in ran.out
        assert sha256(store) == before, args
    assert not any((tmp_path / name).exists() for name in ("r.html", "c.csv", "s.csv", "m.json"))


def test_store_check_lists_the_damage_and_exits_non_zero(damaged, capsys):
    store, _, _ = damaged
    ran = run_main(capsys, "store", "check", "--store", str(store))
    assert ran.code == 1 and "damaged" in ran.out
    no_traceback(ran)


def test_store_check_says_an_intact_store_is_intact(stored_demo, capsys):
    store, _ = stored_demo
    ran = run_main(capsys, "store", "check", "--store", str(store))
    assert ran.code == 0 and "intact" in ran.out, ran.err


def test_a_read_error_after_the_store_was_opened_is_a_message_naming_the_store(stored_demo, tmp_path):
    """Damage the check on opening cannot see (the file changed after it) still gives a message, never a traceback."""
    from sqlite_utils.db import Database

    from cquin.exceptions import StoreError
    from cquin.storefile import connect_read

    source, run_id = stored_demo
    store = tmp_path / "audit.sqlite"
    shutil.copy(source, store)
    size = store.stat().st_size
    with store.open("r+b") as fh:  # every page after the first overwritten
        fh.seek(16384)
        fh.write(b"\xff" * (size - 16384))
        fh.flush()
        os.fsync(fh.fileno())
    with pytest.raises(StoreError, match="damaged") as caught:
        # As a command opens it, without the check on opening; with a larger schema the damage may already
        # show when the connection reads the schema, else on the query: either way a message, not a traceback.
        db = Database(connect_read(store))
        list(db.query("SELECT * FROM run_subjects WHERE run_id = ?", [run_id]))
    assert str(store) in str(caught.value)
