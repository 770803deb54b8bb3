"""Writing one evaluation to the audit store: the run, its inputs, results, cohorts and every subject's decisions."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin import __version__, storefile
from cquin.dataset import CanonicalDataset
from cquin.engine.evaluation import RunResult, Trace
from cquin.engine.evidence import pseudonymous_notice
from cquin.pseudonymise import Pseudonymiser
from cquin.store import trace
from cquin.store.schema import fraction_parts, pence, reason_group, total_rows, write_transaction


def notices(result: RunResult, dataset: CanonicalDataset) -> list[str]:
    """What every output of a run says first: pseudonymous identifiers, then components with no evidence."""
    first = pseudonymous_notice(dataset.pseudonymous)
    return ([first] if first else []) + [g.message for g in result.evidence_gaps]


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
    breakdowns: dict[str, Any] | Callable[[], dict[str, Any] | None] | None = None,
    pseudonymise_key: bytes | None = None,
    data_quality: dict[str, Any] | None = None,
) -> str:
    """Write one complete run in a single transaction; returns the run id.

    With ``pseudonymise_key``, a keyed hash replaces every NHS number the store
    would otherwise keep (subjects, cohorts, overrides, rejected values and any
    ten-digit number in reasons and notes), so the audit can be shared.  ``breakdowns`` may be a callable
    giving them, called once the trace is written (the runner works them out meanwhile, on the other core).
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
        with write_transaction(db):
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
                    "available_pence": pence(f"{c.available:.2f}"),
                    "payment_pence": pence(f"{c.payment:.2f}"),
                    "payment_fraction_numerator": fraction_parts(c.as_dict()["payment_fraction"])[0],
                    "payment_fraction_denominator": fraction_parts(c.as_dict()["payment_fraction"])[1],
                    "share_numerator": fraction_parts(c.as_dict()["share"])[0],
                    "share_denominator": fraction_parts(c.as_dict()["share"])[1],
                }
                for i, c in enumerate(result.components)
            )
            db.table("run_totals").insert_all(
                total_rows(run_id, json.loads(str(run_row["totals"])), json.loads(str(run_row["available"])))
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
            db.table("run_unmatched_codes").insert_all(
                {"run_id": run_id, "code_system": s, "code": c, "count": n} for s, c, n in result.unmatched_codes
            )
            # The trace, as compact facts against the store's term dictionary (cquin.store.trace).
            encoded = encoded_trace(result, dataset, trace.TermIndex(db.conn), ps)
            try:
                _copy(
                    db,
                    dataset,
                    f"SELECT cohort, {ps.id_sql('id')}, reason, vals FROM ({encoded.cohorts_sql})",
                    "run_cohorts",
                    ("cohort", "patient_id", "reason", "vals"),
                    run_id,
                )
                _copy(
                    db,
                    dataset,
                    f"""SELECT entity, CASE WHEN entity = 'patient' THEN {ps.id_sql("id")} ELSE id END, shape, vals
                        FROM ({encoded.subjects_sql})""",
                    "run_subjects",
                    ("entity", "subject_id", "shape", "vals"),
                    run_id,
                )
            finally:
                encoded.drop(dataset.con)
            # Last, so that breakdowns still being worked out (a callable) are summed while the trace is written.
            summary = breakdowns() if callable(breakdowns) else breakdowns
            if summary is not None:
                db.table("run_breakdowns").insert({"run_id": run_id, "breakdowns": json.dumps(summary, sort_keys=True)})
    except sqlite3.Error as exc:  # errors on the store's own connection are already explained
        raise storefile.store_error(getattr(db.conn, "store_path", Path("audit store")), exc) from None
    return run_id


def encoded_trace(
    result: RunResult, dataset: CanonicalDataset, terms: trace.TermIndex, ps: Pseudonymiser | None = None
) -> trace.Encoded:
    """The run's trace encoded against the store's terms: each subject's decisions for every component that has
    begun (in the run's component order), and each cohort's members; reasons pseudonymised first with ``ps``."""
    t = trace_of(result)
    decisions: dict[str, list[tuple[int, str]]] = {}
    for ordinal, c in enumerate(result.components):
        if c.entity and c.denominator is not None:  # a component of a year not begun decides no one
            decisions.setdefault(c.entity, []).append((ordinal, c.id))
    return trace.encode(
        dataset.con,
        terms,
        templates=t.templates.texts,
        decisions=decisions,
        decisions_sql=lambda cid: f"SELECT id, in_denominator, in_numerator, rule, reason FROM ({t.decisions_sql(cid)})",
        cohorts_sql=t.cohort_members_sql(),
        values_sql=ps.text_sql if ps is not None and ps.fingerprint else None,
    )


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
