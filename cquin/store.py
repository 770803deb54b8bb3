"""The audit store: every run, its inputs, rejections, results and per-patient decisions, in SQLite.

A run is written in one transaction (``BEGIN IMMEDIATE``), so a run that fails
or is interrupted leaves nothing behind, and two evaluations writing at once
queue for the write lock and both land complete.  The file is created readable
by its owner only: it holds NHS numbers.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import queue
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin import __version__, storefile
from cquin.dataset import CanonicalDataset
from cquin.dataset.duck import sql_str
from cquin.engine.evaluation import RunResult, Trace
from cquin.engine.evidence import EVIDENCE_MARK, PSEUDONYMOUS_MARK, pseudonymous_notice
from cquin.exceptions import CquinError, StoreError
from cquin.pseudonymise import Pseudonymiser
from cquin.redact import reason_kind
from cquin.storeguards import create_signoff_tables, thaw_for_migration

DEFAULT_STORE = Path("cquin-audit.sqlite")
SCHEMA_VERSION = 4  # 2: numeric columns and foreign keys; 3: sign-offs (cquin.storeguards); 4: marked as cquin's
READABLE_FROM = 3  # the oldest format the reading commands read as it is (older: `cquin store migrate` first)

_TABLES: dict[str, dict[str, Any]] = {
    "runs": {
        "columns": {
            "run_id": str,
            "started_at": str,
            "finished_at": str,
            "engine_version": str,
            "ruleset_id": str,
            "ruleset_version": str,
            "ruleset_sha256": str,
            "ruleset_source": str,
            "adapter": str,
            "source": str,
            "parameters": str,
            "as_of": str,
            "totals": str,
            "available": str,
            "cohorts": str,
            "populations": str,
            "results_sha256": str,
            "carer_assessments": int,
            "notes": str,
            "ruleset_json": str,
        },
        "pk": "run_id",
    },
    "run_inputs": {
        "columns": {
            "run_id": str,
            "name": str,
            "path": str,
            "table_name": str,
            "sha256": str,
            "read": int,
            "accepted": int,
            "rejected": int,
        }
    },
    "run_rejections": {
        # reason_group: the reason with its values, NHS numbers and line numbers taken out (see reason_group()).
        "columns": {
            "run_id": str,
            "file": str,
            "line": int,
            "ref": str,
            "column_name": str,
            "value": str,
            "reason": str,
            "reason_group": str,
        }
    },
    "run_components": {
        "columns": {
            "run_id": str,
            "ordinal": int,
            "component": str,
            "year": str,
            "name": str,
            "entity": str,
            "numerator": int,
            "denominator": int,
            "fraction": str,
            "percent": str,
            "band": str,
            "payment_fraction": str,
            "share": str,
            "available": str,
            "payment": str,
            "note": str,
            "next_band": str,
            # The same figures as numbers, exactly: money in pence, fractions as numerator and denominator.
            "available_pence": int,
            "payment_pence": int,
            "payment_fraction_numerator": int,
            "payment_fraction_denominator": int,
            "share_numerator": int,
            "share_denominator": int,
        }
    },
    "run_totals": {"columns": {"run_id": str, "year": str, "earned_pence": int, "available_pence": int}},
    "run_milestones": {"columns": {"run_id": str, "milestone": str, "year": str, "due": str, "status": str, "detail": str}},
    "run_overrides": {
        "columns": {"run_id": str, "file": str, "line": int, "patient_id": str, "kind": str, "message": str, "reason": str}
    },
    "run_unmatched_codes": {"columns": {"run_id": str, "code_system": str, "code": str, "count": int}},
    "run_breakdowns": {"columns": {"run_id": str, "breakdowns": str}},
    # The data-quality verdict (passed, failed, or accepted with --accept-rejections) and its detail as JSON.
    "run_data_quality": {"columns": {"run_id": str, "status": str, "detail": str}},
    "run_cohorts": {"columns": {"run_id": str, "cohort": str, "patient_id": str, "reason": str}},
    # One row per patient (or member of staff) per run; `decisions` is a JSON object keyed by component id,
    # each value [in_denominator 0|1, in_numerator 0|1, rule (population id), reason (the deciding fact)].
    # The view run_decisions unfolds it to one row per subject and component for SQL users.
    "run_subjects": {"columns": {"run_id": str, "entity": str, "subject_id": str, "decisions": str}},
}


@dataclass(frozen=True)
class StoredRun:
    """A run as read back from the store."""

    run: dict[str, Any]
    inputs: list[dict[str, Any]]
    components: list[dict[str, Any]]
    milestones: list[dict[str, Any]]
    overrides: list[dict[str, Any]]


@dataclass(frozen=True)
class Explanation:
    """One subject's decisions in a stored run, with the run's own copy of the ruleset (for citations)."""

    run: dict[str, object]
    subject_id: str
    decisions: list[dict[str, object]]
    cohorts: list[dict[str, object]]
    ruleset: dict[str, Any]
    rejections: list[dict[str, object]] = field(default_factory=list)  # rows rejected at load that name the subject


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def open_store(path: Path, *, read_only: bool = False) -> Database:
    """Open the audit store at ``path``: for writing (creating it owner-only, migrating an older format) or read-only.

    Anything at ``path`` that is neither absent, an empty file, nor a cquin store is refused before a byte
    is written (:func:`cquin.storefile.identify`).  ``read_only`` opens never write, migrate or wait behind a
    writer; they need the store to exist.  Both check the store's integrity first (``PRAGMA quick_check``),
    so a damaged store is named as such instead of giving numbers from what could still be read.
    """
    path = Path(path)
    identity = storefile.identify(path)
    if read_only and identity.kind is storefile.Kind.NEW:
        what = "is empty" if path.exists() else "does not exist"
        raise StoreError(f"{path}: no audit store here (the file {what}); run `cquin evaluate` first, or pass --store")
    conn = storefile.connect_read(path) if read_only else storefile.connect_write(path, identity)
    db = Database(conn)
    try:
        if identity.kind is storefile.Kind.CQUIN:
            # The version in the file's header may be older than the one in its write-ahead log: ask SQLite.
            _check_version(path, conn.execute("PRAGMA user_version").fetchone()[0], reading=read_only)
            quick_check(db, path)
        if not read_only:
            _migrate(db)
    except BaseException:
        conn.close()
        raise
    return db


def quick_check(db: Database, path: Path) -> None:
    """Refuse a store whose pages SQLite finds damaged (``PRAGMA quick_check``: every page and row is read)."""
    problems = [r[0] for r in db.conn.execute("PRAGMA quick_check(5)").fetchall()]
    if problems != ["ok"]:
        raise StoreError(
            f"{path}: the audit store is damaged ({'; '.join(problems)[:300]}); nothing can be trusted from it. "
            "Restore it from a backup (cquin leaves the damaged file as it is)"
        )


@dataclass(frozen=True)
class StoreCheck:
    schema_version: int
    runs: int
    problems: list[str]


def check_store(path: Path) -> StoreCheck:
    """Read every page and index of the store (``PRAGMA integrity_check``), changing nothing; list what is damaged."""
    path = Path(path)
    identity = storefile.identify(path)
    if identity.kind is storefile.Kind.NEW:
        raise StoreError(f"{path}: no audit store here")
    conn = storefile.connect_read(path)
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(50)").fetchall()]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if problems == ["ok"]:
            return StoreCheck(version, conn.execute("SELECT count(*) FROM runs").fetchone()[0], [])
        return StoreCheck(version, 0, problems)
    except StoreError as exc:
        return StoreCheck(identity.schema_version, 0, [f"SQLite cannot read it: {getattr(exc, 'sqlite_detail', exc)}"])
    finally:
        conn.close()


def migrate_store(path: Path) -> tuple[int, int]:
    """Migrate an existing store to this cquin's format; returns (format before, format after)."""
    path = Path(path)
    identity = storefile.identify(path)
    if identity.kind is storefile.Kind.NEW:
        raise StoreError(f"{path}: no audit store here (nothing to migrate)")
    conn = storefile.connect_read(path)
    try:
        before = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    db = open_store(path)
    try:
        return before, db.conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.conn.close()


