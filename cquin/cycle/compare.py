"""Two stored runs side by side: what differs between them, and who moved in or out of each figure, and why.

For every numerator, denominator and cohort, the patients (or staff) who are in one run's figure and not
the other's, each with the deciding rule and fact in both runs, and the reason they moved:

- ``override``: an agreed cohort override decided their place in one of the runs;
- ``ruleset change``: the runs applied different rulesets to the same records;
- ``record added`` / ``record changed``: the records differ (a patient new or gone, or their records changed),
  or a later as-of date let records dated in between count;
- both, when the runs differ in data and ruleset (each move then says which facts decided it in each run).

Everything is read from the audit store: the runs' results, their per-subject decisions and their inputs'
hashes.  Nothing is re-evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin.cycle.signoff import run_provider, signoff_state
from cquin.exceptions import UserError
from cquin.store import SubjectDecoder, decisions_for, load_run, open_store, trace

OVERRIDE_MARK = "agreed override"  # how the engine words a decision made by an override (cquin.engine.populations)


@dataclass(frozen=True)
class Move:
    """One subject who is in a figure in one run and not in the other."""

    subject_id: str
    entity: str
    direction: str  # "in" (in run B's figure, not run A's) or "out"
    why: str  # override | ruleset change | record added | record changed | record dated after the earlier as-of | ...
    before: str  # the deciding rule and fact in run A
    after: str  # in run B

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


@dataclass
class FigureChange:
    """A numerator, denominator or cohort in both runs, with who moved."""

    item: str  # a component id, or "cohort.<name>"
    measure: str  # numerator | denominator | members
    before: int | None
    after: int | None
    moves: list[Move] = field(default_factory=list)

    @property
    def moved_in(self) -> list[Move]:
        return [m for m in self.moves if m.direction == "in"]

    @property
    def moved_out(self) -> list[Move]:
        return [m for m in self.moves if m.direction == "out"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "measure": self.measure,
            "before": self.before,
            "after": self.after,
            "moved_in": [m.as_dict() for m in self.moved_in],
            "moved_out": [m.as_dict() for m in self.moved_out],
        }


@dataclass
class ComponentChange:
    component: str
    name: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def changed(self) -> bool:
        keys = ("numerator", "denominator", "band", "payment_fraction", "payment")
        a, b = self.before or {}, self.after or {}
        return any(a.get(k) != b.get(k) for k in keys)


@dataclass
class RunComparison:
    run_a: dict[str, Any]
    run_b: dict[str, Any]
    differs_in: list[str]  # data, ruleset, as-of date, contract value, recorded evidence
    input_changes: list[str]
    components: list[ComponentChange]
    figures: list[FigureChange]
    signoff: tuple[str, str]  # each run's sign-off summary
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a["run_id"],
            "run_b": self.run_b["run_id"],
            "differs_in": self.differs_in,
            "input_changes": self.input_changes,
            "components": [
                {"component": c.component, "name": c.name, "before": c.before, "after": c.after, "changed": c.changed}
                for c in self.components
            ],
            "figures": [f.as_dict() for f in self.figures],
            "signoff": {"run_a": self.signoff[0], "run_b": self.signoff[1]},
            "notes": self.notes,
        }


def _component_rows(db: Database, run_id: str) -> dict[str, dict[str, Any]]:
    return {r["component"]: r for r in db.query("SELECT * FROM run_components WHERE run_id = ? ORDER BY ordinal", [run_id])}


def _inputs(db: Database, run_id: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in db.query("SELECT * FROM run_inputs WHERE run_id = ?", [run_id])}


def _differences(db: Database, a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What differs between the runs' inputs and settings, and each changed input file in words."""
    ia, ib = _inputs(db, a["run_id"]), _inputs(db, b["run_id"])
    changes = []
    for name in sorted(set(ia) | set(ib)):
        x, y = ia.get(name), ib.get(name)
        if x is None and y is not None:
            changes.append(f"{name}: added ({y['accepted']:,} rows accepted)")
        elif y is None and x is not None:
            changes.append(f"{name}: not in run B (run A accepted {x['accepted']:,} rows)")
        elif x is not None and y is not None and x["sha256"] != y["sha256"]:
            changes.append(
                f"{name}: changed (accepted {x['accepted']:,} -> {y['accepted']:,}, rejected {x['rejected']:,} -> {y['rejected']:,})"
            )
    pa, pb = json.loads(a["parameters"] or "{}"), json.loads(b["parameters"] or "{}")
    differs = []
    if changes:
        differs.append("data")
    if a["ruleset_sha256"] != b["ruleset_sha256"]:
        differs.append("ruleset")
    if a["as_of"] != b["as_of"]:
        differs.append("as-of date")
    if (pa.get("contract_value"), pa.get("contract_value_year2")) != (pb.get("contract_value"), pb.get("contract_value_year2")):
        differs.append("contract value")
    if pa.get("recorded_evidence") != pb.get("recorded_evidence"):
        differs.append("recorded evidence")
    return differs, changes


