"""A rule kind is added by the recipe in docs/architecture.md, and nothing else has to change.

The recipe: (1) the kind's schema under ``$defs.rule.properties`` of ``ruleset.schema.json``; (2) one node
class in ``cquin/engine/rules.py`` registered with ``@rule_kind``; (3) one compile function in
``cquin/engine/compile_rules.py`` registered with ``@compile_rule.register``.  This test follows it with a
toy kind, ``born_before``, registered here only (and removed again afterwards), and shows that a ruleset
using it validates, evaluates, explains its decisions and appears in the ruleset diff.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cquin.dataset.duck import sql_str
from cquin.engine import ruleset_check
from cquin.engine.compile_rules import Scope, compile_rule
from cquin.engine.diff import diff_rulesets
from cquin.engine.populations import PopulationCompiler
from cquin.engine.reasons import Safe
from cquin.engine.rules import RULE_KINDS, CheckContext, Rule, rule_kind
from cquin.engine.ruleset import check_ruleset, load_ruleset, schema
from cquin.policytest import run_test_file

TOY_SCHEMA = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "description": "born before this date"}

RULESET = """\
extends: cquin_2017_19@1.x
schema_version: 1
id: cquin_toy
version: 0.1.0
status: draft
title: "A toy ruleset with a population of older LTC patients"
populations:
  older_ltc_patients:
    label: LTC patients born before 1950
    entity: patient
    rule:
      all_of:
        - population: ltc_identified
        - born_before: "1950-01-01"
    citation:
      source: indicator
      section: "Year 1 Part 2 indicator"
      quote: "Number of patients identified as having one or more LTC (denominator)"
"""

TESTS = """\
ruleset: cquin_toy.yaml
cases:
  - name: older LTC patients are those born before 1950
    population:
      patients:
        - {patient_id: "9990000018", served_from: 2017-01-01, date_of_birth: 1940-05-01}
        - {patient_id: "9990000026", served_from: 2017-01-01, date_of_birth: 1960-05-01}
        - {patient_id: "9990000034", served_from: 2017-01-01, date_of_birth: 1930-05-01}
      conditions:
        - {patient_id: "9990000018", code_system: snomed, code: "195967001", recorded_on: 2017-06-01}
        - {patient_id: "9990000026", code_system: snomed, code: "195967001", recorded_on: 2017-06-01}
    expect:
      patients:
        "9990000018": {in: [older_ltc_patients]}
        "9990000026": {out: [older_ltc_patients]}
        "9990000034": {out: [older_ltc_patients]}
"""


@dataclass(frozen=True)
class BornBefore(Rule):
    """Step 2: the node class (what the YAML value means, what it checks, how the diff shows it)."""

    date: str

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(str(value))

    def check(self, ctx: CheckContext, path: tuple[str | int, ...], entity: str | None) -> None:
        ctx.date_ref(path, self.date)

    def text(self) -> str:
        return f"born before {self.date}"


def compile_born_before(node: BornBefore, c: PopulationCompiler, at: Scope) -> str:
    """Step 3: the compile function: (id, inside, reason) for every patient of the universe, the reason in
    words with its values (``c.because``: the words are fixed here, the values come from each row)."""
    cut = f"DATE {sql_str(node.date)}"
    born = Safe("CAST(p.dob AS VARCHAR)")
    return c.leaf(
        at,
        f"""SELECT u.id, coalesce(p.dob < {cut}, false) AS inside,
              CASE WHEN p.dob IS NULL THEN {c.because("no date of birth recorded")}
                   WHEN p.dob < {cut} THEN {c.because("born {dob}, before {cut}", dob=born, cut=node.date)}
                   ELSE {c.because("born {dob}, not before {cut}", dob=born, cut=node.date)} END AS reason
            FROM {at.universe} u
            LEFT JOIN (SELECT patient_id AS id, min(date_of_birth) AS dob FROM {c.t("patients")} GROUP BY 1) p USING (id)""",
    )


@pytest.fixture
def toy_kind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Step 1: the schema (here in memory; in the product, the JSON file).
    extended = copy.deepcopy(schema())
    extended["$defs"]["rule"]["properties"]["born_before"] = TOY_SCHEMA
    monkeypatch.setattr(ruleset_check, "schema", lambda: extended)
    rule_kind("born_before", applies_to="patient", reads=("patients",))(BornBefore)
    compile_rule.register(BornBefore)(compile_born_before)
    yield
    # Unknown to rulesets again; the compile function stays registered for a class only this test defines.
    del RULE_KINDS["born_before"]


@pytest.fixture
def toy_ruleset(tmp_path: Path) -> Path:
    (tmp_path / "cquin_toy.yaml").write_text(RULESET, encoding="utf-8")
    (tmp_path / "cquin_toy.tests.yaml").write_text(TESTS, encoding="utf-8")
    return tmp_path


def test_a_ruleset_using_the_new_kind_validates(toy_kind: None, toy_ruleset: Path) -> None:
    _, problems = check_ruleset(toy_ruleset / "cquin_toy.yaml")
    assert [p for p in problems if p.severity == "error"] == []


def test_the_new_kind_decides_who_is_in_the_population(toy_kind: None, toy_ruleset: Path) -> None:
    result = run_test_file(toy_ruleset / "cquin_toy.tests.yaml")
    assert [c.failures for c in result.cases] == [[]]


def test_the_new_kind_checks_its_references(toy_kind: None, toy_ruleset: Path) -> None:
    (toy_ruleset / "cquin_toy.yaml").write_text(RULESET.replace('"1950-01-01"', '"1950-02-30"'), encoding="utf-8")
    _, problems = check_ruleset(toy_ruleset / "cquin_toy.yaml")
    assert any("'1950-02-30' is not a real date" in p.message and p.location.line == 14 for p in problems)


def test_the_new_kind_is_refused_in_a_staff_population(toy_kind: None, toy_ruleset: Path) -> None:
    staff = RULESET.replace("entity: patient", "entity: staff").replace(
        "- population: ltc_identified", "- trained: {by: year1.end}"
    )
    (toy_ruleset / "cquin_toy.yaml").write_text(staff, encoding="utf-8")
    _, problems = check_ruleset(toy_ruleset / "cquin_toy.yaml")
    assert any("counts staff, but the test 'born_before' applies to patients" in p.message for p in problems)


def test_the_ruleset_diff_shows_the_new_kind_in_words(toy_kind: None, toy_ruleset: Path) -> None:
    diff = diff_rulesets(load_ruleset("cquin_2017_19"), load_ruleset(toy_ruleset / "cquin_toy.yaml"))
    texts = [change.summary for change in diff.changes]
    assert any("born before 1950-01-01" in t for t in texts), texts


def test_without_the_recipe_the_kind_is_unknown(toy_ruleset: Path) -> None:
    _, problems = check_ruleset(toy_ruleset / "cquin_toy.yaml")
    assert any(p.severity == "error" and "born_before" in p.message for p in problems)


def test_every_kind_the_schema_allows_has_a_node_class_and_a_compile_function() -> None:
    in_schema = set(schema()["$defs"]["rule"]["properties"])
    assert in_schema == set(RULE_KINDS)
    for kind, cls in RULE_KINDS.items():
        assert compile_rule.dispatch(cls) is not compile_rule.dispatch(Rule), f"{kind} has no compile function"
