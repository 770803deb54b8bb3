"""Ruleset validation: every problem is reported at its line, in plain words.

Each case copies the bundled ruleset, plants one problem by text substitution,
and expects ``check_ruleset`` to report an error on the line where the problem
is (found from the planted text, never a hard-coded number) whose message names
what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from cquin.engine.ruleset import Problem, check_ruleset, load_ruleset
from cquin.exceptions import RulesetError

from .conftest import BUNDLED, RulesetCopy, line_of


def errors_of(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]


def describe(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems) or "(no problems)"


# --------------------------------------------------------------------------- the bundled ruleset


def test_bundled_ruleset_has_no_errors():
    ruleset, problems = check_ruleset(BUNDLED)
    assert errors_of(problems) == [], describe(problems)
    assert ruleset is not None
    assert ruleset.id == "cquin_2017_19"


def test_bundled_ruleset_loads_by_its_id():
    ruleset = load_ruleset("cquin_2017_19")
    assert [c["id"] for c in ruleset.doc["components"]] == [
        "y1.plan",
        "y1.ltc_identification",
        "y1.activation_assessment",
        "y1.staff_training",
        "y2.conversations",
        "y2.activation_improvement",
    ]
    assert all(w.severity == "warning" for w in ruleset.warnings)


def test_an_unchanged_copy_is_valid(ruleset_copy: RulesetCopy):
    """The copy (with code lists beside it) is valid, so each planted problem is the only one."""
    _, problems = check_ruleset(ruleset_copy.path)
    assert errors_of(problems) == [], describe(problems)


# --------------------------------------------------------------------------- one planted problem


@dataclass(frozen=True)
class Planted:
    """A problem planted by replacing ``old`` with ``new``.

    ``old`` is replaced where it first occurs after ``within`` (or wherever it
    occurs once).  The error is expected on the line of ``at`` (searched after
    ``after``); ``at`` defaults to the start of ``new``.
    """

    old: str
    new: str
    words: tuple[str, ...]
    at: str | None = None
    after: str | None = None
    within: str | None = None
    files: dict[str, str] = field(default_factory=dict)


STAFF_CITATION = """    rule: {cares_for_cohort: true}
    citation:
      source: indicator
      section: "Year 1 Part 3 indicator"
      quote: "Total number of staff identified by the provider as caring for the identified patient cohort (denominator)"
