"""Results out: the audit store keeps whole runs only, and the commands that read it tell the truth.

A run is written in one transaction, so a failure or a kill part-way leaves no
trace of it; two evaluations writing at once both land; ``runs verify`` notices
a changed input; the store file is readable by its owner only; ``explain``,
``cohort`` and ``submission`` read a stored run; ``evaluate --format json`` has
the documented shape; and user mistakes exit non-zero with one line, no traceback.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from cquin.demo.generate import generate
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import canonical_json, load_ruleset
from cquin.loading import load_dataset
from cquin.store import open_store, record_run
from cquin.store.schema import RUN_TABLES as ALL_RUN_TABLES

RUN_TABLES = list(ALL_RUN_TABLES)
COMPONENT_IDS = [
    "y1.plan",
    "y1.ltc_identification",
    "y1.activation_assessment",
    "y1.staff_training",
    "y2.conversations",
    "y2.activation_improvement",
]


def cquin(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}  # wide enough that tables show whole run ids
    return subprocess.run(
        [sys.executable, "-m", "cquin.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env
    )


def cquin_popen(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cquin.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd
    )


def rows_for(db_path: Path, run_id: str) -> dict[str, int]:
    with sqlite3.connect(db_path) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0] for t in RUN_TABLES}


def assert_only_complete_runs(db_path: Path) -> list[str]:
    """The store is intact and every run in it is whole: a runs row with its components and subjects, no orphans."""
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = [r[0] for r in con.execute("SELECT run_id FROM runs")]
        for run_id in runs:
            for t in ("run_inputs", "run_components", "run_cohorts", "run_subjects"):
                assert con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0] > 0, (run_id, t)
            assert con.execute("SELECT count(*) FROM run_components WHERE run_id = ?", [run_id]).fetchone()[0] == len(
                COMPONENT_IDS
            )
        for t in RUN_TABLES:
            orphans = con.execute(f"SELECT count(*) FROM {t} WHERE run_id NOT IN (SELECT run_id FROM runs)").fetchone()[0]
            assert orphans == 0, t
    finally:
        con.close()
    open_store(db_path).conn.close()  # and cquin itself opens it cleanly
    return runs


# --------------------------------------------------------------------------- (a) one transaction per run


@pytest.fixture(scope="module")
def demo_evaluated():
    rs = load_ruleset("cquin_2017_19")
    dataset, adapter = load_dataset(DEMO_DIR, rs.vocabulary())
    return rs, dataset, adapter, evaluate(rs, dataset)


def _record(db, rs, dataset, adapter, result, run_id: str) -> str:
    now = dt.datetime.now(dt.UTC)
    return record_run(
        db,
        result,
        dataset,
        run_id=run_id,
        started_at=now,
        adapter=adapter,
        source=str(DEMO_DIR),
        ruleset_source=str(rs.path),
        parameters={},
        ruleset_json=canonical_json(rs.doc),
    )


def test_a_run_that_fails_part_way_through_writing_leaves_nothing(tmp_path, demo_evaluated, monkeypatch):
    rs, dataset, adapter, result = demo_evaluated
    path = tmp_path / "audit.sqlite"
    db = open_store(path)
    _record(db, rs, dataset, adapter, result, "kept-run")
    import cquin.store.write

    real_copy = cquin.store.write._copy
    calls = []

    def copy_then_fail(db, dataset, sql, table, *args):  # type: ignore[no-untyped-def]
        calls.append(table)
        if table == "run_subjects":  # the last and largest write, after every other table has rows for the run
            real_copy(db, dataset, sql, table, *args)
            raise OSError("disk full")
        return real_copy(db, dataset, sql, table, *args)

    monkeypatch.setattr(cquin.store.write, "_copy", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _record(db, rs, dataset, adapter, result, "failed-run")
    assert "run_subjects" in calls  # it really got that far
    db.conn.close()

    assert set(rows_for(path, "failed-run").values()) == {0}
    assert assert_only_complete_runs(path) == ["kept-run"]
    assert (
        rows_for(path, "kept-run")["run_subjects"]
        == dataset.con.execute(f"SELECT count(DISTINCT id) FROM ({result.trace.decisions_sql()})").fetchone()[0]
    )


@pytest.fixture(scope="module")
def large_dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("large") / "records"
    generate(folder, 20_000, 2017, bad_rows=True)
    return folder


# WAL sizes at which to kill: early in the write, in the middle and late (a complete run writes some 13 MB).
KILL_AT_WAL_BYTES = [64 * 1024, 3 * 1024 * 1024, 9 * 1024 * 1024]


@pytest.mark.slow
@pytest.mark.parametrize("wal_bytes", KILL_AT_WAL_BYTES, ids=["early", "middle", "late"])
def test_sigkill_during_the_store_write_leaves_no_partial_run(tmp_path, large_dataset, wal_bytes):
    store = tmp_path / "audit.sqlite"
    open_store(store).conn.close()  # tables created up front, so the WAL grows only with the run itself
    wal = Path(str(store) + "-wal")
    proc = cquin_popen("evaluate", str(large_dataset), "--store", str(store), "--format", "json", cwd=tmp_path)
    threshold = wal_bytes + random.randrange(64 * 1024)
    deadline = time.monotonic() + 240
    killed = False
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if wal.exists() and wal.stat().st_size >= threshold:
                proc.send_signal(signal.SIGKILL)
                killed = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed:
            proc.kill()
        proc.communicate(timeout=60)
    runs = assert_only_complete_runs(store)
    if killed:
        assert proc.returncode == -signal.SIGKILL
        assert len(runs) <= 1  # none, or (if the kill landed just after the commit) the whole run
    else:  # the run finished before the WAL reached the kill point
        assert proc.returncode == 0, proc.stderr
        assert len(runs) == 1


# --------------------------------------------------------------------------- (b) two writers at once


@pytest.mark.slow
def test_two_evaluations_writing_at_once_both_land(tmp_path):
    store = tmp_path / "audit.sqlite"
    open_store(store).conn.close()
    procs = [cquin_popen("evaluate", "--demo", "--store", str(store), "--format", "json", cwd=tmp_path) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    run_ids = sorted(json.loads(out)["run_id"] for out, _ in outputs)
    assert len(set(run_ids)) == 2
    assert sorted(assert_only_complete_runs(store)) == run_ids
    listed = cquin("runs", "list", "--store", str(store), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(run_id in listed.stdout for run_id in run_ids)


# --------------------------------------------------------------------------- (c) verify


def test_runs_verify_says_identical_then_names_a_changed_input_file(tmp_path):
    from cquin.runner import run_evaluation

    folder = tmp_path / "records"
    shutil.copytree(DEMO_DIR, folder)
    store = tmp_path / "audit.sqlite"
    run_id = run_evaluation(folder, store=store).run_id
    assert run_id is not None

    same = cquin("runs", "verify", run_id, "--store", str(store), cwd=tmp_path)
    assert same.returncode == 0, same.stderr
    assert "identical" in same.stdout

    with (folder / "conditions.csv").open("a", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerow(["9990000018", "snomed", "44054006", "2017-06-01"])
    changed = cquin("runs", "verify", run_id, "--store", str(store), cwd=tmp_path)
    assert changed.returncode != 0
    assert "NOT verified" in changed.stdout
    assert "conditions.csv has changed" in changed.stdout
    assert "patients.csv" not in changed.stdout  # only the changed file is named


# --------------------------------------------------------------------------- (d) owner-only


def test_the_audit_store_is_readable_by_its_owner_only(tmp_path):
    old = os.umask(0)  # even when the user's umask would let everyone read new files
    try:
        db = open_store(tmp_path / "audit.sqlite")
        db.execute("CREATE TABLE t (x)")  # make SQLite write its WAL and shared-memory files too
        files = sorted(tmp_path.iterdir())
        modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
        db.conn.close()
    finally:
        os.umask(old)
    assert modes["audit.sqlite"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes  # the WAL holds NHS numbers too


# --------------------------------------------------------------------------- (e), (f) reading a stored demo run


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``cquin evaluate --demo --format json`` into a fresh store: (folder, store, run id, the JSON document)."""
    folder = tmp_path_factory.mktemp("demo-run")
    store = folder / "audit.sqlite"
    done = cquin("evaluate", "--demo", "--store", str(store), "--format", "json", "--contract-value", "12000000", cwd=folder)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    return folder, store, doc["run_id"], doc


