"""What a report shows, read from the audit store: one run's results, its ruleset copy and its aggregates.

Everything comes from the stored run, so the page can be traced to the audit
store by its run id and ruleset hash; nothing is re-read from patient records.
The breakdowns (counts by LTC category, age band, ...; see
:mod:`cquin.engine.breakdowns`) come from the store when the run kept them, or
are passed in by a caller that still has the evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin.cycle.compare import ProgressPoint, provider_progress
from cquin.cycle.signoff import signoff_state
from cquin.store import load_run, open_store, reason_group


@dataclass
class ReportData:
    """One stored run, ready to draw."""

    run: dict[str, Any]
    ruleset: dict[str, Any]  # the run's own copy of the ruleset
    components: list[dict[str, Any]]
    milestones: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    populations: dict[str, int]
    cohorts: dict[str, int]
    totals: dict[str, str]
    available: dict[str, str]
    rejections: list[tuple[str, str, int]]  # (file, kind, count)
    breakdowns: dict[str, Any] | None
    signoff: list[str] = field(default_factory=list)  # the run's sign-off state, in lines (cquin.cycle.signoff)
    progress: list[ProgressPoint] = field(default_factory=list)  # the provider's runs by as-of date (cquin.cycle.compare)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def provider_name(self) -> str | None:
        p = (self.breakdowns or {}).get("provider") or {}
        return p.get("name")


def rejection_kind(reason: str) -> str:
    """A rejection's kind: its reason with values, NHS numbers and line numbers taken out (as the store groups them)."""
    return reason_group(reason)


def stored_breakdowns(db: Database, run_id: str) -> dict[str, Any] | None:
    """The run's breakdowns if the store kept them (table ``run_breakdowns``), else None."""
    if not db["run_breakdowns"].exists():
        return None
    rows = list(db.query("SELECT breakdowns FROM run_breakdowns WHERE run_id = ?", [run_id]))
    return json.loads(rows[0]["breakdowns"]) if rows and rows[0]["breakdowns"] else None


def load_report_data(store: Path | Database, run_id: str, *, breakdowns: dict[str, Any] | None = None) -> ReportData:
    """Read run ``run_id`` (or a unique prefix) for a report; ``breakdowns`` overrides what the store kept."""
    db = store if isinstance(store, Database) else open_store(store)
    stored = load_run(db, run_id)
    run = stored.run
    counts = db.query(
        "SELECT file, reason_group, count(*) AS n FROM run_rejections WHERE run_id = ? GROUP BY file, reason_group",
        [run["run_id"]],
    )
    rejections = sorted(((r["file"], r["reason_group"], r["n"]) for r in counts), key=lambda r: (r[0], -r[2], r[1]))
    return ReportData(
        run=run,
        ruleset=json.loads(run["ruleset_json"]),
        components=stored.components,
        milestones=stored.milestones,
        inputs=stored.inputs,
        populations=json.loads(run["populations"]),
        cohorts=json.loads(run["cohorts"]),
        totals=json.loads(run["totals"]),
        available=json.loads(run["available"]),
        rejections=rejections,
        breakdowns=breakdowns if breakdowns is not None else stored_breakdowns(db, run["run_id"]),
        signoff=signoff_state(db, run["run_id"]).lines(),
        progress=provider_runs(db, run["run_id"]),
    )


def provider_runs(db: Database, run_id: str) -> list[ProgressPoint]:
    """The run's provider's runs at each as-of date, for the progress section (empty when the run has no provider)."""
    from cquin.cycle.signoff import run_provider

    code = run_provider(db, run_id)
    return provider_progress(db, code)[1] if code else []


def stored_ruleset(store: Path | Database, run_id: str) -> dict[str, Any]:
    """The run's own copy of its ruleset (what it was evaluated with), for exports made from the run."""
    db = store if isinstance(store, Database) else open_store(store)
    return dict(json.loads(load_run(db, run_id).run["ruleset_json"]))
