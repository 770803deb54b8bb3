"""Killed at any moment, cquin leaves the store intact, no partial run, and no patient data in the temporary folder.

``cquin evaluate`` is killed (SIGKILL mostly, some SIGTERM and Ctrl-C) at random
moments: while loading, evaluating, writing the store, and while it checkpoints
the store on its way out.  After every kill the store passes SQLite's integrity
check and holds only whole runs; after SIGTERM or Ctrl-C nothing of the run is
left in the temporary folder, and what a SIGKILL left is swept by the next cquin.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR

KILLS = 20  # each a fresh process on the demo data: about a minute on a quiet machine


def _start(store: Path, tmpdir: Path, out: Path) -> subprocess.Popen[str]:
    """``cquin evaluate`` of the demo data, its output to the file ``out`` (watched to see the run is done)."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "CQUIN_WORK_STORAGE": "disk"}  # work files on disk, so there are some
    with out.open("w") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "cquin", "evaluate", str(DEMO_DIR), "--store", str(store), "--format", "json"],
            stdout=fh,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )


def _cquin_entries(tmpdir: Path) -> set[str]:
    return {p.name for p in tmpdir.iterdir() if p.name.startswith("cquin")}


def _whole_runs(store: Path, subjects_per_run: int) -> list[str]:
    con = sqlite3.connect(store)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = [r[0] for r in con.execute("SELECT run_id FROM runs")]
        for run_id in runs:
            count = {
                t: con.execute(f"SELECT count(*) FROM {t} WHERE run_id = ?", [run_id]).fetchone()[0]
                for t in ("run_components", "run_inputs", "run_cohorts", "run_subjects")
            }
            assert count["run_components"] == 6 and count["run_inputs"] > 0 and count["run_cohorts"] > 0, count
            assert count["run_subjects"] == subjects_per_run, (run_id, count)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'run_%'")]
        for t in tables:
            orphans = con.execute(f"SELECT count(*) FROM {t} WHERE run_id NOT IN (SELECT run_id FROM runs)").fetchone()[0]
            assert orphans == 0, t
        return runs
    finally:
        con.close()


@pytest.mark.slow
def test_evaluate_killed_at_random_moments_leaves_the_store_whole_and_no_patient_data_behind(tmp_path):
    rng = random.Random(int(os.environ.get("CQUIN_KILL_SEED", "2017")))
    store, tmpdir = tmp_path / "audit.sqlite", tmp_path / "tmp"
    tmpdir.mkdir()
    began = time.monotonic()
    output = tmp_path / "out.json"
    first = _start(store, tmpdir, output)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    out = output.read_text()
    full_run = time.monotonic() - began
    subjects = sqlite3.connect(store).execute("SELECT count(*) FROM run_subjects").fetchone()[0]
    stored = {json.loads(out)["run_id"]}
    wal = Path(str(store) + "-wal")
    moments: dict[str, int] = {}
    for i in range(KILLS):
        sig = (signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT)[i % 4]
        # When: a random moment of the run (loading, evaluating), while the store's log grows (the store
        # write), or once the result is out and the process is checkpointing the store and exiting.
        when = ("delay", "delay", "store write", "exiting")[rng.randrange(4)] if i % 3 else "delay"
        before = _cquin_entries(tmpdir)
        proc = _start(store, tmpdir, output)
        wal_start = wal.stat().st_size if wal.exists() else 0
        deadline = time.monotonic() + (rng.uniform(0.2, 1.1) * full_run if when == "delay" else 2 * full_run + 5)
        while proc.poll() is None and time.monotonic() < deadline:
            if when == "store write" and wal.exists() and wal.stat().st_size > wal_start + rng.randrange(1, 1 << 20):
                break
            if when == "exiting" and output.stat().st_size > 0:
                break
            time.sleep(0.005)
        finished_first = proc.poll() is not None
        if not finished_first:
            proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        out = output.read_text()
        assert "Traceback" not in err, err
        moments[when] = moments.get(when, 0) + 1
        if proc.returncode == 0:
            stored.add(json.loads(out)["run_id"])
        elif sig is signal.SIGKILL or proc.returncode == -sig:
            # SIGKILL; or a signal that arrived while Python itself was starting, before cquin had begun
            assert proc.returncode == -sig, (proc.returncode, err)
        else:
            expected = {signal.SIGTERM: (143, "terminated"), signal.SIGINT: (130, "interrupted")}[sig]
            assert (proc.returncode, err.strip().splitlines()[-1]) == expected, (proc.returncode, err)
            assert _cquin_entries(tmpdir) <= before  # it removed its own temporary data on the way out
        runs = _whole_runs(store, subjects)
        assert set(runs) >= stored  # nothing that was reported stored is lost
    # The next cquin sweeps what the SIGKILLed ones could not remove.
    listed = subprocess.run(
        [sys.executable, "-m", "cquin", "runs", "list", "--store", str(store)],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmpdir)},
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert _cquin_entries(tmpdir) == set()
    assert list(tmpdir.iterdir()) == []
    took = time.monotonic() - began
    print(f"{KILLS} kills in {took:.1f} s (a full run {full_run:.1f} s); moments {moments}")
