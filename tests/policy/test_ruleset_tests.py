"""`cquin ruleset test`: the shipped cases pass, and a wrong expectation fails with a readable expected-vs-actual."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from cquin import cli
from cquin.engine.ruleset import load_ruleset
from cquin.policytest import run_test_file

from .conftest import EXAMPLE, EXAMPLE_TESTS, write

runner = CliRunner()

WRONG = """ruleset: {ruleset}
cases:
  - name: a deliberately wrong expectation
    population:
      patients:
        - {{patient_id: "9990000018", served_from: 2019-01-01}}
        - {{patient_id: "9990000026", served_from: 2019-01-01}}
      conditions:
        - {{patient_id: "9990000018", code_system: gpps, code: stroke, recorded_on: 2019-05-01}}
      assessments:
        - {{patient_id: "9990000018", assessed_on: 2019-06-01, respondent: patient, instrument: pam, pam_level: 3}}
    expect:
      components:
        y1.activation_assessment: {{numerator: 2, payment_fraction: 0.5}}
      patients:
        "9990000026": {{in: [ltc_identified]}}
"""


def test_the_examples_cases_pass():
    failures = {c.name: c.failures for c in run_test_file(EXAMPLE_TESTS).cases if not c.passed}
    assert not failures


def test_the_examples_cases_pin_down_its_changes_they_fail_against_the_2017_19_ruleset(folder: Path):
    changed = {
        "activation assessment of 1 in 3 (33.33%) now pays nothing (2017-19 paid half)",
        "conversations for 4 of 5 (80%) pay half (2017-19 paid in full)",
    }
    doc = yaml.safe_load(EXAMPLE_TESTS.read_text(encoding="utf-8"))
    doc["cases"] = [c for c in doc["cases"] if c["name"] in changed]
    subset = write(folder, "subset.tests.yaml", yaml.safe_dump(doc, sort_keys=False))
    results = run_test_file(subset, ruleset_override=load_ruleset("cquin_2017_19")).cases
    assert {c.name for c in results if not c.passed} == changed


def test_a_wrong_expectation_fails_with_expected_versus_actual_and_the_rule(folder: Path):
    tests = write(folder, "wrong.tests.yaml", WRONG.format(ruleset=EXAMPLE.as_posix()))
    result = runner.invoke(cli.app, ["ruleset", "test", str(tests)])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert f"FAIL a deliberately wrong expectation  {tests}:3:" in out
    assert (
        "components.y1.activation_assessment.numerator: expected 2, got 1 "
        "(rule: numerator baseline_assessed / denominator ltc_identified; 1/1, band above 60%)"
    ) in out
    assert "components.y1.activation_assessment.payment_fraction: expected 0.5, got 1 " in out
    assert "patients 9990000026: expected IN ltc_identified, but is out" in out
    assert "0 passed, 1 failed" in out