def year1_cohort(store: Path, run_id: str) -> list[str]:
    with sqlite3.connect(store) as con:
        q = "SELECT patient_id FROM run_cohorts WHERE run_id = ? AND cohort = 'year1' ORDER BY patient_id"
        return [r[0] for r in con.execute(q, [run_id])]


def test_explain_shows_a_cohort_patients_rules_and_citations(demo_run):
    folder, store, run_id, _ = demo_run
    patient = year1_cohort(store, run_id)[0]
    done = cquin("explain", run_id, patient, "--store", str(store), cwd=folder)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert f"{patient} in run {run_id}" in text
    assert "member of the year1 cohort" in text
    rs = load_ruleset("cquin_2017_19")
    for cid in ("y1.ltc_identification", "y1.activation_assessment", "y2.conversations"):
        assert cid in text
        assert rs.component(cid)["citation"]["section"] in text  # the policy text the rule encodes
    assert "rule ltc_identified" in text


def test_cohort_writes_the_year1_cohort_with_the_runs_count(demo_run):
    folder, store, run_id, doc = demo_run
    out = folder / "cohort-year1.csv"
    done = cquin("cohort", run_id, "--year", "1", "--out", str(out), "--store", str(store), cwd=folder)
    assert done.returncode == 0, done.stderr
    with out.open(newline="", encoding="utf-8-sig") as fh:  # written for Excel: UTF-8 with BOM
        rows = list(csv.DictReader(fh))
    assert len(rows) == doc["cohorts"]["year1"] > 0
    assert sorted(r["nhs_number"] for r in rows) == year1_cohort(store, run_id)
    assert {r["cohort"] for r in rows} == {"year1"}