def _decided(decision: list[Any] | None) -> str:
    if decision is None:
        return "not in this run's records"
    _, _, rule, reason = decision
    return f"{rule}: {reason}" if reason else str(rule)


def _why(
    differs: list[str],
    a: dict[str, Any],
    b: dict[str, Any],
    before: list[Any] | None,
    after: list[Any] | None,
    overridden: bool,
) -> str:
    """Why a subject moved, from what differs between the runs and the deciding facts."""
    if overridden:
        return "override"
    causes = []
    if before is None or after is None:
        # The patient (or member of staff) is in one run's records only.
        causes.append(("new in the records" if before is None else "no longer in the records") if "data" in differs else "")
    elif "data" in differs:
        causes.append("record added or changed")
    if "as-of date" in differs:
        early, late = sorted([a["as_of"] or "9999-12-31", b["as_of"] or "9999-12-31"])
        late_text = "all records" if late == "9999-12-31" else late
        causes.append(f"record dated after {early} (counted as of {late_text})")
    if "ruleset" in differs:
        causes.append("ruleset change")
    return " and ".join(c for c in causes if c) or "unexplained (the runs' inputs, ruleset and dates are the same)"


def _override_subjects(db: Database, run_id: str) -> set[str]:
    """Patients whose place in a cohort an agreed override decided (an include keeps them in, an exclude out)."""
    terms = trace.Terms(db.conn)
    reasons = set(terms.reasons_containing(OVERRIDE_MARK, db.conn))
    if not reasons:
        return set()
    marks = ", ".join(str(r) for r in sorted(reasons))
    members = db.execute(f"SELECT patient_id FROM run_cohorts WHERE run_id = ? AND reason IN ({marks})", [run_id])
    found = {r[0] for r in members.fetchall()}
    shapes = [
        shape
        for (shape,) in db.execute("SELECT DISTINCT shape FROM run_subjects WHERE run_id = ?", [run_id]).fetchall()
        if shape is not None and any(entry[4] in reasons for entry in terms.shape(shape))
    ]
    if shapes:
        decided = db.execute(
            f"SELECT subject_id FROM run_subjects WHERE run_id = ? AND shape IN ({', '.join(str(h) for h in shapes)})", [run_id]
        )
        found |= {r[0] for r in decided.fetchall()}
    return found