def _check_version(path: Path, version: int, *, reading: bool) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: the audit store is format {version}, written by a newer cquin (this one, {__version__}, knows "
            f"formats up to {SCHEMA_VERSION}); upgrade cquin to use it"
        )
    if reading and version < READABLE_FROM:
        raise StoreError(
            f"{path}: the audit store is format {version}; this cquin reads formats {READABLE_FROM}-{SCHEMA_VERSION}. "
            f"Upgrade it with `cquin store migrate --store {path}` (reading commands never change a store)"
        )


def _migrate(db: Database) -> None:
    """Bring the store to SCHEMA_VERSION, one numbered step at a time, in one write transaction.

    Each step takes the store from version N-1 to N; a step, once released, is never edited (add a new
    one).  Stores older than the identity step (format 1) are recognised by their tables.
    """
    if db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        return
    with _write(db):
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]  # again, now that the write lock is held
        thaw_for_migration(db)  # a format change may rewrite run rows; the guards are put back below
        for step, migrate in enumerate(_STEPS, start=1):
            if version < step:
                migrate(db)
        _create_view_and_indexes(db)  # idempotent: whatever a step rebuilt, the view and indexes are there
        create_signoff_tables(db)  # the guards on signed-off runs, over every table (idempotent)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _create_view(db: Database) -> None:
    db.execute(
        """CREATE VIEW IF NOT EXISTS run_decisions AS
           SELECT s.run_id, j.key AS component, s.entity, s.subject_id,
                  json_extract(j.value, '$[0]') AS in_denominator, json_extract(j.value, '$[1]') AS in_numerator,
                  json_extract(j.value, '$[2]') AS rule, json_extract(j.value, '$[3]') AS reason
           FROM run_subjects s, json_each(s.decisions) j"""
    )