def test_the_submission_has_no_nhs_numbers(demo_run):
    folder, store, run_id, doc = demo_run
    out = folder / "submission.csv"
    done = cquin("submission", run_id, "--out", str(out), "--store", str(store), cwd=folder)
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8-sig")
    assert re.findall(r"(?<![0-9A-Za-z])[0-9]{10}(?![0-9A-Za-z])", text) == []
    assert str(doc["cohorts"]["year1"]) in text  # it does carry the counts
    with sqlite3.connect(store) as con:
        patients = {r[0] for r in con.execute("SELECT DISTINCT subject_id FROM run_subjects WHERE entity = 'patient'")}
    assert not any(p in text for p in patients)


TWO_DECIMALS = re.compile(r"^-?[0-9]+\.[0-9]{2}$")
DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")


def test_evaluate_json_has_the_documented_shape(demo_run):
    folder, _, run_id, doc = demo_run
    assert doc["run_id"] == run_id
    assert set(doc["ruleset"]) == {"id", "version", "sha256"}
    assert doc["ruleset"]["id"] == "cquin_2017_19" and re.fullmatch(r"[0-9a-f]{64}", doc["ruleset"]["sha256"])
    assert [c["id"] for c in doc["components"]] == COMPONENT_IDS
    for c in doc["components"]:
        assert {"id", "year", "numerator", "denominator", "percent", "payment_fraction", "share", "payment"} <= set(c), c
        assert c["year"] in ("year1", "year2")
        assert c["percent"] is None or re.fullmatch(r"[0-9]+\.[0-9]{2}", c["percent"]), c
        assert DECIMAL.match(c["payment_fraction"]) and DECIMAL.match(c["share"]), c
        assert TWO_DECIMALS.match(c["payment"]), c
        if c["id"] != "y1.plan":
            assert isinstance(c["numerator"], int) and isinstance(c["denominator"], int), c
    plan = doc["components"][0]
    assert (plan["numerator"], plan["denominator"], plan["percent"]) == (None, None, None)
    assert set(doc["cohorts"]) == {"year1", "year2"} and all(isinstance(n, int) for n in doc["cohorts"].values())
    assert set(doc["totals"]) == {"year1", "year2"} and all(TWO_DECIMALS.match(v) for v in doc["totals"].values())
    assert set(doc["data_quality"]) == {p.name for p in DEMO_DIR.glob("*.csv")}
    for name, counts in doc["data_quality"].items():
        assert set(counts) == {"read", "accepted", "rejected"}, name
        assert counts["read"] == counts["accepted"] + counts["rejected"], name


def test_payment_fractions_are_plain_decimals(demo_run):
    """A half is written "0.5", never "1/2" or "0.50000"."""
    _, _, _, doc = demo_run
    fractions = {c["payment_fraction"] for c in doc["components"]}
    assert fractions <= {"0", "0.1", "0.4", "0.5", "0.7", "1"}, fractions


# --------------------------------------------------------------------------- (g) exit codes


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["evaluate", "--demo", "--no-store", "--contract-value", "abc"], "--contract-value 'abc'"),
        (["evaluate", "--demo", "--no-store", "--ruleset", "no_such_ruleset"], "no_such_ruleset"),
        (["evaluate", "no-such-folder", "--no-store"], "no-such-folder"),
    ],
    ids=["bad-contract-value", "unknown-ruleset", "unreadable-input"],
)
def test_user_mistakes_exit_non_zero_with_one_line_and_no_traceback(tmp_path, args, says):
    done = cquin(*args, cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert says in lines[0]


def test_an_input_folder_whose_files_cannot_be_read_is_one_line(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "patients.csv").write_bytes(bytes(range(256)) * 4)  # not text at all
    done = cquin("evaluate", str(folder), "--adapter", "canonical", "--no-store", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "patients.csv" in lines[0]