def _subject_pairs(db: Database, a: str, b: str) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Subjects whose decisions differ between the runs: (entity, id, decisions in A, decisions in B); {} when absent.

    The store's terms are shared by its runs and a shape names components by their place in the run, so when
    both runs have the same components in the same order a subject decided alike has the same stored row, and
    only differing rows are decoded; otherwise every subject is decoded and compared component by component.
    """
    terms = trace.Terms(db.conn)
    da, dbb = SubjectDecoder(db, a, terms), SubjectDecoder(db, b, terms)
    # Rows compare only when both runs encoded their reasons the same way (a migrated run split sentences).
    same_components = da.components == dbb.components and trace.split_encoded(db.conn, terms, a) == trace.split_encoded(
        db.conn, terms, b
    )
    differs = "WHERE x.shape IS NOT y.shape OR x.vals IS NOT y.vals" if same_components else ""
    rows = db.execute(
        f"""SELECT coalesce(x.entity, y.entity), coalesce(x.subject_id, y.subject_id), x.shape, x.vals, y.shape, y.vals
           FROM (SELECT entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ?) x
           FULL OUTER JOIN (SELECT entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ?) y
             ON x.entity = y.entity AND x.subject_id = y.subject_id
           {differs}
           ORDER BY 2""",
        [a, b],
    )

    def decided(decoder: SubjectDecoder, entity: str, shape: int | None, vals: str | None) -> dict[str, Any]:
        if shape is None or vals is None:
            return {}
        return {
            d["component"]: [d["in_denominator"], d["in_numerator"], d["rule"], d["reason"]]
            for d in decoder.decisions(entity, shape, vals)
        }

    for entity, sid, sa, va, sb, vb in rows:
        before, after = decided(da, entity, sa, va), decided(dbb, entity, sb, vb)
        if before != after:
            yield entity, sid, before, after


def compare_runs(store: Path | Database, run_a: str, run_b: str) -> RunComparison:
    """Compare two stored runs figure by figure and subject by subject."""
    db = store if isinstance(store, Database) else open_store(store, read_only=True)
    a, b = load_run(db, run_a).run, load_run(db, run_b).run
    if a["run_id"] == b["run_id"]:
        raise UserError(f"compare needs two different runs (both are {a['run_id']})")
    notes = []
    fa = json.loads(a["parameters"] or "{}").get("pseudonymised")
    fb = json.loads(b["parameters"] or "{}").get("pseudonymised")
    same_subjects = fa == fb
    if not same_subjects:
        notes.append(
            "the runs keep patients under different identifiers (pseudonymised with different keys, or only one is): "
            "the figures are compared, but not who moved"
        )
    pa, pb = run_provider(db, a["run_id"]), run_provider(db, b["run_id"])
    if pa and pb and pa != pb:
        notes.append(f"the runs are of different providers ({pa} and {pb})")
    differs, input_changes = _differences(db, a, b)
    ca, cb = _component_rows(db, a["run_id"]), _component_rows(db, b["run_id"])
    ids = list(dict.fromkeys([*ca, *cb]))
    components = [
        ComponentChange(cid, (cb.get(cid) or ca.get(cid) or {}).get("name", ""), ca.get(cid), cb.get(cid)) for cid in ids
    ]
    figures: dict[tuple[str, str], FigureChange] = {}
    for cid in ids:
        x, y = ca.get(cid) or {}, cb.get(cid) or {}
        if x.get("entity") is None and y.get("entity") is None:
            continue  # an attainment component has no population to move in or out of
        for measure in ("numerator", "denominator"):
            figures[(cid, measure)] = FigureChange(cid, measure, x.get(measure), y.get(measure))
    # An override that decided a patient's place in one run and not in the other is why they moved.
    overridden = _override_subjects(db, a["run_id"]) ^ _override_subjects(db, b["run_id"])
    if same_subjects:
        for entity, sid, da, dbb in _subject_pairs(db, a["run_id"], b["run_id"]):
            for cid in ids:
                before, after = da.get(cid), dbb.get(cid)
                for k, measure in ((0, "denominator"), (1, "numerator")):
                    was, now = bool(before and before[k]), bool(after and after[k])
                    if was == now or (cid, measure) not in figures:
                        continue
                    why = _why(differs, a, b, before, after, sid in overridden)
                    figures[(cid, measure)].moves.append(
                        Move(sid, entity, "in" if now else "out", why, _decided(before), _decided(after))
                    )
    cohorts = list(dict.fromkeys([*json.loads(a["cohorts"] or "{}"), *json.loads(b["cohorts"] or "{}")]))
    for name in cohorts:
        fig = FigureChange(
            f"cohort.{name}", "members", json.loads(a["cohorts"] or "{}").get(name), json.loads(b["cohorts"] or "{}").get(name)
        )
        if same_subjects:
            fig.moves = _cohort_moves(db, a, b, name, differs, overridden)
        figures[(fig.item, "members")] = fig
    state_a, state_b = signoff_state(db, a["run_id"]), signoff_state(db, b["run_id"])
    return RunComparison(
        a, b, differs, input_changes, components, list(figures.values()), (state_a.summary, state_b.summary), notes
    )


def _cohort_moves(
    db: Database, a: dict[str, Any], b: dict[str, Any], name: str, differs: list[str], overridden: set[str]
) -> list[Move]:
    rows = db.execute(
        """SELECT coalesce(x.patient_id, y.patient_id), x.reason, y.reason
           FROM (SELECT patient_id, reason FROM run_cohort_members WHERE run_id = ? AND cohort = ?) x
           FULL OUTER JOIN (SELECT patient_id, reason FROM run_cohort_members WHERE run_id = ? AND cohort = ?) y
             ON x.patient_id = y.patient_id
           WHERE x.patient_id IS NULL OR y.patient_id IS NULL
           ORDER BY 1""",
        [a["run_id"], name, b["run_id"], name],
    ).fetchall()
    moves = []
    counted_over = {r["run_id"]: _components_over(r, name) for r in (a, b)}
    for sid, ra, rb in rows:
        # The member's reason says why they are in; for the run they are not in, the store keeps no reason,
        # so the decisions of a component whose denominator is the cohort are looked up.
        outside = b["run_id"] if ra else a["run_id"]
        other = _outside_reason(db, outside, sid, counted_over[outside])
        before = ra if ra is not None else other
        after = rb if rb is not None else other
        override = sid in overridden
        present_a = _has_subject(db, a["run_id"], sid)
        present_b = _has_subject(db, b["run_id"], sid)
        why = _why(differs, a, b, [0, 0, "", before] if present_a else None, [0, 0, "", after] if present_b else None, override)
        moves.append(Move(sid, "patient", "in" if rb is not None else "out", why, before or "", after or ""))
    return moves


def _has_subject(db: Database, run_id: str, sid: str) -> bool:
    return bool(db.execute("SELECT 1 FROM run_subjects WHERE run_id = ? AND subject_id = ? LIMIT 1", [run_id, sid]).fetchall())


def _components_over(run: dict[str, Any], cohort: str) -> list[str]:
    """The run's components whose denominator is the cohort ``cohort``."""
    ruleset = json.loads(run["ruleset_json"])
    pops = [pid for pid, p in ruleset["populations"].items() if (p["rule"].get("cohort") or {}).get("overrides") == cohort]
    return [c["id"] for c in ruleset["components"] if c.get("denominator") in pops]