def _create_missing_tables(db: Database) -> None:
    for name, spec in _TABLES.items():
        if not db.table(name).exists():
            fks = [] if name == "runs" else [("run_id", "runs", "run_id")]
            db.table(name).create(spec["columns"], pk=spec.get("pk"), foreign_keys=fks)


def _step1_tables(db: Database) -> None:
    """Format 1: the run tables (as they are now, each keyed to ``runs``), their indexes and the run_decisions view."""
    _create_missing_tables(db)
    _create_view_and_indexes(db)


def _create_view_and_indexes(db: Database) -> None:
    db.execute("CREATE INDEX IF NOT EXISTS idx_subjects_subject ON run_subjects (run_id, subject_id)")
    _create_view(db)
    for name in _TABLES:
        if name not in ("runs", "run_subjects"):
            db.execute(f"CREATE INDEX IF NOT EXISTS idx_{name}_run ON {name} (run_id)")


def _step4_identity(db: Database) -> None:
    """Format 4: the store says it is cquin's (application id in the header, marker table with the format)."""
    db.execute(f"PRAGMA application_id = {storefile.APPLICATION_ID}")
    db.execute("CREATE TABLE IF NOT EXISTS cquin_store (key TEXT PRIMARY KEY, value TEXT)")
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    db.execute(
        "INSERT OR IGNORE INTO cquin_store (key, value) VALUES ('format', 'cquin audit store'), ('created', ?), ('created_by', ?)",
        [now, f"cquin {__version__}"],
    )


def reason_group(reason: str | None) -> str:
    """A rejection's reason with its values, NHS numbers and line numbers taken out, so like rows group together.

    "exact duplicate of conditions.csv line 2803 (counted once)" -> "exact duplicate of conditions.csv line … (counted once)";
    "unknown patient 9990022070: not in patients.csv" -> "unknown patient …: not in patients.csv".
    """
    # Every patient-level value goes, however written (spaced or hyphenated NHS numbers, local ids, dates): the
    # groups are shown outside the store (the report, BI tables, Datasette facets).  See cquin.redact.
    return reason_kind(reason)


