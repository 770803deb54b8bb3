"""What a ruleset change does to one dataset: each component's result under both, and who moves in or out.

The ruleset diff (:mod:`cquin.engine.diff`) says what changed in policy language; this evaluates both rulesets
on the same records and compares the outcomes, subject by subject.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cquin.dataset import CanonicalDataset
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import Ruleset


@dataclass(frozen=True)
class ResultChange:
    """One component's result under each ruleset (None where the component does not exist)."""

    id: str
    name: str
    old: dict[str, Any] | None
    new: dict[str, Any] | None

    @property
    def changed(self) -> bool:
        keys = ("numerator", "denominator", "percent", "band", "payment_fraction")
        if self.old is None or self.new is None:
            return True
        return any(self.old.get(k) != self.new.get(k) for k in keys)


@dataclass(frozen=True)
class Movement:
    """Subjects who move into or out of one numerator, denominator or cohort."""

    group: str  # "numerator", "denominator" or "cohort"
    owner: str  # component id or cohort name
    entity: str  # "patient" or "staff"
    moved_in: tuple[str, ...]
    moved_out: tuple[str, ...]


@dataclass
class Impact:
    source: Path
    results: list[ResultChange]
    movements: list[Movement]

    @property
    def changed_results(self) -> list[ResultChange]:
        return [r for r in self.results if r.changed]


@dataclass
class _Run:
    components: dict[str, dict[str, Any]]
    names: dict[str, str]
    entity: dict[str, str]
    num: dict[str, set[str]]
    den: dict[str, set[str]]
    cohorts: dict[str, set[str]]


def _evaluate(r: Ruleset, dataset: CanonicalDataset) -> _Run:
    try:
        result = evaluate(r, dataset)
        num: dict[str, set[str]] = {}
        den: dict[str, set[str]] = {}
        assert result.trace is not None
        for comp, sid, in_den, in_num in dataset.con.execute(
            f"SELECT component, id, in_denominator, in_numerator FROM ({result.trace.decisions_sql()})"
        ).fetchall():
            if in_den:
                den.setdefault(comp, set()).add(sid)
            if in_num:
                num.setdefault(comp, set()).add(sid)
        cohorts: dict[str, set[str]] = {}
        for cohort, sid, _reason in dataset.con.execute(result.trace.cohort_members_sql()).fetchall():
            cohorts.setdefault(cohort, set()).add(sid)
    finally:
        dataset.con.close()
    return _Run(
        {c.id: json.loads(json.dumps(c.as_dict(), default=str)) for c in result.components},
        {c.id: c.name for c in result.components},
        {c.id: c.entity or "patient" for c in result.components},
        num,
        den,
        cohorts,
    )


def impact(old: Ruleset, new: Ruleset, old_dataset: CanonicalDataset, new_dataset: CanonicalDataset, source: Path) -> Impact:
    """Evaluate each ruleset on its own load of ``source`` (read with that ruleset's vocabulary) and compare.

    Each dataset is evaluated once and closed; loading them is the caller's (:func:`cquin.runner.ruleset_impact`).
    """
    a, b = _evaluate(old, old_dataset), _evaluate(new, new_dataset)
    ids = [*a.components, *(c for c in b.components if c not in a.components)]
    results = [
        ResultChange(cid, b.names.get(cid) or a.names.get(cid, ""), a.components.get(cid), b.components.get(cid)) for cid in ids
    ]
    movements: list[Movement] = []
    for cid in ids:
        entity = b.entity.get(cid) or a.entity.get(cid, "patient")
        if (a.components.get(cid) or b.components.get(cid) or {}).get("denominator") is None:
            continue  # attainment levels: nobody is counted
        for group, x, y in (("denominator", a.den, b.den), ("numerator", a.num, b.num)):
            before, after = x.get(cid, set()), y.get(cid, set())
            if before != after:
                movements.append(Movement(group, cid, entity, tuple(sorted(after - before)), tuple(sorted(before - after))))
    for cohort in sorted(a.cohorts.keys() | b.cohorts.keys()):
        before, after = a.cohorts.get(cohort, set()), b.cohorts.get(cohort, set())
        if before != after:
            movements.append(Movement("cohort", cohort, "patient", tuple(sorted(after - before)), tuple(sorted(before - after))))
    return Impact(source, results, movements)
