"""Sign-off, recorded: who agreed (or disputed) what, when, against which run's results.

The indicator's returns are "submitted via NHS Digital SDCS following locally agreed sign off
processes by the commissioner" (Data source, Year One 3); the commissioner must "confirm whether the
plan has been received and accepted" (milestones, end of Q2); and the Year 2 cohort is one the
provider "will identify and agree ... with the commissioner" (Year 2).  Each such decision is a row of
``run_signoffs``, tied to a run and to a digest of what was agreed:

- ``results``: the run's results hash (every component figure and every patient's decision);
- ``cohort.<name>``: a digest of the cohort's members (the Year 1 and Year 2 cohort agreements);
- a ``recorded_evidence`` subject of the run's ruleset (e.g. ``plan``): a decision later evaluations read.

Rows are never changed or deleted, and once a run has a sign-off its own records are frozen too (SQLite
triggers, :mod:`cquin.storeguards`).  A correction is a new run that says which run it supersedes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin import __version__
from cquin.engine.recorded import RecordedDecision
from cquin.exceptions import StoreError, UserError
from cquin.store import load_run, open_store
from cquin.storeguards import SIGNOFF_TABLE

PARTIES = ("provider", "commissioner")
DECISIONS = ("agree", "dispute")
YES_NO = {"yes": "agree", "no": "dispute"}  # a recorded-evidence question is answered yes or no


@dataclass(frozen=True)
class Signoff:
    """One recorded decision."""

    signoff_id: int
    run_id: str
    subject: str
    party: str
    signed_by: str
    decision: str
    note: str | None
    decided_on: str
    recorded_at: str
    digest: str
    provider_code: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Signoff:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})

    def describe(self) -> str:
        verb = "agreed" if self.decision == "agree" else "DISPUTED"
        text = f"{verb} by the {self.party} ({self.signed_by}, {self.decided_on})"
        return text + (f": {self.note}" if self.note else "")


@dataclass
class SignoffState:
    """A run's sign-off state: the latest decision of each party on each subject, and the run's place in a chain."""

    run_id: str
    results_digest: str
    decisions: list[Signoff] = field(default_factory=list)  # every decision on this run, oldest first
    supersedes: str | None = None
    superseded_by: list[str] = field(default_factory=list)
    cohort_agreements: list[tuple[str, Signoff, bool]] = field(default_factory=list)  # (cohort, agreement, this run matches)
    evidence: list[Signoff] = field(default_factory=list)  # recorded-evidence decisions for this run's provider

    def latest(self, subject: str, party: str) -> Signoff | None:
        found = [s for s in self.decisions if s.subject == subject and s.party == party]
        return max(found, key=lambda s: (s.decided_on, s.signoff_id), default=None)

    @property
    def frozen(self) -> bool:
        """A run with any recorded decision is kept exactly as it was."""
        return bool(self.decisions)

    @property
    def signed_off(self) -> bool:
        """Both parties' latest decisions on the results are "agree"."""
        return all((s := self.latest("results", p)) is not None and s.decision == "agree" for p in PARTIES)

    @property
    def status(self) -> str:
        """One phrase: signed off, disputed, partly agreed or not signed off."""
        latest = {p: self.latest("results", p) for p in PARTIES}
        if self.signed_off:
            return "signed off"
        disputed = [p for p, s in latest.items() if s is not None and s.decision == "dispute"]
        if disputed:
            return "disputed by the " + " and the ".join(disputed)
        agreed = [p for p, s in latest.items() if s is not None]
        if agreed:
            waiting = next(p for p in PARTIES if p not in agreed)
            return f"agreed by the {agreed[0]}; awaiting the {waiting}"
        return "not signed off"

    @property
    def summary(self) -> str:
        """The sign-off state in one line, as every output shows it."""
        text = f"sign-off: {self.status}"
        parts = [s.describe() for p in PARTIES if (s := self.latest("results", p)) is not None]
        if parts:
            text += " — " + "; ".join(parts) + f" (results {self.results_digest[:12]})"
        if self.superseded_by:
            text += f"; SUPERSEDED by run {', '.join(self.superseded_by)}"
        if self.supersedes:
            text += f"; supersedes run {self.supersedes}"
        return text

    def lines(self) -> list[str]:
        """The summary, then every cohort agreement and recorded-evidence decision that bears on the run."""
        out = [self.summary]
        for cohort, s, matches in self.cohort_agreements:
            here = "this run's cohort is the one agreed" if matches else "this run's cohort DIFFERS from the one agreed"
            out.append(f"cohort {cohort}: {s.describe()} in run {s.run_id}; {here}")
        for s in self.evidence:
            answer = "yes" if s.decision == "agree" else "no"
            out.append(f"{s.subject}: {answer}, recorded by the {s.party} ({s.signed_by}, {s.decided_on}) in run {s.run_id}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "signed_off": self.signed_off,
            "frozen": self.frozen,
            "results_sha256": self.results_digest,
            "decisions": [s.__dict__ for s in self.decisions],
            "supersedes": self.supersedes,
            "superseded_by": self.superseded_by,
            "cohort_agreements": [
                {"cohort": c, "signoff_id": s.signoff_id, "run_id": s.run_id, "matches": m} for c, s, m in self.cohort_agreements
            ],
        }


