"""`cquin serve`: the audit store in Datasette on 127.0.0.1, tested over real HTTP and in headless Chromium.

The server is started as a user would start it (``python -m cquin.cli serve``) on a free port of 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DemoRun
from .test_report_browser import ARTIFACTS, CHROMIUM, chromium, console_lines

pytest.importorskip("datasette", reason="cquin serve needs the serve extra: pip install 'cquin[serve]'")

NHS_NUMBER = re.compile(r"(?<![0-9])999[0-9]{7}(?![0-9])")  # the demo data's NHS numbers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _copy_store(demo_run: DemoRun, to: Path) -> Path:
    with sqlite3.connect(demo_run.store) as src, sqlite3.connect(to) as dst:
        src.backup(dst)  # WAL mode: a file copy could miss the last transactions
    return to


class Server:
    def __init__(self, store: Path, *extra: str) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cquin.cli", "serve", "--store", str(store), "--port", str(self.port), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"cquin serve exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise AssertionError("cquin serve did not start listening within 120 s")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as r:  # noqa: S310 - our own server on 127.0.0.1
                return r.status, r.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")

    def json(self, path: str) -> object:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def store(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _copy_store(demo_run, tmp_path_factory.mktemp("serve") / "audit.sqlite")


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[Server]:
    s = Server(store)
    yield s
    s.stop()


def test_the_server_listens_on_loopback_with_the_stores_title(server: Server) -> None:
    status, body = server.get("/")
    assert status == 200 and "cquin audit store" in body and "NHS numbers are hidden" in body


def test_every_table_and_the_decisions_view_load(server: Server) -> None:
    for name in (
        "runs",
        "run_totals",
        "run_inputs",
        "run_rejections",
        "run_components",
        "run_subjects",
        "run_decisions",
        "run_cohorts",
    ):
        status, body = server.get(f"/audit/{name}")
        assert status == 200, name


def test_run_tables_link_to_their_run(server: Server, demo_run: DemoRun) -> None:
    # run_id is a foreign key to runs: Datasette renders it as a link to the run's row.
    _, body = server.get("/audit/run_components")
    assert f'href="/audit/runs/{demo_run.run_id}"' in body
    _, run_page = server.get(f"/audit/runs/{demo_run.run_id}")
    assert "Links from other tables" in run_page and "run_rejections" in run_page


def test_money_sorts_as_numbers_in_pence(server: Server, demo_run: DemoRun) -> None:
    rows = server.json("/audit/run_components.json?_shape=array&_sort_desc=payment_pence&_col=payment_pence&_col=component")
    assert isinstance(rows, list)
    pence = [r["payment_pence"] for r in rows]
    assert pence == sorted(pence, reverse=True) and all(isinstance(p, int) for p in pence)
    by_id = {c.id: c.payment for c in demo_run.evaluation.result.components}
    assert {r["component"]: r["payment_pence"] for r in rows} == {k: int(v * 100) for k, v in by_id.items()}
    totals = server.json(f"/audit/run_totals.json?_shape=array&run_id={demo_run.run_id}")
    assert {t["year"]: t["earned_pence"] for t in totals} == {
        y: int(v * 100) for y, v in demo_run.evaluation.result.totals.items()
    }  # type: ignore[index, union-attr]


def test_fractions_are_stored_as_numerator_and_denominator(server: Server) -> None:
    rows = server.json("/audit/run_components.json?_shape=array&component=y1.staff_training")
    assert isinstance(rows, list)
    r = rows[0]
    assert (r["share_numerator"], r["share_denominator"]) == (3, 10)
    assert (r["payment_fraction_numerator"], r["payment_fraction_denominator"]) == (7, 10)


def test_nhs_numbers_are_hidden_by_default_everywhere(server: Server) -> None:
    for path in (
        "/audit/run_subjects.json?_shape=array&_size=200",
        "/audit/run_decisions.json?_shape=array&_size=200",
        "/audit/run_cohorts.json?_shape=array&_size=200",
        "/audit/run_rejections.json?_shape=array&_size=200",
        "/audit/run_overrides.json?_shape=array&_size=200",
        "/audit/run_cohorts",
        "/audit/run_cohort_members.json?_shape=array&_size=200",
        "/audit.json?_shape=array&sql=select+subject_id,+hex(subject_id)+as+h,+vals+from+run_subjects+limit+50",
        "/audit.json?_shape=array&sql=select+patient_id,+vals,+hex(vals)+as+h+from+run_cohorts+limit+50",
    ):
        status, body = server.get(path)
        assert status == 200, (path, body[:300])
        assert NHS_NUMBER.search(body) is None, (path, NHS_NUMBER.search(body))


def test_the_store_cannot_be_changed_through_the_server(server: Server, demo_run: DemoRun) -> None:
    status, body = server.get("/audit.json?sql=" + urllib.parse.quote("delete from runs"))
    assert status != 200 or "error" in body
    assert server.json(f"/audit/runs.json?_shape=array&run_id={demo_run.run_id}")


def test_canned_queries_answer_an_auditors_questions(server: Server, demo_run: DemoRun) -> None:
    rid = demo_run.run_id
    rejections = server.json(f"/audit/rejections_by_reason.json?_shape=array&run_id={rid}")
    assert isinstance(rejections, list)
    dup = [r for r in rejections if r["reason_group"].startswith("exact duplicate of conditions.csv")]
    assert len(dup) == 1  # every exact duplicate of that file is one reason, however many lines
    assert sum(r["rows"] for r in rejections) == sum(
        i["rejected"] for i in server.json(f"/audit/run_inputs.json?_shape=array&run_id={rid}")
    )  # type: ignore[union-attr, index]
    changes = server.json(f"/audit/changes_between_runs.json?_shape=array&run_a={rid}&run_b={rid}")
    assert isinstance(changes, list) and len(changes) == 6 and all(c["payment_change_pence"] == 0 for c in changes)
    status, _ = server.get(f"/audit/cohort?run_id={rid}&cohort=year1_cohort")
    assert status == 200


def test_with_show_identifiers_a_patient_can_be_looked_up(store: Path, demo_run: DemoRun) -> None:
    s = Server(store, "--show-identifiers")
    try:
        rows = s.json(f"/audit/patient_decisions.json?_shape=array&run_id={demo_run.run_id}&nhs_number=9990000018")
        assert isinstance(rows, list) and [r["component"] for r in rows][:2] == [
            "y1.ltc_identification",
            "y1.activation_assessment",
        ]
        _, body = s.get("/audit/run_cohorts.json?_shape=array&_size=5")
        assert NHS_NUMBER.search(body)
    finally:
        s.stop()


def test_an_older_store_is_carried_forward_by_a_migration(demo_run: DemoRun, tmp_path: Path) -> None:
    """A schema-1 store (no pence, no totals table, no reason groups, no foreign keys) reads as a new one."""
    from sqlite_utils import Database

    from cquin.store import SCHEMA_VERSION, open_store
    from tests.store.legacy import write_format4_trace

    old = _copy_store(demo_run, tmp_path / "old.sqlite")
    write_format4_trace(old)
    db = Database(old)
    db.execute("DROP VIEW run_decisions")  # sqlite-utils 4.0 cannot rebuild a table under a view (the migration re-creates it)
    for table in ("run_inputs", "run_rejections", "run_components", "run_cohorts", "run_subjects"):
        db[table].transform(drop_foreign_keys=["run_id"])
    db["run_totals"].drop()
    for col in ("available_pence", "payment_pence", "share_numerator", "share_denominator"):
        db.execute(f"ALTER TABLE run_components DROP COLUMN {col}")
    db.execute("ALTER TABLE run_rejections DROP COLUMN reason_group")
    db.execute("PRAGMA user_version = 1")
    db.conn.commit()
    db.conn.close()

    migrated = open_store(old)
    assert migrated.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    fresh = open_store(demo_run.store)
    q = "SELECT component, available_pence, payment_pence, share_numerator, share_denominator FROM run_components ORDER BY rowid"
    assert list(migrated.query(q)) == list(fresh.query(q))
    assert list(migrated.query("SELECT * FROM run_totals")) == list(
        fresh.query("SELECT * FROM run_totals WHERE run_id = ?", [demo_run.run_id])
    )
    assert list(migrated.query("SELECT reason_group FROM run_rejections ORDER BY rowid")) == list(
        fresh.query("SELECT reason_group FROM run_rejections WHERE run_id = ? ORDER BY rowid", [demo_run.run_id])
    )
    assert [fk.other_table for fk in migrated["run_subjects"].foreign_keys] == ["runs"]
    assert (
        migrated.execute("SELECT count(*) FROM run_subjects").fetchone()
        == fresh.execute("SELECT count(*) FROM run_subjects WHERE run_id = ?", [demo_run.run_id]).fetchone()
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_the_pages_load_in_chromium_with_no_console_error(server: Server, demo_run: DemoRun, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pages = {
        "serve-home": "/",
        "serve-database": "/audit",
        "serve-components": "/audit/run_components",
        "serve-decisions": "/audit/run_decisions",
        "serve-rejections-by-reason": f"/audit/rejections_by_reason?run_id={demo_run.run_id}",
    }
    for i, (name, path) in enumerate(pages.items()):
        shot = ARTIFACTS / f"{name}.png"
        run = chromium(server.base + path, tmp_path / f"profile{i}", f"--screenshot={shot}", "--window-size=1280,900")
        assert run.returncode == 0, run.stderr[-2000:]
        assert console_lines(run.stderr) == [], (path, console_lines(run.stderr))
        assert shot.exists() and shot.stat().st_size > 10_000


def test_an_override_reason_quoting_an_nhs_number_is_hidden_in_the_decisions_too(tmp_path: Path) -> None:
    """An override's free-text reason is a value of the decisions it made: read as empty without --show-identifiers."""
    import sqlite3

    from cquin.runner import run_evaluation
    from cquin.serve import authorizer
    from tests.demo_overrides import demo_with_override_reason

    excluded = {"patient_id": "9990003424", "cohort": "year1", "action": "exclude"}  # a year 1 member
    folder = demo_with_override_reason(tmp_path / "records", "duplicate record of 9990000999, merged", extra=(excluded,))
    store = tmp_path / "audit.sqlite"
    run_evaluation(folder, store=store)
    con = sqlite3.connect(store)
    sql = "SELECT group_concat(reason, ' / ') FROM run_decisions WHERE reason LIKE '%override%'"
    shown = con.execute(sql).fetchone()[0]
    assert shown and "9990000999" in shown  # the override decided someone's component
    con.set_authorizer(authorizer(False))
    hidden = con.execute("SELECT group_concat(reason, ' / ') FROM run_decisions").fetchone()[0] or ""
    con.close()
    assert "9990000999" not in hidden and NHS_NUMBER.search(hidden) is None