def _fraction_parts(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    f = Fraction(text)
    return f.numerator, f.denominator


def _pence(text: str | None) -> int | None:
    return None if text is None else int(Decimal(text) * 100)


def _migrate_2(db: Database) -> None:
    """Format 2: numeric money (pence) and fractions (numerator, denominator) beside their text, each run's totals
    as rows, reason groups for rejections, and foreign keys from every run table to ``runs``.

    Existing rows are filled from what the store already holds, so a store written by an older cquin keeps
    every run and reads exactly as a new one (on a new store, whose tables step 1 made as they are now, it
    changes nothing).
    """
    _create_missing_tables(db)  # run_totals, and any table a format-1 store lacks
    db.conn.create_function("cquin_reason_group", 1, reason_group, deterministic=True)
    db.conn.create_function("cquin_pence", 1, _pence, deterministic=True)
    db.conn.create_function("cquin_num", 1, lambda t: _fraction_parts(t)[0], deterministic=True)
    db.conn.create_function("cquin_den", 1, lambda t: _fraction_parts(t)[1], deterministic=True)
    for table, spec in _TABLES.items():
        have = db.table(table).columns_dict
        for column, kind in spec["columns"].items():
            if column not in have:
                db.table(table).add_column(column, kind)
    db.execute("UPDATE run_rejections SET reason_group = cquin_reason_group(reason) WHERE reason_group IS NULL")
    db.execute(
        """UPDATE run_components SET available_pence = cquin_pence(available), payment_pence = cquin_pence(payment),
                  payment_fraction_numerator = cquin_num(payment_fraction), payment_fraction_denominator = cquin_den(payment_fraction),
                  share_numerator = cquin_num(share), share_denominator = cquin_den(share)
           WHERE payment_pence IS NULL"""
    )
    for run in list(db.query("SELECT run_id, totals, available FROM runs")):
        if not db.execute("SELECT 1 FROM run_totals WHERE run_id = ?", [run["run_id"]]).fetchone():
            db.table("run_totals").insert_all(_total_rows(run["run_id"], json.loads(run["totals"]), json.loads(run["available"])))
    # Declared foreign keys (sqlite-utils rebuilds each table with its key; the rows are copied unchanged).
    # The run_decisions view is dropped first (a table rebuilt under a view fails on older SQLite tooling);
    # it is made again at once.
    db.execute("DROP VIEW IF EXISTS run_decisions")
    db.add_foreign_keys([(t, "run_id", "runs", "run_id") for t in _TABLES if t != "runs" and not db.table(t).foreign_keys])
    _create_view(db)


def _total_rows(run_id: str, totals: dict[str, str], available: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "year": year, "earned_pence": _pence(totals.get(year)), "available_pence": _pence(available.get(year))}
        for year in dict.fromkeys([*available, *totals])
    ]


# Migration steps in order: _STEPS[N-1] takes a store from format N-1 to N.
_STEPS = (_step1_tables, _migrate_2, create_signoff_tables, _step4_identity)
assert len(_STEPS) == SCHEMA_VERSION


@contextmanager
def _write(db: Database) -> Iterator[None]:
    """One write transaction, taken eagerly so concurrent writers queue instead of failing."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        _rollback(db)
        raise
    try:
        db.conn.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise


def _rollback(db: Database) -> None:
    """Roll back an open transaction; SQLite may already have (a full disk does), and a failing rollback
    must never hide the error that caused it."""
    if db.conn.in_transaction:
        try:
            db.conn.execute("ROLLBACK")
        except (sqlite3.Error, CquinError):
            pass


def notices(result: RunResult, dataset: CanonicalDataset) -> list[str]:
    """What every output of a run says first: pseudonymous identifiers, then components with no evidence."""
    first = pseudonymous_notice(dataset.pseudonymous)
    return ([first] if first else []) + [g.message for g in result.evidence_gaps]


def evidence_missing(run: dict[str, Any]) -> list[str]:
    """A stored run's leading notices (pseudonymous identifiers, missing evidence): they lead its notes."""
    notes = json.loads(run.get("notes") or "[]")
    return [n for n in notes if isinstance(n, str) and n.startswith((EVIDENCE_MARK, PSEUDONYMOUS_MARK))]


def trace_of(result: RunResult) -> Trace:
    """The evaluation's per-subject decisions (a result built without evaluating has none to store)."""
    if result.trace is None:
        raise ValueError("this result has no trace: it was not produced by cquin.engine.evaluation.evaluate")
    return result.trace


def results_digest(result: RunResult, dataset: CanonicalDataset) -> str:
    """A digest of the component results and every decision, to tell whether two runs agree exactly."""
    import hashlib

    h = hashlib.sha256()
    h.update(json.dumps([c.as_dict() for c in result.components], sort_keys=True).encode())
    h.update(json.dumps([m.__dict__ for m in result.milestones], sort_keys=True, default=str).encode())
    h.update(repr(trace_of(result).digest()).encode())
    return h.hexdigest()


