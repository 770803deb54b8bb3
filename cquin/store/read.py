"""Reading runs back from the audit store: the run, its components, a subject's decisions and a cohort's members."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils.db import Database

from cquin.engine.evidence import EVIDENCE_MARK, PSEUDONYMOUS_MARK
from cquin.exceptions import StoreError


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
