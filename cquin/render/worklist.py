"""The people behind each component's distance to its next band: who to see, train or follow up.

For every component with a next paying band, the work-list names the
denominator members not yet in the numerator (cohort patients with no
conversation yet, relevant staff not yet trained, followed-up patients not yet
improved), each with the run's own reason; and, where the denominator is drawn
from a cohort (the Year 2 improvement is measured on cohort patients with a
follow-up), the cohort members not yet in the denominator (no follow-up on
their baseline's instrument yet).  Everything is read from the audit store, so
the list agrees with the run's counts.

The list names patients and staff: it is identifiable, for the care teams, and
written owner-only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin.engine.outcome import NextStep
from cquin.store import load_run, open_store

IDENTIFIABLE = "IDENTIFIABLE: names patients and staff; share only with the care teams"
COLUMNS = ["component", "next_band", "more_needed", "worth", "entity", "id", "status", "why", "identifiable"]


@dataclass(frozen=True)
class WorkItem:
    """One person on a component's work-list."""

    component: str
    entity: str
    subject_id: str
    status: str  # "not yet counted" | "cohort member, not yet in the denominator"
    why: str


@dataclass(frozen=True)
class WorkList:
    """A component's next step and the people who would take it there."""

    step: NextStep
    items: list[WorkItem]


def _cohort_feeding(ruleset: dict[str, Any], population: str) -> tuple[str, str] | None:
    """(cohort population id, cohort name) when ``population`` is drawn from a cohort, else None."""
    pops = ruleset["populations"]
    rule = pops.get(population, {}).get("rule", {})
    refs = [r["population"] for r in rule.get("all_of", []) if isinstance(r, dict) and "population" in r]
    for ref in refs:
        cohort = pops.get(ref, {}).get("rule", {}).get("cohort")
        if cohort:
            return ref, str(cohort["overrides"])
    return None


def work_lists(db: Database, run_id: str) -> Iterator[WorkList]:
    """Each component's work-list, in the run's component order (components at their top band have none)."""
    stored = load_run(db, run_id)
    run = stored.run
    rid = run["run_id"]
    ruleset = json.loads(run["ruleset_json"])
    for c in stored.components:
        step = NextStep.from_stored(c)
        if step is None or not step.reachable or not step.entity:
            continue
        items = [
            WorkItem(c["component"], str(r["entity"]), str(r["subject_id"]), "not yet counted", str(r["reason"] or ""))
            for r in db.query(
                """SELECT entity, subject_id, reason FROM run_decisions
                   WHERE run_id = ? AND component = ? AND in_denominator = 1 AND in_numerator = 0
                   ORDER BY subject_id""",
                [rid, c["component"]],
            )
        ]
        spec: dict[str, Any] = next((s for s in ruleset["components"] if s["id"] == c["component"]), {})
        feeding = _cohort_feeding(ruleset, spec.get("denominator", ""))
        if feeding is not None:
            _, cohort = feeding
            items += [
                WorkItem(
                    c["component"],
                    "patient",
                    str(r["patient_id"]),
                    "cohort member, not yet in the denominator",
                    str(r["reason"] or ""),
                )
                for r in db.query(
                    """SELECT k.patient_id, d.reason FROM run_cohorts k
                       JOIN run_decisions d ON d.run_id = k.run_id AND d.subject_id = k.patient_id AND d.component = ?
                       WHERE k.run_id = ? AND k.cohort = ? AND d.in_denominator = 0
                       ORDER BY k.patient_id""",
                    [c["component"], rid, cohort],
                )
            ]
        yield WorkList(step, items)


def write_worklist(store: Path, run_id: str, out: Path) -> list[tuple[NextStep, int]]:
    """Write every component's work-list to one CSV (UTF-8 with BOM, owner-only); returns (step, people) per list."""
    from cquin.outfile import check_out, safe_cell, spreadsheet_csv

    check_out(out)
    db = open_store(store, read_only=True)
    written = []
    with spreadsheet_csv(out, identifiable=True) as w:
        w.writerow(COLUMNS)
        for wl in work_lists(db, run_id):
            s = wl.step
            head = [s.component, s.band, s.more_needed, "" if s.worth is None else f"{s.worth:.2f}"]
            for item in wl.items:
                w.writerow([safe_cell(x) for x in head + [item.entity, item.subject_id, item.status, item.why, "yes"]])
            written.append((s, len(wl.items)))
    return written