def _outside_reason(db: Database, run_id: str, sid: str, comps: list[str]) -> str:
    """Why a patient is not in a run's cohort: the deciding fact of a component counted over that cohort."""
    decisions = decisions_for(db, run_id, sid)
    if not decisions:
        return "not in this run's records"
    decided = {d["component"]: [d["in_denominator"], d["in_numerator"], d["rule"], d["reason"]] for d in decisions}
    for cid in comps:
        if cid in decided:
            return _decided(decided[cid])
    return "not a member"


# ----------------------------------------------------------------------------- progress over the year


@dataclass
class ProgressPoint:
    run_id: str
    as_of: str | None
    started_at: str
    components: dict[str, dict[str, Any]]
    totals: dict[str, str]
    cohorts: dict[str, int]
    signoff: str


def provider_progress(store: Path | Database, provider: str | None = None) -> tuple[str | None, list[ProgressPoint]]:
    """One provider's runs in date order (the latest run for each as-of date, superseded runs left out)."""
    db = store if isinstance(store, Database) else open_store(store, read_only=True)
    runs = list(db.query("SELECT run_id, as_of, started_at, parameters, totals, cohorts FROM runs ORDER BY started_at, rowid"))
    codes = {r["run_id"]: run_provider(db, r["run_id"]) for r in runs}
    if provider is None:
        known = sorted({c for c in codes.values() if c})
        if len(known) > 1:
            raise UserError(f"the store holds runs of {len(known)} providers ({', '.join(known)}): choose one with --provider")
        provider = known[0] if known else None
    superseded = {json.loads(r["parameters"] or "{}").get("supersedes") for r in runs}
    latest: dict[str | None, dict[str, Any]] = {}
    for r in runs:
        if codes[r["run_id"]] == provider and r["run_id"] not in superseded:
            latest[r["as_of"]] = r  # runs are in start order: a later run on the same as-of date replaces an earlier one
    if not latest:
        raise UserError(f"no runs of provider {provider} in the audit store" if provider else "no runs in the audit store")
    points = []
    for as_of, r in sorted(latest.items(), key=lambda kv: kv[0] or "9999-12-31"):
        points.append(
            ProgressPoint(
                r["run_id"],
                as_of,
                r["started_at"],
                _component_rows(db, r["run_id"]),
                json.loads(r["totals"]),
                json.loads(r["cohorts"]),
                signoff_state(db, r["run_id"]).status,
            )
        )
    return provider, points