def record_run(
    db: Database,
    result: RunResult,
    dataset: CanonicalDataset,
    *,
    run_id: str,
    started_at: dt.datetime,
    adapter: str,
    source: str,
    ruleset_source: str,
    parameters: dict[str, Any],
    ruleset_json: str,
    breakdowns: dict[str, Any] | None = None,
    pseudonymise_key: bytes | None = None,
    data_quality: dict[str, Any] | None = None,
) -> str:
    """Write one complete run in a single transaction; returns the run id.

    With ``pseudonymise_key``, a keyed hash replaces every NHS number the store
    would otherwise keep (subjects, cohorts, overrides, rejected values and any
    ten-digit number in reasons and notes), so the audit can be shared.
    """
    finished = dt.datetime.now(dt.UTC)
    ledger = dataset.ledger
    ps = Pseudonymiser(pseudonymise_key, dataset.con)
    if ps.fingerprint:
        parameters = {**parameters, "pseudonymised": ps.fingerprint}
    run_row = {
        "run_id": run_id,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "engine_version": __version__,
        "ruleset_id": result.ruleset_id,
        "ruleset_version": result.ruleset_version,
        "ruleset_sha256": result.ruleset_sha256,
        "ruleset_source": ruleset_source,
        "adapter": adapter,
        "source": source,
        "parameters": json.dumps(parameters, sort_keys=True, default=str),
        "as_of": result.as_of.isoformat() if result.as_of else None,
        "totals": json.dumps({k: f"{v:.2f}" for k, v in result.totals.items()}),
        "available": json.dumps({k: f"{v:.2f}" for k, v in result.available.items()}),
        "cohorts": json.dumps(result.cohorts),
        "populations": json.dumps(result.populations),
        "results_sha256": results_digest(result, dataset),
        "carer_assessments": result.carer_assessments,
        # Missing evidence leads the notes, so every output read from the store can show it first.
        "notes": ps.text(json.dumps(notices(result, dataset) + list(ledger.notes))),
        "ruleset_json": ruleset_json,
    }
    try:
        with _write(db):
            db.table("runs").insert(run_row)
            db.table("run_inputs").insert_all(
                {
                    "run_id": run_id,
                    "name": f.name,
                    "path": f.path,
                    "table_name": f.table,
                    "sha256": f.sha256,
                    "read": f.read,
                    "accepted": f.accepted,
                    "rejected": f.rejected,
                }
                for f in ledger.files.values()
            )
            _copy(
                db,
                dataset,
                f"""SELECT file, line, {ps.text_sql("ref")}, column_name,
                      CASE WHEN column_name = 'patient_id' THEN {ps.id_sql("value")} ELSE {ps.text_sql("value")} END,
                      {ps.text_sql("reason")} FROM rejections ORDER BY file, line""",
                "run_rejections",
                ("file", "line", "ref", "column_name", "value", "reason"),
                run_id,
            )
            db.conn.create_function("cquin_reason_group", 1, reason_group, deterministic=True)
            db.execute("UPDATE run_rejections SET reason_group = cquin_reason_group(reason) WHERE run_id = ?", [run_id])
            db.table("run_components").insert_all(
                {
                    "run_id": run_id,
                    "ordinal": i,
                    "component": c.id,
                    "year": c.year,
                    "name": c.name,
                    "entity": c.entity,
                    "numerator": c.numerator,
                    "denominator": c.denominator,
                    "fraction": None if c.fraction is None else f"{c.fraction.numerator}/{c.fraction.denominator}",
                    "percent": c.percent,
                    "band": c.band,
                    "payment_fraction": c.as_dict()["payment_fraction"],
                    "share": c.as_dict()["share"],
                    "available": f"{c.available:.2f}",
                    "payment": f"{c.payment:.2f}",
                    "note": c.note,
                    "next_band": json.dumps(c.next_step.as_dict() if c.next_step is not None else c.next_band)
                    if c.next_band is not None
                    else None,
                    "available_pence": _pence(f"{c.available:.2f}"),
                    "payment_pence": _pence(f"{c.payment:.2f}"),
                    "payment_fraction_numerator": _fraction_parts(c.as_dict()["payment_fraction"])[0],
                    "payment_fraction_denominator": _fraction_parts(c.as_dict()["payment_fraction"])[1],
                    "share_numerator": _fraction_parts(c.as_dict()["share"])[0],
                    "share_denominator": _fraction_parts(c.as_dict()["share"])[1],
                }
                for i, c in enumerate(result.components)
            )
            db.table("run_totals").insert_all(
                _total_rows(run_id, json.loads(str(run_row["totals"])), json.loads(str(run_row["available"])))
            )
            db.table("run_milestones").insert_all(
                {
                    "run_id": run_id,
                    "milestone": m.id,
                    "year": m.year,
                    "due": m.due.isoformat(),
                    "status": m.status,
                    "detail": m.detail,
                }
                for m in result.milestones
            )
            db.table("run_overrides").insert_all(
                {
                    **n,
                    "run_id": run_id,
                    "patient_id": ps.id(n["patient_id"]),
                    "message": ps.text(n["message"]),
                    "reason": ps.text(n["reason"]),
                }
                for n in result.override_notes
            )
            if data_quality is not None:
                db.table("run_data_quality").insert(
                    {
                        "run_id": run_id,
                        "status": data_quality["status"],
                        "detail": ps.text(json.dumps(data_quality, sort_keys=True)),
                    }
                )
            if breakdowns is not None:
                db.table("run_breakdowns").insert({"run_id": run_id, "breakdowns": json.dumps(breakdowns, sort_keys=True)})
            db.table("run_unmatched_codes").insert_all(
                {"run_id": run_id, "code_system": s, "code": c, "count": n} for s, c, n in result.unmatched_codes
            )
            _copy(
                db,
                dataset,
                f"SELECT cohort, {ps.id_sql('id')}, {ps.text_sql('reason')} FROM ({trace_of(result).cohort_members_sql()}) ORDER BY cohort, id",
                "run_cohorts",
                ("cohort", "patient_id", "reason"),
                run_id,
            )
            subjects = subject_decisions_sql(result)
            if ps.fingerprint:
                subjects = f"""SELECT entity, CASE WHEN entity = 'patient' THEN {ps.id_sql("id")} ELSE id END,
                                      {ps.text_sql("decisions")} FROM ({subjects})"""
            _copy(db, dataset, subjects, "run_subjects", ("entity", "subject_id", "decisions"), run_id)
    except sqlite3.Error as exc:  # errors on the store's own connection are already explained
        raise storefile.store_error(getattr(db.conn, "store_path", Path("audit store")), exc) from None
    return run_id