"""

ACTIVATION_ASSESSMENT = "  - id: y1.activation_assessment\n"
GAP = ("{at_least: 25, at_most: 50, pays_percent: 50}", "{at_least: 26, at_most: 50, pays_percent: 50}")

CASES = {
    "schema: unknown key": Planted(
        "status: published\n",
        "status: published\nflavour: vanilla\n",
        ("unknown key 'flavour'",),
        at="flavour: vanilla",
    ),
    "schema: wrong type": Planted(
        "  weighting_percent: 0.25\n",
        "  weighting_percent: lots\n",
        ("weighting_percent", "'lots'", "should be a number"),
    ),
    "schema: a number with an exponent but no decimal point is YAML text, and the message says so": Planted(
        "  weighting_percent: 0.25\n",
        "  weighting_percent: 1e308\n",
        ("weighting_percent", "1e308 is read as text, not a number", "needs a decimal point"),
    ),
    "schema: impossible date": Planted(
        "effective: {from: 2017-04-01,",
        "effective: {from: 2017-13-01,",
        ("'2017-13-01'", "not a real date"),
    ),
    "schema: not a date": Planted(
        "effective: {from: 2017-04-01,",
        "effective: {from: soon,",
        ("effective.from", "'soon'", "not a date written YYYY-MM-DD"),
    ),
    "schema: bad semantic version": Planted(
        "version: 1.2.0\n",
        'version: "1.0"\n',
        ("version", "'1.0'", "not a semantic version"),
    ),
    "unknown code list in a category": Planted(
        "code_lists: [diabetes_snomed, diabetes_icd10]",
        "code_lists: [diabetes_snomed, diabetes_icd9]",
        ("category diabetes", "unknown code list 'diabetes_icd9'"),
    ),
    "unknown population in a component": Planted(
        "    numerator: trained_staff\n",
        "    numerator: trained_staf\n",
        ("y1.staff_training", "unknown population 'trained_staf'"),
    ),
    "bands leave a gap": Planted(
        *GAP,
        ("y1.activation_assessment", "gap", "25%"),
        within=ACTIVATION_ASSESSMENT,
    ),
    "bands overlap": Planted(
        "{at_least: 33, below: 66, pays_percent: 40}",
        "{at_least: 33, at_most: 66, pays_percent: 40}",
        ("y1.staff_training", "overlaps", "66%"),
        # The later of the two overlapping bands is the one reported.
        at="{at_least: 66, at_most: 85",
    ),
    "shares of a year do not add to 100%": Planted(
        '    name: "Staff training"\n    share_percent: 30\n',
        '    name: "Staff training"\n    share_percent: 35\n',
        ("year1", "105%", "not 100%"),
        # Reported at the year's first component.
        at="share_percent: 25",
        after="\ncomponents:\n",
    ),
    "period ends before it starts": Planted(
        "    from: 2017-04-01\n    to: 2018-03-31\n",
        "    from: 2017-04-01\n    to: 2017-03-31\n",
        ("period year1", "before it starts"),
        at="    to: 2017-03-31",
    ),
    "quarters out of order": Planted(
        "      - {id: Q2, from: 2017-07-01, to: 2017-09-30}\n      - {id: Q3, from: 2017-10-01, to: 2017-12-31}\n",
        "      - {id: Q3, from: 2017-10-01, to: 2017-12-31}\n      - {id: Q2, from: 2017-07-01, to: 2017-09-30}\n",
        ("quarter Q3", "out of order"),
    ),
    "rule without a citation": Planted(
        STAFF_CITATION,
        "    rule: {cares_for_cohort: true}\n",
        ("populations.relevant_staff", "no citation"),
        # Reported at the population that lacks it.
        at="    label: Staff caring for the identified patient cohort",
    ),
    "citation names an unknown source": Planted(
        STAFF_CITATION,
        STAFF_CITATION.replace("source: indicator", "source: guidance"),
        ("unknown source 'guidance'", "indicator"),
        at="source: guidance",
    ),
    "malformed ICD-10 code in a code list": Planted(
        "file: codelists/cquin_2017_19/diabetes.icd10.csv",
        "file: mine/diabetes.icd10.csv",
        ("diabetes_icd10", "diabetes.icd10.csv:3", "'E1'", "not an ICD-10 code"),
        files={
            "mine/diabetes.icd10.csv": "code,term\nE10,Type 1 diabetes mellitus\nE1,typed short\nE11.9,Type 2 diabetes mellitus\n"
        },
    ),
    "SNOMED code with a bad check digit": Planted(
        "file: codelists/cquin_2017_19/diabetes.snomed.csv",
        "file: mine/diabetes.snomed.csv",
        ("diabetes_snomed", "diabetes.snomed.csv:3", "44054007", "Verhoeff"),
        files={"mine/diabetes.snomed.csv": "code,term\n44054006,Diabetes mellitus type 2\n44054007,last digit mistyped\n"},
    ),
    "populations in a circle": Planted(
        "        - population: served_year1\n        - ltc: {recorded_by: year1.end}\n",
        "        - population: year1_cohort\n        - ltc: {recorded_by: year1.end}\n",
        ("circle", "ltc_identified", "year1_cohort"),
        # Reported at the rule of the population where the circle closes.
        at="all_of:",
        after="  ltc_identified:\n",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_planted_problem_is_reported_at_its_line(ruleset_copy: RulesetCopy, case: Planted):
    for relative, content in case.files.items():
        ruleset_copy.add_file(relative, content)
    text = ruleset_copy.replace(case.old, case.new, after=case.within)
    expected_line = line_of(text, case.at or case.new, after=case.after)

    ruleset, problems = check_ruleset(ruleset_copy.path)

    errors = errors_of(problems)
    assert ruleset is None
    assert errors, "no error reported"
    at_line = [p for p in errors if p.location.line == expected_line]
    assert at_line, f"no error on line {expected_line}:\n{describe(errors)}"
    assert any(all(w in p.message for w in case.words) for p in at_line), (
        f"no error on line {expected_line} mentions {case.words}:\n{describe(errors)}"
    )
    assert all(p.location.file == str(ruleset_copy.path) for p in errors)


def test_load_ruleset_raises_with_every_problem_located(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("    numerator: trained_staff\n", "    numerator: trained_staf\n")
    line = line_of(text, "    numerator: trained_staf\n")
    with pytest.raises(RulesetError) as raised:
        load_ruleset(ruleset_copy.path)
    assert raised.value.exit_code == 3
    assert any(p.startswith(f"{ruleset_copy.path}:{line}:") and "trained_staf" in p for p in raised.value.problems)
    assert f"{ruleset_copy.path}:{line}:" in str(raised.value)


def test_all_problems_are_reported_at_once(ruleset_copy: RulesetCopy):
    ruleset_copy.replace("    numerator: trained_staff\n", "    numerator: trained_staf\n")
    ruleset_copy.replace(*GAP, after=ACTIVATION_ASSESSMENT)
    text = ruleset_copy.replace(STAFF_CITATION, STAFF_CITATION.replace("source: indicator", "source: guidance"))

    _, problems = check_ruleset(ruleset_copy.path)

    errors = errors_of(problems)
    assert [(p.location.line, key) for p in errors for key in ("trained_staf", "gap", "guidance") if key in p.message] == sorted(
        [
            (line_of(text, "numerator: trained_staf"), "trained_staf"),
            (line_of(text, "{at_least: 26"), "gap"),
            (line_of(text, "source: guidance"), "guidance"),
        ]
    ), describe(errors)
    assert len(errors) == 3, describe(errors)


def test_a_band_gap_is_reported_even_when_an_earlier_component_has_a_non_numeric_share(ruleset_copy: RulesetCopy):
    ruleset_copy.replace("    share_percent: 15\n", "    share_percent: fifteen\n")
    text = ruleset_copy.replace(*GAP, after=ACTIVATION_ASSESSMENT)
    _, problems = check_ruleset(ruleset_copy.path)
    gap_line = line_of(text, "{at_least: 26")
    assert any(p.location.line == gap_line and "gap" in p.message for p in errors_of(problems)), describe(problems)


def test_a_number_where_text_is_expected_is_quoted_as_written(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("version: 1.2.0\n", "version: 1.0\n")
    _, problems = check_ruleset(ruleset_copy.path)
    [error] = [p for p in errors_of(problems) if p.location.line == line_of(text, "version: 1.0\n")]
    assert "should be text" in error.message
    assert "Decimal" not in error.message


# --------------------------------------------------------------------------- YAML syntax errors


def test_yaml_syntax_error_is_refused_with_its_line(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("status: published\n", "status: published: twice\n")
    line = line_of(text, "status: published: twice")
    with pytest.raises(RulesetError) as raised:
        load_ruleset(ruleset_copy.path)
    assert f"{ruleset_copy.path}:{line}:" in str(raised.value)
    assert "not valid YAML" in str(raised.value)


def test_check_ruleset_returns_a_yaml_syntax_error_as_a_problem(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("status: published\n", "status: published: twice\n")
    ruleset, problems = check_ruleset(ruleset_copy.path)
    assert ruleset is None
    assert [p.location.line for p in errors_of(problems)] == [line_of(text, "status: published: twice")]
