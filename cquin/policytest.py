"""Ruleset tests written in YAML by policy teams: a tiny population and the outcome it must give.

A test file (``<ruleset>.tests.yaml``) names its ruleset and lists cases.  Each
case writes its population inline, table by table, in the canonical columns,
and states what it expects: per component (numerator, denominator, percent,
band, payment_fraction, payment), cohort sizes, milestone statuses, and for
named patients which populations they are in or out of.  Failures read as
expected-vs-actual, with the rule and the fact that decided it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from cquin.config.yaml_source import SourceDocument, load_yaml_file
from cquin.dataset import TABLE_NAMES, DatasetBuilder, table
from cquin.engine.care_plans import compute_care_plan_views
from cquin.engine.evaluation import RunResult, evaluate, membership
from cquin.engine.ruleset import Ruleset, load_ruleset
from cquin.exceptions import RulesetError

CASE_KEYS = {"name", "covers", "description", "population", "expect", "contract_value", "contract_value_year2", "as_of"}
EXPECT_KEYS = {"components", "cohorts", "patients", "staff", "milestones", "totals", "rejections", "populations", "care_plans"}
# What a case may expect of the care-plan views (cquin.engine.care_plans): figures, or per-category rows.
CARE_PLAN_FIGURES = {"entries", "patients", "plans", "plans_shared"}
CARE_PLAN_ROWS = {"needs": "category", "referrals": "category", "elements": "id"}
COMPONENT_KEYS = {"numerator", "denominator", "percent", "band", "payment_fraction", "payment"}


@dataclass
class CaseResult:
    name: str
    location: str
    failures: list[str] = field(default_factory=list)
    covers: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass
class FileResult:
    path: Path
    ruleset: str
    cases: list[CaseResult]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)


def run_test_file(path: Path, ruleset_override: Ruleset | None = None) -> FileResult:
    """Run every case in a test file; problems with the file itself raise RulesetError."""
    doc = load_yaml_file(path)
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise RulesetError(f"{path}: a ruleset test file needs 'ruleset' and a list of 'cases'")
    ref = str(data.get("ruleset", ""))
    if ruleset_override is not None:
        ruleset = ruleset_override
    else:
        candidate = path.parent / ref
        ruleset = load_ruleset(candidate if candidate.suffix in (".yaml", ".yml") and candidate.exists() else ref)
    defaults = data.get("defaults") or {}
    results = []
    for i, case in enumerate(data["cases"]):
        results.append(_run_case(doc, i, case, defaults, ruleset))
    return FileResult(path, f"{ruleset.id} {ruleset.version}", results)


def _run_case(doc: SourceDocument, i: int, case: dict[str, Any], defaults: dict[str, Any], ruleset: Ruleset) -> CaseResult:
    where = doc.locate(("cases", i))
    name = str(case.get("name", f"case {i + 1}"))
    covers = case.get("covers") or []
    result = CaseResult(name, str(where), covers=[covers] if isinstance(covers, str) else list(covers))
    unknown = set(case) - CASE_KEYS
    if unknown:
        result.failures.append(f"unknown key(s) {', '.join(sorted(unknown))} (expected: {', '.join(sorted(CASE_KEYS))})")
        return result
    population = {**defaults.get("population", {}), **(case.get("population") or {})}
    builder = DatasetBuilder(ruleset.vocabulary(), memory_limit="256MB", threads=1)
    for tname, rows in population.items():
        if tname not in TABLE_NAMES:
            result.failures.append(f"population: unknown table {tname!r} (tables: {', '.join(TABLE_NAMES)})")
            return result
        cols = set(table(tname).column_names)
        staged = []
        for j, row in enumerate(rows or [], start=1):
            extra = set(row) - cols
            if extra:
                result.failures.append(f"population.{tname}[{j}]: unknown column(s) {', '.join(sorted(extra))}")
                return result
            staged.append({"_file": f"{tname}.csv", "_line": j + 1, **{k: _text(v) for k, v in row.items()}})
        builder.source(f"{tname}.csv", None, tname)
        builder.add_rows(tname, staged)
    if "patients" not in population:
        builder.add_rows("patients", [])
    dataset = builder.build()
    money = case.get("contract_value", defaults.get("contract_value"))
    money2 = case.get("contract_value_year2", defaults.get("contract_value_year2"))
    as_of = case.get("as_of")
    run = evaluate(
        ruleset,
        dataset,
        contract_value=Decimal(str(money)) if money is not None else None,
        contract_value_year2=Decimal(str(money2)) if money2 is not None else None,
        as_of=dt.date.fromisoformat(str(as_of)) if as_of else None,
    )
    expect = case.get("expect") or {}
    unknown = set(expect) - EXPECT_KEYS
    if unknown:
        result.failures.append(
            f"expect: unknown key(s) {', '.join(sorted(unknown))} (expected: {', '.join(sorted(EXPECT_KEYS))})"
        )
    _check_components(result, ruleset, run, expect.get("components") or {})
    for key, actual in (("cohorts", run.cohorts), ("populations", run.populations)):
        for k, want in (expect.get(key) or {}).items():
            if actual.get(k) != want:
                result.failures.append(f"{key}.{k}: expected {want}, got {actual.get(k)}")
    for k, want in (expect.get("totals") or {}).items():
        got = run.totals.get(k)
        if got is None or got != Decimal(str(want)):
            result.failures.append(f"totals.{k}: expected £{want}, got £{got}")
    for k, want in (expect.get("milestones") or {}).items():
        milestone = next((m for m in run.milestones if m.id == k), None)
        if milestone is None or milestone.status != want:
            result.failures.append(
                f"milestones.{k}: expected {want}, got {milestone.status if milestone else 'no such milestone'} "
                f"({milestone.detail if milestone else ''})"
            )
    for entity in ("patients", "staff"):
        for subject, want in (expect.get(entity) or {}).items():
            sid = str(subject).replace(" ", "")
            for pid in want.get("in") or []:
                inside, reason = membership(run, dataset, pid, sid)
                if not inside:
                    result.failures.append(f"{entity} {sid}: expected IN {pid}, but is out — {reason}")
            for pid in want.get("out") or []:
                inside, reason = membership(run, dataset, pid, sid)
                if inside:
                    result.failures.append(f"{entity} {sid}: expected OUT of {pid}, but is in — {reason}")
    if "care_plans" in expect:
        _check_care_plans(result, compute_care_plan_views(dataset.con, ruleset), expect["care_plans"] or {})
    if "rejections" in expect:
        got_reasons = [r[5] for r in dataset.ledger.rejection_rows()]  # refused overrides are rejected rows too
        want = expect["rejections"]
        if isinstance(want, int):
            if len(got_reasons) != want:
                result.failures.append(f"rejections: expected {want}, got {len(got_reasons)}: {got_reasons}")
        else:
            for fragment in want:
                if not any(str(fragment).lower() in g.lower() for g in got_reasons):
                    result.failures.append(f"rejections: expected one mentioning {fragment!r}; got {got_reasons}")
    dataset.con.close()
    return result


def _check_care_plans(result: CaseResult, views: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    """Compare the care-plan views with what the case expects: figures, per-category rows, activation rows."""
    if views is None:
        result.failures.append("care_plans: the ruleset has no care_planning section, so there are no views")
        return
    for key, want in expected.items():
        if key in CARE_PLAN_FIGURES:
            if views[key] != want:
                result.failures.append(f"care_plans.{key}: expected {want}, got {views[key]}")
            continue
        if key in CARE_PLAN_ROWS or key == "activation":
            rows = (views["activation"] or {}).get("rows", []) if key == "activation" else views[key]
            by_id = {r[CARE_PLAN_ROWS.get(key, "category")]: r for r in rows}
            for ident, fields in (want or {}).items():
                row = by_id.get(ident)
                if row is None:
                    result.failures.append(f"care_plans.{key}.{ident}: no such row (rows: {', '.join(by_id)})")
                    continue
                for field_name, value in (fields if isinstance(fields, dict) else {"plans": fields}).items():
                    if row.get(field_name) != value:
                        result.failures.append(
                            f"care_plans.{key}.{ident}.{field_name}: expected {value}, got {row.get(field_name)}"
                        )
            continue
        known = sorted(CARE_PLAN_FIGURES | set(CARE_PLAN_ROWS) | {"activation"})
        result.failures.append(f"care_plans: unknown expectation {key!r} (expected: {', '.join(known)})")


def _check_components(result: CaseResult, ruleset: Ruleset, run: RunResult, expected: dict[str, Any]) -> None:
    for cid, want in expected.items():
        try:
            got = run.component(cid)
        except StopIteration:
            result.failures.append(f"components.{cid}: no such component in {ruleset.id}")
            continue
        actual = got.as_dict()
        for key, value in want.items():
            if key not in COMPONENT_KEYS:
                result.failures.append(
                    f"components.{cid}: unknown expectation {key!r} (expected: {', '.join(sorted(COMPONENT_KEYS))})"
                )
                continue
            have = actual[key]
            if key == "payment_fraction":
                ok = have is not None and Decimal(have) == Decimal(str(value))
            elif key == "payment":
                ok = Decimal(have) == Decimal(str(value))
            elif key == "band":
                ok = str(value).lower() in str(have).lower()
            elif key == "percent":
                ok = (have is None and value is None) or (
                    have is not None and value is not None and Decimal(have) == Decimal(str(value))
                )
            else:
                ok = have == value
            if not ok:
                comp = ruleset.component(cid)
                rule = (
                    f"numerator {comp['numerator']} / denominator {comp['denominator']}"
                    if "numerator" in comp
                    else "attainment levels"
                )
                result.failures.append(
                    f"components.{cid}.{key}: expected {_shown(value)}, got {_shown(have)} "
                    f"(rule: {rule}; {got.numerator}/{got.denominator}, band {got.band})"
                )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _shown(value: Any) -> str:
    """A value as a policy reader expects to see it: numbers bare (0.5, not Decimal('0.5')), text quoted."""
    if value is None:
        return "nothing"
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        try:
            Decimal(value)
        except ArithmeticError:
            return repr(value)
        return value
    return repr(value)