def subject_decisions_sql(result: RunResult) -> str:
    """SQL giving one row per subject: (entity, id, JSON object of that subject's decisions keyed by component).

    Every component's decisions cover every subject of its entity (each population table holds a row for
    every patient or member of staff), so the components' rows are put side by side with joins on the
    subject and the JSON text is concatenated: much cheaper than aggregating four million rows.  Ordered by
    subject so SQLite appends to its index instead of inserting at random.
    """
    trace = trace_of(result)
    selects = []
    for entity in dict.fromkeys(c.entity for c in result.components if c.entity):
        ids = [c.id for c in result.components if c.entity == entity and c.denominator is not None]  # not "not started"
        if not ids:
            continue
        items = []
        for i, cid in enumerate(ids):
            text = " || ',' || ".join(
                [f"c{i}.in_denominator::INT", f"c{i}.in_numerator::INT"]
                + [f"coalesce(CAST(to_json(c{i}.{col}) AS VARCHAR), 'null')" for col in ("rule", "reason")]
            )
            items.append(f"{sql_str(json.dumps(cid) + ':[')} || {text} || ']'")
        joins = " ".join(f"LEFT JOIN ({trace.decisions_sql(cid)}) c{i} USING (id)" for i, cid in enumerate(ids) if i)
        selects.append(
            f"""SELECT {sql_str(entity)} AS entity, c0.id, '{{' || concat_ws(',', {", ".join(items)}) || '}}' AS decisions
                FROM ({trace.decisions_sql(ids[0])}) c0 {joins}"""
        )
    if not selects:
        return f"SELECT entity, id, NULL AS decisions FROM ({trace.decisions_sql()}) WHERE false"
    return " UNION ALL ".join(f"({sql})" for sql in selects) + " ORDER BY id"