def cohort_digest(db: Database, run_id: str, cohort: str) -> str:
    """A digest of a cohort's members in a run: two runs agree on a cohort when their digests are equal."""
    h = hashlib.sha256()
    for row in db.execute(
        "SELECT patient_id FROM run_cohorts WHERE run_id = ? AND cohort = ? ORDER BY patient_id", [run_id, cohort]
    ).fetchall():
        h.update(row[0].encode() + b"\n")
    return h.hexdigest()


def run_provider(db: Database, run_id: str) -> str | None:
    """The provider's ODS code as the run recorded it (from its breakdowns)."""
    rows = db.execute(
        "SELECT json_extract(breakdowns, '$.provider.code') FROM run_breakdowns WHERE run_id = ?", [run_id]
    ).fetchall()
    return rows[0][0] if rows and rows[0][0] else None


def supersedes_of(run: dict[str, Any]) -> str | None:
    return json.loads(run.get("parameters") or "{}").get("supersedes")


def _subjects(run: dict[str, Any]) -> dict[str, str]:
    """What a run can be signed off on: subject -> what it means."""
    ruleset = json.loads(run["ruleset_json"])
    out = {"results": "the run's results"}
    for name in json.loads(run["cohorts"] or "{}"):
        out[f"cohort.{name}"] = f"the {name} cohort's members"
    for eid, spec in (ruleset.get("recorded_evidence") or {}).items():
        out[spec["subject"]] = f"{spec['label']} (recorded evidence {eid}; {spec['party']})"
    return out


def record_signoff(
    store: Path,
    run_id: str,
    *,
    party: str,
    by: str,
    decision: str,
    subject: str = "results",
    note: str | None = None,
    on: dt.date | None = None,
) -> tuple[Signoff, SignoffState]:
    """Record one decision about a stored run; returns it and the run's sign-off state after it."""
    if party not in PARTIES:
        raise UserError(f"--as {party!r}: expected provider or commissioner")
    decision = YES_NO.get(decision, decision)
    if decision not in DECISIONS:
        raise UserError(f"--decision {decision!r}: expected agree or dispute (yes or no for a confirmation)")
    by = (by or "").strip()
    if not by:
        raise UserError("--by: give the name of the person signing")
    db = open_store(store)
    run = load_run(db, run_id).run
    rid = run["run_id"]
    subjects = _subjects(run)
    if subject not in subjects:
        raise UserError(
            f"--subject {subject!r}: run {rid} can be signed off on " + ", ".join(f"{k} ({v})" for k, v in subjects.items())
        )
    ruleset = json.loads(run["ruleset_json"])
    for eid, spec in (ruleset.get("recorded_evidence") or {}).items():
        if spec["subject"] == subject and spec["party"] != party:
            raise UserError(f"--subject {subject}: {spec['label']} is recorded by the {spec['party']} (recorded evidence {eid})")
    later = [r for r in superseded_by(db, rid)]
    if later:
        raise UserError(f"run {rid} is superseded by run {', '.join(later)}: sign off the run that replaced it")
    if subject.startswith("cohort."):
        digest = cohort_digest(db, rid, subject.split(".", 1)[1])
    else:
        digest = run["results_sha256"]
    now = dt.datetime.now(dt.UTC)
    row = {
        "run_id": rid,
        "subject": subject,
        "party": party,
        "signed_by": by,
        "decision": decision,
        "note": (note or "").strip() or None,
        "decided_on": (on or now.date()).isoformat(),
        "recorded_at": now.isoformat(timespec="seconds"),
        "digest": digest,
        "provider_code": run_provider(db, rid),
        "engine_version": __version__,
    }
    try:
        db.conn.execute("BEGIN IMMEDIATE")
        cur = db.conn.execute(
            f"INSERT INTO {SIGNOFF_TABLE} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", list(row.values())
        )
        db.conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise StoreError(f"cannot record the sign-off: {exc} (nothing was recorded)") from None
    saved = Signoff.from_row({**row, "signoff_id": cur.lastrowid})
    return saved, signoff_state(db, rid)


def superseded_by(db: Database, run_id: str) -> list[str]:
    return [
        r[0]
        for r in db.execute(
            "SELECT run_id FROM runs WHERE json_extract(parameters, '$.supersedes') = ? ORDER BY started_at, rowid", [run_id]
        ).fetchall()
    ]


