"""The audit store's tables and formats: opening, checking and migrating a store, one numbered step at a time.

A run is written in one transaction (``BEGIN IMMEDIATE``, :func:`write_transaction`), so a run that fails or
is interrupted leaves nothing behind, and two evaluations writing at once queue for the write lock and both
land complete.  The file is created readable by its owner only: it holds NHS numbers.

Long because every released migration step stays here as it was released, beside the tables it builds.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin import __version__, storefile
from cquin.exceptions import CquinError, StoreError
from cquin.redact import reason_kind
from cquin.store import trace
from cquin.storeguards import create_signoff_tables, thaw_for_migration

DEFAULT_STORE = Path("cquin-audit.sqlite")
# 2: numeric columns and foreign keys; 3: sign-offs (cquin.storeguards); 4: marked as cquin's; 5: the trace as
# compact facts (cquin.store.trace)
SCHEMA_VERSION = 5
# The oldest format the reading commands read as it is (older: `cquin store migrate` first); formats 3 and 4
# are read but for their per-subject decisions, which need format 5 (cquin.store.trace.require_format5).
READABLE_FROM = 3

TABLES: dict[str, dict[str, Any]] = {
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
}
# The trace's tables as formats 1-4 kept them, which the steps that made them still make (a released step is
# never edited): each cohort member with the reason in words, and one row per subject whose `decisions` is a
# JSON object keyed by component id, each [in_denominator, in_numerator, rule, reason].  Format 5 rebuilds
# them as compact facts (cquin.store.trace, which also names the tables a run writes its trace to).
FORMAT4_TRACE_TABLES: dict[str, dict[str, Any]] = {
    "run_cohorts": {"columns": {"run_id": str, "cohort": str, "patient_id": str, "reason": str}},
    "run_subjects": {"columns": {"run_id": str, "entity": str, "subject_id": str, "decisions": str}},
}
RUN_TABLES = (*TABLES, *trace.TABLES)  # every table holding rows of runs


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
    with write_transaction(db):
        version = db.conn.execute("PRAGMA user_version").fetchone()[0]  # again, now that the write lock is held
        thaw_for_migration(db)  # a format change may rewrite run rows; the guards are put back below
        for step, migrate in enumerate(_STEPS, start=1):
            if version < step:
                migrate(db)
        _create_indexes(db)  # idempotent: whatever a step rebuilt, the indexes and views are there
        trace.create_views(db)
        create_signoff_tables(db)  # the guards on signed-off runs, over every table (idempotent)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _format4_view(db: Database) -> None:
    """The run_decisions view over the format-4 trace (made by steps 1 and 2, replaced by step 5)."""
    db.execute(
        """CREATE VIEW IF NOT EXISTS run_decisions AS
           SELECT s.run_id, j.key AS component, s.entity, s.subject_id,
                  json_extract(j.value, '$[0]') AS in_denominator, json_extract(j.value, '$[1]') AS in_numerator,
                  json_extract(j.value, '$[2]') AS rule, json_extract(j.value, '$[3]') AS reason
           FROM run_subjects s, json_each(s.decisions) j"""
    )


def _create_missing_tables(db: Database) -> None:
    """The run tables a store lacks, the trace's as format 4 made them (step 5 rebuilds those)."""
    for name, spec in {**TABLES, **FORMAT4_TRACE_TABLES}.items():
        if not db.table(name).exists():
            fks = [] if name == "runs" else [("run_id", "runs", "run_id")]
            db.table(name).create(spec["columns"], pk=spec.get("pk"), foreign_keys=fks)


def _step1_tables(db: Database) -> None:
    """Format 1: the run tables (each keyed to ``runs``), their indexes and the run_decisions view."""
    _create_missing_tables(db)
    db.execute("CREATE INDEX IF NOT EXISTS idx_subjects_subject ON run_subjects (run_id, subject_id)")
    _format4_view(db)
    _create_indexes(db)


def _create_indexes(db: Database) -> None:
    """An index on ``run_id`` for each run table (the trace's tables are keyed by it already)."""
    for name in TABLES:
        if name != "runs":
            db.execute(f"CREATE INDEX IF NOT EXISTS idx_{name}_run ON {name} (run_id)")


def _step5_trace(db: Database) -> None:
    """Format 5: the trace as compact facts; every stored run's decisions and cohort members are converted."""
    trace.migrate_format4(db)


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


def fraction_parts(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    f = Fraction(text)
    return f.numerator, f.denominator


def pence(text: str | None) -> int | None:
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
    db.conn.create_function("cquin_pence", 1, pence, deterministic=True)
    db.conn.create_function("cquin_num", 1, lambda t: fraction_parts(t)[0], deterministic=True)
    db.conn.create_function("cquin_den", 1, lambda t: fraction_parts(t)[1], deterministic=True)
    for table, spec in {**TABLES, **FORMAT4_TRACE_TABLES}.items():
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
            db.table("run_totals").insert_all(total_rows(run["run_id"], json.loads(run["totals"]), json.loads(run["available"])))
    # Declared foreign keys (sqlite-utils rebuilds each table with its key; the rows are copied unchanged).
    # The run_decisions view is dropped first (a table rebuilt under a view fails on older SQLite tooling);
    # it is made again at once.
    db.execute("DROP VIEW IF EXISTS run_decisions")
    tables = {**TABLES, **FORMAT4_TRACE_TABLES}
    db.add_foreign_keys([(t, "run_id", "runs", "run_id") for t in tables if t != "runs" and not db.table(t).foreign_keys])
    _format4_view(db)


def total_rows(run_id: str, totals: dict[str, str], available: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "year": year, "earned_pence": pence(totals.get(year)), "available_pence": pence(available.get(year))}
        for year in dict.fromkeys([*available, *totals])
    ]


# Migration steps in order: _STEPS[N-1] takes a store from format N-1 to N.
_STEPS = (_step1_tables, _migrate_2, create_signoff_tables, _step4_identity, _step5_trace)
assert len(_STEPS) == SCHEMA_VERSION


@contextmanager
def write_transaction(db: Database) -> Iterator[None]:
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
