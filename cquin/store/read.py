"""Reading runs back from the audit store: the run, its components, a subject's decisions and a cohort's members."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils.db import Database

from cquin.engine.evidence import EVIDENCE_MARK, PSEUDONYMOUS_MARK
from cquin.exceptions import StoreError
from cquin.store import trace


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


def evidence_missing(run: dict[str, Any]) -> list[str]:
    """A stored run's leading notices (pseudonymous identifiers, missing evidence): they lead its notes."""
    notes = json.loads(run.get("notes") or "[]")
    return [n for n in notes if isinstance(n, str) and n.startswith((EVIDENCE_MARK, PSEUDONYMOUS_MARK))]


LATEST = "latest"


def resolve_run_id(db: Database, ref: str) -> str:
    """The full run id for ``ref``: a run id, a unique prefix of one, or ``latest`` (the last run started)."""
    ref = ref.strip()
    if ref == LATEST:
        # Two runs started in the same second (ids keep seconds): the one stored last.
        rows = list(db.query("SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"))
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
            "FROM runs ORDER BY started_at, rowid"
        )
    )


def _components(db: Database, run_id: str) -> dict[int, str]:
    return {r[0]: r[1] for r in db.execute("SELECT ordinal, component FROM run_components WHERE run_id = ?", [run_id])}


def _decisions(terms: trace.Terms, components: dict[int, str], entity: str, shape: int, vals: str) -> list[dict[str, Any]]:
    return [
        {
            "component": components[d.ordinal],
            "entity": entity,
            "in_denominator": d.in_denominator,
            "in_numerator": d.in_numerator,
            "rule": d.rule,
            "reason": d.reason,
        }
        for d in trace.decode(terms, shape, vals)
    ]


def decisions_for(db: Database, run_id: str, subject_id: str) -> list[dict[str, Any]]:
    """A subject's decisions in a run, in the order of the run's components, each reason in words."""
    trace.require_format5(db.conn)
    rows = db.execute(
        "SELECT entity, shape, vals FROM run_subjects WHERE run_id = ? AND subject_id = ? ORDER BY entity", [run_id, subject_id]
    ).fetchall()
    if not rows:
        return []
    terms, components = trace.Terms(db.conn), _components(db, run_id)
    return [d for entity, shape, vals in rows for d in _decisions(terms, components, entity, shape, vals)]


def subject_decisions(db: Database, run_id: str, entity: str | None = None) -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    """Every subject of a run (of one entity, if given) with its decisions, in subject order: (entity, id, decisions)."""
    terms, components = trace.Terms(db.conn), _components(db, run_id)
    where, params = ("AND entity = ?", [run_id, entity]) if entity else ("", [run_id])
    rows = db.execute(
        f"SELECT entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ? {where} ORDER BY subject_id, entity", params
    )
    while batch := rows.fetchmany(10_000):
        for ent, sid, shape, vals in batch:
            yield ent, sid, _decisions(terms, components, ent, shape, vals)


class SubjectDecoder:
    """Decodes stored subject rows of one run (for readers that select the rows themselves, e.g. a comparison)."""

    def __init__(self, db: Database, run_id: str, terms: trace.Terms | None = None) -> None:
        self.terms = terms or trace.Terms(db.conn)
        self.components = _components(db, run_id)

    def decisions(self, entity: str, shape: int, vals: str) -> list[dict[str, Any]]:
        return _decisions(self.terms, self.components, entity, shape, vals)


def cohort_members(db: Database, run_id: str, cohort: str) -> Iterator[dict[str, Any]]:
    """A cohort's members in a run, each with the reason they are in (in words)."""
    terms = trace.Terms(db.conn)
    rows = db.execute(
        "SELECT patient_id, reason, vals FROM run_cohorts WHERE run_id = ? AND cohort = ? ORDER BY patient_id", [run_id, cohort]
    )
    while batch := rows.fetchmany(10_000):
        for pid, reason, vals in batch:
            yield {"patient_id": pid, "reason": terms.sentence(reason, vals)}


def cohorts_of(db: Database, run_id: str, patient_id: str) -> list[dict[str, Any]]:
    """The cohorts a patient is a member of in a run, each with the reason (in words)."""
    trace.require_format5(db.conn)
    rows = db.execute(
        "SELECT cohort, reason, vals FROM run_cohorts WHERE run_id = ? AND patient_id = ? ORDER BY cohort", [run_id, patient_id]
    ).fetchall()
    if not rows:
        return []
    terms = trace.Terms(db.conn)
    return [{"cohort": c, "reason": terms.sentence(r, v)} for c, r, v in rows]