def _copy(db: Database, dataset: CanonicalDataset, sql: str, table: str, columns: tuple[str, ...], run_id: str) -> None:
    """Stream rows from DuckDB into SQLite in Arrow batches (bounded memory, no per-value Python objects until insert).

    A helper thread fetches the next batch while SQLite writes the last one: both engines release the
    interpreter lock while they work, so on two cores the query and the write overlap.
    """
    reader = dataset.con.sql(sql).to_arrow_reader(50_000)
    placeholders = ", ".join("?" for _ in range(len(columns) + 1))
    insert = f"INSERT INTO {table} (run_id, {', '.join(columns)}) VALUES ({placeholders})"
    batches: queue.Queue[list[list[Any]] | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for batch in reader:
                item = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                while not stop.is_set():
                    try:
                        batches.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            batches.put(None)
        except BaseException as exc:  # handed to the writer, which raises it
            batches.put(exc)

    fetcher = threading.Thread(target=fetch, name="cquin-store-fetch", daemon=True)
    fetcher.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            db.conn.executemany(insert, zip(itertools.repeat(run_id, len(item[0])), *item, strict=False))
    finally:
        stop.set()
        fetcher.join()


LATEST = "latest"


def resolve_run_id(db: Database, ref: str) -> str:
    """The full run id for ``ref``: a run id, a unique prefix of one, or ``latest`` (the last run started)."""
    ref = ref.strip()
    if ref == LATEST:
        rows = list(db.query("SELECT run_id FROM runs ORDER BY started_at DESC, run_id DESC LIMIT 1"))
        if not rows:
            raise StoreError("the audit store holds no runs yet: `latest` needs one (run `cquin evaluate` first)")
        return str(rows[0]["run_id"])
    if list(db.query("SELECT 1 FROM runs WHERE run_id = ?", [ref])):
        return ref
    escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches = [
        r["run_id"] for r in db.query("SELECT run_id FROM runs WHERE run_id LIKE ? ESCAPE '\\' ORDER BY run_id", [escaped + "%"])
    ]
    if len(matches) == 1:
        return str(matches[0])
    if not matches:
        raise StoreError(f"no run {ref!r} in the audit store (see `cquin runs list`, or use `latest`)")
    shown = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
    raise StoreError(f"run {ref!r} is ambiguous: {len(matches)} runs start with it: {shown} (give more of the id)")


def load_run(db: Database, run_id: str) -> StoredRun:
    run_id = resolve_run_id(db, run_id)
    rows = list(db.query("SELECT * FROM runs WHERE run_id = ?", [run_id]))
    q = "SELECT * FROM {} WHERE run_id = ? ORDER BY rowid"
    return StoredRun(
        run=rows[0],
        inputs=list(db.query(q.format("run_inputs"), [run_id])),
        components=list(db.query(q.format("run_components"), [run_id])),
        milestones=list(db.query(q.format("run_milestones"), [run_id])),
        overrides=list(db.query(q.format("run_overrides"), [run_id])),
    )


def stored_data_quality(db: Database, run_id: str) -> dict[str, Any] | None:
    """The run's data-quality verdict (``status``, ``message``, ``failures``...), or None for a run stored before it was kept."""
    if not db["run_data_quality"].exists():
        return None
    rows = list(db.query("SELECT detail FROM run_data_quality WHERE run_id = ?", [run_id]))
    return dict(json.loads(rows[0]["detail"])) if rows else None


def list_runs(db: Database) -> list[dict[str, Any]]:
    return list(
        db.query(
            "SELECT run_id, started_at, ruleset_id, ruleset_version, adapter, source, totals, as_of, parameters "
            "FROM runs ORDER BY started_at, run_id"
        )
    )


def decisions_for(db: Database, run_id: str, subject_id: str) -> list[dict[str, Any]]:
    """A subject's decisions in a run, in the order of the run's components."""
    rows = list(db.query("SELECT entity, decisions FROM run_subjects WHERE run_id = ? AND subject_id = ?", [run_id, subject_id]))
    order = [r["component"] for r in db.query("SELECT component FROM run_components WHERE run_id = ? ORDER BY ordinal", [run_id])]
    out = []
    for row in rows:
        decided = json.loads(row["decisions"])
        for component in order:
            if component in decided:
                den, num, rule, reason = decided[component]
                out.append(
                    {
                        "component": component,
                        "entity": row["entity"],
                        "in_denominator": den,
                        "in_numerator": num,
                        "rule": rule,
                        "reason": reason,
                    }
                )
    return out


def cohort_members(db: Database, run_id: str, cohort: str) -> Iterator[dict[str, Any]]:
    yield from db.query(
        "SELECT patient_id, reason FROM run_cohorts WHERE run_id = ? AND cohort = ? ORDER BY patient_id", [run_id, cohort]
    )


__all__ = [
    "DEFAULT_STORE",
    "StoredRun",
    "cohort_members",
    "decisions_for",
    "list_runs",
    "load_run",
    "new_run_id",
    "open_store",
    "record_run",
]
