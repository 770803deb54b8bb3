"""`cquin ruleset diff`: every change planted in the worked example, said in policy language; --impact on the demo data."""

from __future__ import annotations

import dataclasses
import re

import pytest
from typer.testing import CliRunner

from cquin import cli
from cquin.engine.diff import diff_rulesets
from cquin.engine.ruleset import load_ruleset

from .conftest import DEMO, EXAMPLE

runner = CliRunner()


@pytest.fixture(scope="module")
def shown() -> str:
    """The diff of cquin_2017_19 and the worked example, with its impact on the demo data and the moved patients listed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli.out, "_width", 400)
        mp.setattr(cli.err, "_width", 400)
        result = runner.invoke(cli.app, ["ruleset", "diff", "cquin_2017_19", str(EXAMPLE), "--impact", str(DEMO), "--list"])
    assert result.exit_code == 0, result.output
    return result.stdout


def section(text: str, title: str) -> str:
    start = text.index(f"\n{title}\n")
    end = text.find("\n\n", start + 2)
    return text[start : end if end > 0 else None]


@pytest.mark.parametrize(
    "planted",
    [
        "id: cquin_2017_19 → cquin_2019_20",
        "status: published → draft",
        "in effect from: 2017-04-01 → 2019-04-01",
        "in effect to: 2019-03-31 → 2021-03-31",
        "period year1: 2017-04-01 to 2018-03-31 → 2019-04-01 to 2020-03-31",
        "period year2: 2018-04-01 to 2019-03-31 → 2020-04-01 to 2021-03-31",
        "quarter year1.Q2: 2017-07-01 to 2017-09-30 → 2019-07-01 to 2019-09-30",
        "quarter year2.Q4: 2019-01-01 to 2019-03-31 → 2021-01-01 to 2021-03-31",
        "category stroke (Stroke) added, code lists stroke_snomed, stroke_icd10 (8 codes)",
        "code list stroke_icd10 (category stroke) added: Stroke (ICD-10), 6 icd10 codes",
        "I63 Cerebral infarction",
        "shared code 33301000119105 (snomed) declared in angina_heart and stroke",
        "interpretation of component y2.conversations changed",
        "citation of component y1.activation_assessment changed",
        "interpretation of population year2_cohort changed",
        "interpretation of LTC category cancer changed",
        "interpretation of milestone y1.q2.plan changed",
        "source example_2019_21 added",
    ],
)
def test_the_diff_shows_each_planted_change(shown: str, planted: str):
    assert planted in shown


def test_bands_are_shown_old_and_new_side_by_side_in_words(shown: str):
    bands = section(shown, "Bands")
    assert re.search(r"from 25% to 50% inclusive pays 50%\s+from 35% to 60% inclusive pays 50%", bands)
    assert re.search(r"above 50% pays 100%\s+above 60% pays 100%", bands)
    assert re.search(r"from 50% to 75% inclusive pays 50%\s+from 60% to 85% inclusive pays 50%", bands)


def test_interpretations_show_what_they_said_and_what_they_say_now(shown: str):
    assert "decision was: Trained means a training record completed on or before 31 Mar 2018." in shown
    assert "decision now: Trained means a training record completed on or before 31 Mar 2020." in shown


def test_the_diff_says_which_version_change_the_changes_need(shown: str):
    assert "they need a major version change" in shown


def test_codes_added_to_and_removed_from_a_list_are_counted_with_examples():
    old = load_ruleset("cquin_2017_19")
    new = load_ruleset("cquin_2017_19")
    diabetes = new.code_lists["diabetes_snomed"]
    codes = {k: v for k, v in diabetes.codes.items() if k != "44054006"} | {"1259499007": 80}
    new.code_lists = {**new.code_lists, "diabetes_snomed": dataclasses.replace(diabetes, codes=codes)}
    summaries = [c.summary for c in diff_rulesets(old, new).changes]
    assert "code list diabetes_snomed (category diabetes): 1 code(s) added" in summaries
    assert "code list diabetes_snomed (category diabetes): 1 code(s) removed" in summaries


def test_a_patch_version_for_moved_bands_is_flagged():
    old = load_ruleset("cquin_2017_19")
    new = load_ruleset("cquin_2017_19")
    new.doc = {**new.doc, "version": "1.2.1", "components": [dict(c) for c in new.doc["components"]]}
    new.doc["components"][4]["bands"] = [{"below": 60, "pays_percent": 0}, {"at_least": 60, "pays_percent": 100}]
    diff = diff_rulesets(old, new)
    assert diff.required_bump == "major"
    assert diff.version_problem == "the version goes from 1.2.0 to 1.2.1 (a patch change), but these changes need a major version"


def test_identical_rulesets_have_no_differences():
    ruleset = load_ruleset("cquin_2017_19")
    assert diff_rulesets(ruleset, ruleset).changes == []


# --------------------------------------------------------------------------- --impact


def test_impact_shows_which_component_results_change(shown: str):
    impact = shown[shown.index("Impact on") : shown.index("Who moves")]
    assessment = impact.split("y1.activation_assessment: changed")[1]
    assert re.search(r"was  \d+ of \d+ \([\d.]+%\), above 50%, pays 100%", assessment)
    assert re.search(r"now  0 of \d+ \(0\.00%\), below 35%, pays 0%", assessment)
    assert (
        "y1.plan: same — Plan agreed and recording system in place (provisional: awaiting the commissioner's confirmation), pays 100%"
        in impact
    )


def test_impact_counts_and_lists_the_patients_who_move(shown: str):
    moves = shown[shown.index("Who moves") :]
    # On 2017-19 data, nobody has a baseline in the example's Year 1 (2019/20): the whole cohort moves out.
    counted = re.search(r"cohort year1: 0 patients move in, ([\d,]+) move out", moves)
    assert counted and int(counted[1].replace(",", "")) > 0
    listed = moves.split("cohort year1:")[1].split("out:")[1].splitlines()[0]
    nhs_numbers = [n.strip() for n in listed.split(",")]
    assert len(nhs_numbers) == int(counted[1].replace(",", ""))
    assert all(re.fullmatch(r"\d{10}", n) for n in nhs_numbers)


def test_list_without_impact_is_a_usage_error():
    result = runner.invoke(cli.app, ["ruleset", "diff", "cquin_2017_19", str(EXAMPLE), "--list"])
    assert result.exit_code != 0
    assert "--list needs --impact" in str(result.exception)


def test_a_change_to_the_care_plan_views_needs_a_minor_version_and_is_listed_as_such():
    old = load_ruleset("cquin_2017_19")
    new = load_ruleset("cquin_2017_19")
    plan = dict(new.doc["care_planning"])
    plan["categories"] = [c for c in plan["categories"] if c["id"] != "coaching"]
    new.doc = {**new.doc, "care_planning": plan}
    diff = diff_rulesets(old, new)
    assert diff.required_bump == "minor"  # the views pay nothing: what the commissioner sees changes, not the money
    assert {c.section for c in diff.changes} == {"Care-plan views"}
