"""A reproducible audit sample: patients drawn from a stored run, stratified by component outcome, with explanations.

Each patient's stratum is their outcome in every patient component of the run (in the numerator, in the
denominator only, or outside it), so a sample covers the paths through the rules, not just the biggest
group.  The size is shared out in proportion to each stratum's size (largest remainder), with at least one
patient from every stratum while the size allows; within a stratum patients are drawn with Python's
seeded Mersenne Twister from the members in NHS-number order.  The same run, size and seed always give the
same patients, so the commissioner and the provider can each draw it and check the same case notes.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from sqlite_utils.db import Database

from cquin.exceptions import UserError
from cquin.store import cohorts_of, decisions_for, load_run, open_store, subject_decisions

OUTCOMES = {(1, 1): "numerator", (1, 0): "denominator only", (0, 0): "outside"}


@dataclass(frozen=True)
class Stratum:
    key: tuple[str, ...]  # one outcome per patient component, in component order
    size: int  # patients in the run with this outcome
    drawn: int

    def describe(self, components: list[str]) -> str:
        return "; ".join(f"{c} {o}" for c, o in zip(components, self.key, strict=True))


@dataclass
class SampledPatient:
    subject_id: str
    stratum: int  # index into AuditSample.strata
    decisions: list[dict[str, Any]]
    cohorts: list[dict[str, Any]]


@dataclass
class AuditSample:
    run_id: str
    size: int
    seed: int
    components: list[str]
    strata: list[Stratum]
    patients: list[SampledPatient]
    population: int

    @property
    def digest(self) -> str:
        """Identifies the draw: equal for the same run, size and seed."""
        return hashlib.sha256(
            json.dumps([self.run_id, self.size, self.seed, [p.subject_id for p in self.patients]]).encode()
        ).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "size": self.size,
            "seed": self.seed,
            "population": self.population,
            "digest": self.digest,
            "strata": [
                {
                    "stratum": i + 1,
                    "outcomes": dict(zip(self.components, s.key, strict=True)),
                    "patients": s.size,
                    "drawn": s.drawn,
                }
                for i, s in enumerate(self.strata)
            ],
            "patients": [
                {"nhs_number": p.subject_id, "stratum": p.stratum + 1, "decisions": p.decisions, "cohorts": p.cohorts}
                for p in self.patients
            ],
        }


def allocate(sizes: list[int], n: int) -> list[int]:
    """Share ``n`` draws among strata of ``sizes``: one each while ``n`` allows (largest first), the rest in proportion."""
    total = sum(sizes)
    n = min(n, total)
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    drawn = [0] * len(sizes)
    for i in order[:n]:
        drawn[i] = 1
    left = n - sum(drawn)
    if left <= 0:
        return drawn
    room = [sizes[i] - drawn[i] for i in range(len(sizes))]
    spare = sum(room)
    quotas = [Fraction(left * r, spare) for r in room]
    extra = [int(q) for q in quotas]
    rest = left - sum(extra)
    for i in sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - extra[i]), -sizes[i], i))[:rest]:
        extra[i] += 1
    return [d + e for d, e in zip(drawn, extra, strict=True)]


def _outcomes(db: Database, run_id: str) -> tuple[list[str], dict[tuple[str, ...], list[str]]]:
    components = [
        r[0]
        for r in db.execute(
            "SELECT component FROM run_components WHERE run_id = ? AND entity = 'patient' ORDER BY ordinal", [run_id]
        ).fetchall()
    ]
    groups: dict[tuple[str, ...], list[str]] = {}
    for _, sid, decisions in subject_decisions(db, run_id, "patient"):
        decided = {d["component"]: (int(d["in_denominator"]), int(d["in_numerator"])) for d in decisions}
        key = tuple(OUTCOMES.get(decided[c], "outside") if c in decided else "outside" for c in components)
        groups.setdefault(key, []).append(sid)
    return components, groups


def draw_sample(store: Path, run_id: str, *, size: int, seed: int) -> AuditSample:
    """Draw the audit sample of ``size`` patients from run ``run_id`` with ``seed``."""
    if size < 1:
        raise UserError(f"--size {size}: draw at least one patient")
    db = open_store(store, read_only=True)
    rid = load_run(db, run_id).run["run_id"]
    components, groups = _outcomes(db, rid)
    if not groups:
        raise UserError(f"run {rid} has no patients to sample")
    keys = sorted(groups, key=lambda k: (-len(groups[k]), k))
    counts = allocate([len(groups[k]) for k in keys], size)
    rng = random.Random(seed)
    strata, patients = [], []
    for i, (key, n) in enumerate(zip(keys, counts, strict=True)):
        strata.append(Stratum(key, len(groups[key]), n))
        for sid in sorted(rng.sample(groups[key], n)):
            patients.append(SampledPatient(sid, i, decisions_for(db, rid, sid), cohorts_of(db, rid, sid)))
    return AuditSample(rid, size, seed, components, strata, patients, sum(len(v) for v in groups.values()))


def sample_csv(sample: AuditSample) -> str:
    """The sample as CSV for the case-note audit: one row per patient and component, with the deciding rule and fact."""
    import csv
    import io

    from cquin.outfile import safe_cell

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["run_id", "seed", "size", "stratum", "nhs_number", "component", "in_denominator", "in_numerator", "rule", "reason"]
    )
    for p in sample.patients:
        for d in p.decisions:
            if d["entity"] != "patient":
                continue
            w.writerow(
                [
                    safe_cell(x)
                    for x in (
                        sample.run_id,
                        sample.seed,
                        sample.size,
                        p.stratum + 1,
                        p.subject_id,
                        d["component"],
                        d["in_denominator"],
                        d["in_numerator"],
                        d["rule"],
                        d["reason"],
                    )
                ]
            )
    return buf.getvalue()
