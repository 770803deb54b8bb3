"""What a report shows, read from the audit store: one run's results, its ruleset copy and its aggregates.

Everything comes from the stored run, so the page can be traced to the audit
store by its run id and ruleset hash; nothing is re-read from patient records.
The breakdowns (counts by LTC category, age band, ...; see
:mod:`cquin.engine.breakdowns`) come from the store when the run kept them, or
are passed in by a caller that still has the evaluation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin.store import load_run, open_store

# A rejection's kind is its reason with every patient-level value taken out, so outputs that leave the store (the
# report, the tables for BI tools) can group and show reasons without identifiers.  Taken out: the rejection's own
# value and reference (its structured fields), anything quoted, and every word holding a digit (NHS numbers
# however written, 999 000 0018 or 999-000-0018; local ids; dates; line numbers) except the few format and
# field words below.  A reason's words without digits are cquin's own wording.
_QUOTED = re.compile(r"'[^']*'")
_WORD = re.compile(r"[^\s'(),;:\[\]{}]+")
_KEEP = re.compile(r"(?i)(icd-10|gpps_q3[23]|q3[23]|cyp\d{3}[a-z]*|c19(haem)?can_cod|utf-8|utf-16|windows-1252|pam-13|r4)")
_MASK = "…"


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

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def provider_name(self) -> str | None:
        p = (self.breakdowns or {}).get("provider") or {}
        return p.get("name")


def rejection_kind(reason: str, value: str | None = None, ref: str | None = None) -> str:
    """The reason without patient-level values (see above): what kind of problem, never whose."""
    text = reason or ""
    for known in sorted({v for v in (value, ref) if v and len(v.strip()) > 1}, key=len, reverse=True):
        text = text.replace(known, _MASK)
    text = _QUOTED.sub(_MASK, text).replace("Modulus 11", "Modulus-eleven")
    text = _WORD.sub(lambda m: m[0] if not any(ch.isdigit() for ch in m[0]) or _KEEP.fullmatch(m[0]) else _MASK, text)
    return re.sub(f"{_MASK}(?:[\\s/.-]+{_MASK})+", _MASK, text).replace("Modulus-eleven", "Modulus 11")


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
    counts: dict[tuple[str, str], int] = {}
    for row in db.query("SELECT file, value, ref, reason FROM run_rejections WHERE run_id = ?", [run["run_id"]]):
        key = (row["file"], rejection_kind(row["reason"], row["value"], row["ref"]))
        counts[key] = counts.get(key, 0) + 1
    rejections = sorted(((f, k, n) for (f, k), n in counts.items()), key=lambda r: (r[0], -r[2], r[1]))
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
    )


def stored_ruleset(store: Path | Database, run_id: str) -> dict[str, Any]:
    """The run's own copy of its ruleset (what it was evaluated with), for exports made from the run."""
    db = store if isinstance(store, Database) else open_store(store)
    return dict(json.loads(load_run(db, run_id).run["ruleset_json"]))