def signoff_state(db: Database, run_id: str) -> SignoffState:
    """The sign-off state of a stored run (``run_id`` exactly as stored)."""
    run = load_run(db, run_id).run
    rid = run["run_id"]
    rows = [Signoff.from_row(r) for r in db.query(f"SELECT * FROM {SIGNOFF_TABLE} WHERE run_id = ? ORDER BY signoff_id", [rid])]
    state = SignoffState(rid, run["results_sha256"], rows, supersedes_of(run), superseded_by(db, rid))
    provider = run_provider(db, rid)
    # Cohort agreements for this provider (made on any run): does this run's cohort match the latest one?
    for name in json.loads(run["cohorts"] or "{}"):
        agreed = _latest_for_provider(db, provider, f"cohort.{name}", rid)
        if agreed is not None and agreed.decision == "agree":
            state.cohort_agreements.append((name, agreed, agreed.digest == cohort_digest(db, rid, name)))
    ruleset = json.loads(run["ruleset_json"])
    for spec in (ruleset.get("recorded_evidence") or {}).values():
        found = _latest_for_provider(db, provider, spec["subject"], rid, party=spec["party"])
        if found is not None:
            state.evidence.append(found)
    return state


def _latest_for_provider(
    db: Database, provider: str | None, subject: str, run_id: str, *, party: str | None = None
) -> Signoff | None:
    where = "provider_code = ?" if provider else "run_id = ?"
    args: list[Any] = [provider if provider else run_id, subject]
    sql = f"SELECT * FROM {SIGNOFF_TABLE} WHERE {where} AND subject = ?"
    if party:
        sql += " AND party = ?"
        args.append(party)
    rows = list(db.query(sql + " ORDER BY decided_on DESC, signoff_id DESC LIMIT 1", args))
    return Signoff.from_row(rows[0]) if rows else None


def recorded_decisions(db: Database, provider_code: str | None, ruleset_doc: dict[str, Any]) -> list[RecordedDecision]:
    """Every decision recorded for a provider on the ruleset's recorded-evidence subjects (for an evaluation to read)."""
    if not provider_code or not db[SIGNOFF_TABLE].exists():
        return []
    out = []
    for eid, spec in (ruleset_doc.get("recorded_evidence") or {}).items():
        for r in db.query(
            f"SELECT * FROM {SIGNOFF_TABLE} WHERE provider_code = ? AND subject = ? AND party = ? ORDER BY signoff_id",
            [provider_code, spec["subject"], spec["party"]],
        ):
            out.append(
                RecordedDecision(
                    eid,
                    r["decision"],
                    dt.date.fromisoformat(r["decided_on"]),
                    r["signed_by"],
                    r["party"],
                    r["signoff_id"],
                    r["run_id"],
                )
            )
    return out


def signoff_statuses(db: Database) -> dict[str, str]:
    """Every run's sign-off status in a few words (runs with no decision and not superseded are left out)."""
    out: dict[str, str] = {}
    for (rid,) in db.execute(f"SELECT DISTINCT run_id FROM {SIGNOFF_TABLE}").fetchall():
        out[rid] = signoff_state(db, rid).status
    for rid, old in db.execute(
        "SELECT run_id, json_extract(parameters, '$.supersedes') FROM runs WHERE json_extract(parameters, '$.supersedes') IS NOT NULL"
    ).fetchall():
        out[old] = out.get(old, "not signed off") + f"; superseded by {rid}"
    return out


def delete_run(store: Path, run_id: str) -> str:
    """Delete a run that nobody has signed off (every row of it); a signed-off run is refused."""
    db = open_store(store)
    run = load_run(db, run_id).run
    rid = run["run_id"]
    state = signoff_state(db, rid)
    if state.frozen:
        raise StoreError(
            f"run {rid} cannot be deleted: it has {len(state.decisions)} sign-off decision(s) ({state.status}); "
            "a signed-off run is kept exactly as it was. Evaluate again (with --supersedes) to replace it"
        )
    if state.superseded_by:
        raise StoreError(f"run {rid} cannot be deleted: run {', '.join(state.superseded_by)} says it supersedes it")
    tables = [
        r[0]
        for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != ?", [SIGNOFF_TABLE]).fetchall()
        if "run_id" in {c[1] for c in db.execute(f'PRAGMA table_info("{r[0]}")').fetchall()}
    ]
    try:
        db.conn.execute("BEGIN IMMEDIATE")
        for name in sorted(tables, key=lambda n: n == "runs"):  # the run row last
            db.conn.execute(f'DELETE FROM "{name}" WHERE run_id = ?', [rid])
        db.conn.execute("COMMIT")
    except sqlite3.Error as exc:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise StoreError(f"cannot delete run {rid}: {exc} (nothing was deleted)") from None
    return rid
