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
import os
import queue
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin import __version__
from cquin.cycle.schema import create_signoff_tables, thaw_for_migration
from cquin.dataset import CanonicalDataset
from cquin.dataset.checks import sql_str
from cquin.dataset.duck import first_row
from cquin.engine.evaluation import RunResult
from cquin.exceptions import StoreError
from cquin.pseudonymise import Pseudonymiser

DEFAULT_STORE = Path("cquin-audit.sqlite")
SCHEMA_VERSION = 3  # 2: numeric columns and foreign keys; 3: sign-offs (cquin.cycle.schema), signed-off runs frozen
BUSY_TIMEOUT_MS = 600_000  # a second writer waits for the first rather than failing

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


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def open_store(path: Path) -> Database:
    """Open (creating, owner-only, and migrating) the audit store at ``path``."""
    path = Path(path)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        # Larger pages suit a store of long JSON rows written in bulk (about a third faster than 4 KB pages);
        # it takes effect only when the file is new.
        conn.execute("PRAGMA page_size = 16384")
        conn.execute("PRAGMA journal_mode = WAL")
        db = Database(conn)
        _migrate(db)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the audit store ({exc})") from None
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the audit store ({exc.strerror})") from None
    return db


def _migrate(db: Database) -> None:
    """Create missing tables and indexes and carry an older store forward; the store records its schema version."""
    with _write(db):
        found = db.execute("PRAGMA user_version").fetchone()[0]
        fresh = not db.table("runs").exists()
        if found < SCHEMA_VERSION:
            thaw_for_migration(db)  # a format change may rewrite run rows; the guards are put back below
        for name, spec in _TABLES.items():
            if not db.table(name).exists():
                fks = [] if name == "runs" else [("run_id", "runs", "run_id")]
                db.table(name).create(spec["columns"], pk=spec.get("pk"), foreign_keys=fks)
        if not fresh and found < 2:
            _migrate_2(db)
        db.execute("CREATE INDEX IF NOT EXISTS idx_subjects_subject ON run_subjects (run_id, subject_id)")
        db.execute(
            """CREATE VIEW IF NOT EXISTS run_decisions AS
               SELECT s.run_id, j.key AS component, s.entity, s.subject_id,
                      json_extract(j.value, '$[0]') AS in_denominator, json_extract(j.value, '$[1]') AS in_numerator,
                      json_extract(j.value, '$[2]') AS rule, json_extract(j.value, '$[3]') AS reason
               FROM run_subjects s, json_each(s.decisions) j"""
        )
        for name in _TABLES:
            if name not in ("runs", "run_subjects"):
                db.execute(f"CREATE INDEX IF NOT EXISTS idx_{name}_run ON {name} (run_id)")
        # Format 3: the append-only sign-off table; every run table refuses changes to a signed-off run.
        create_signoff_tables(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def reason_group(reason: str | None) -> str:
    """A rejection's reason with its values, NHS numbers and line numbers taken out, so like rows group together.

    "exact duplicate of conditions.csv line 2803 (counted once)" -> "exact duplicate of conditions.csv line … (counted once)";
    "unknown patient 9990022070: not in patients.csv" -> "unknown patient …: not in patients.csv".
    """
    return _REASON_VALUES.sub(lambda m: "line …" if m.group(0).startswith("line") else "…", reason or "")


_REASON_VALUES = re.compile(r"'[^']*'|(?<![0-9])[0-9]{10}(?![0-9])|\bline [0-9]+")


def _fraction_parts(text: str | None) -> tuple[int | None, int | None]:
    if text is None:
        return None, None
    f = Fraction(text)
    return f.numerator, f.denominator


def _pence(text: str | None) -> int | None:
    return None if text is None else int(Decimal(text) * 100)


def _migrate_2(db: Database) -> None:
    """Schema 2: numeric money (pence) and fractions (numerator, denominator) beside their text, each run's totals
    as rows, reason groups for rejections, and foreign keys from every run table to ``runs``.

    Existing rows are filled from what the store already holds, so a store written by an older cquin keeps
    every run and reads exactly as a new one.
    """
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
    # _migrate creates it again.
    db.execute("DROP VIEW IF EXISTS run_decisions")
    db.add_foreign_keys([(t, "run_id", "runs", "run_id") for t in _TABLES if t != "runs" and not db.table(t).foreign_keys])


def _total_rows(run_id: str, totals: dict[str, str], available: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"run_id": run_id, "year": year, "earned_pence": _pence(totals.get(year)), "available_pence": _pence(available.get(year))}
        for year in dict.fromkeys([*available, *totals])
    ]


@contextmanager
def _write(db: Database) -> Iterator[None]:
    """One write transaction, taken eagerly so concurrent writers queue instead of failing."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.conn.execute("ROLLBACK")
        raise
    else:
        db.conn.execute("COMMIT")


def results_digest(result: RunResult, dataset: CanonicalDataset) -> str:
    """A digest of the component results and every decision, to tell whether two runs agree exactly."""
    import hashlib

    h = hashlib.sha256()
    h.update(json.dumps([c.as_dict() for c in result.components], sort_keys=True).encode())
    h.update(json.dumps([m.__dict__ for m in result.milestones], sort_keys=True, default=str).encode())
    digest = first_row(
        dataset.con, "SELECT count(*), bit_xor(hash(component, id, in_denominator, in_numerator, rule, reason)) FROM decisions"
    )
    h.update(repr(digest).encode())
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
        "notes": ps.text(json.dumps(ledger.notes)),
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
            if breakdowns is not None:
                db.table("run_breakdowns").insert({"run_id": run_id, "breakdowns": json.dumps(breakdowns, sort_keys=True)})
            db.table("run_unmatched_codes").insert_all(
                {"run_id": run_id, "code_system": s, "code": c, "count": n} for s, c, n in result.unmatched_codes
            )
            _copy(
                db,
                dataset,
                f"SELECT cohort, {ps.id_sql('id')}, {ps.text_sql('reason')} FROM cohort_members ORDER BY cohort, id",
                "run_cohorts",
                ("cohort", "patient_id", "reason"),
                run_id,
            )
            subjects = subject_decisions_sql(result)
            if ps.fingerprint:
                subjects = f"""SELECT entity, CASE WHEN entity = 'patient' THEN {ps.id_sql("id")} ELSE id END,
                                      {ps.text_sql("decisions")} FROM ({subjects})"""
            _copy(db, dataset, subjects, "run_subjects", ("entity", "subject_id", "decisions"), run_id)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot write the run to the audit store: {exc} (nothing was written)") from None
    return run_id


def subject_decisions_sql(result: RunResult) -> str:
    """SQL giving one row per subject: (entity, id, JSON object of that subject's decisions keyed by component).

    Every component's decisions cover every subject of its entity (each population table holds a row for
    every patient or member of staff), so the components' rows are put side by side with joins on the
    subject and the JSON text is concatenated: much cheaper than aggregating four million rows.  Ordered by
    subject so SQLite appends to its index instead of inserting at random.
    """
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
        joins = " ".join(
            f"LEFT JOIN (SELECT * FROM decisions WHERE component = {sql_str(cid)}) c{i} USING (id)"
            for i, cid in enumerate(ids)
            if i
        )
        selects.append(
            f"""SELECT {sql_str(entity)} AS entity, c0.id, '{{' || concat_ws(',', {", ".join(items)}) || '}}' AS decisions
                FROM (SELECT * FROM decisions WHERE component = {sql_str(ids[0])}) c0 {joins}"""
        )
    if not selects:
        return "SELECT entity, id, NULL AS decisions FROM decisions WHERE false"
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
