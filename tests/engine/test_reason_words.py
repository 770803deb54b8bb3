"""The words of the reasons a commissioner reads, each case a row of the table below: the exact sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin.engine.evaluation import evaluate, membership
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset

PATIENTS = """patient_id,date_of_birth,sex,served_from,served_to
9990000018,1950-01-01,female,2017-01-01,
9990000026,1950-01-01,male,2017-01-01,
9990000034,1950-01-01,male,2017-01-01,2017-02-01
"""
CONDITIONS = """patient_id,code_system,code,recorded_on
9990000018,gpps,epilepsy,2017-05-01
9990000026,gpps,epilepsy,2017-05-01
"""
ASSESSMENTS = """patient_id,assessed_on,respondent,instrument,pam_score,pam_level,gpps_q32,gpps_q33
9990000018,2017-05-01,patient,pam,,1,,
9990000026,2017-05-01,carer,pam,,1,,
"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder: Path = tmp_path_factory.mktemp("records")
    for name, text in (("patients", PATIENTS), ("conditions", CONDITIONS), ("assessments", ASSESSMENTS)):
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    ruleset = load_ruleset("cquin_2017_19")
    dataset, _ = load_dataset(folder, ruleset.vocabulary())
    return evaluate(ruleset, dataset), dataset


@pytest.mark.parametrize(
    ("population", "subject", "inside", "words"),
    [
        ("baseline_assessed", "9990000018", True, "baseline: PAM level 1 on 2017-05-01 (assessments.csv line 2)"),
        (
            "baseline_assessed",
            "9990000026",
            False,
            "no baseline activation assessment: only carer assessments in year1 (2017-04-01 to 2018-03-31); a carer's answers are not the patient's own",
        ),
        ("ltc_identified", "9990000018", True, "gpps epilepsy (epilepsy) recorded 2017-05-01 (conditions.csv line 2)"),
        (
            "served_year1",
            "9990000034",
            False,
            "not under care year1 (2017-04-01 to 2018-03-31) (1 episode(s) from 2017-01-01 to 2017-02-01)",
        ),
    ],
    ids=["measured", "carer-only", "ltc", "not-served"],
)
def test_a_reason_reads_as_the_commissioner_checks_it(evaluated, population, subject, inside, words) -> None:  # type: ignore[no-untyped-def]
    result, dataset = evaluated
    assert membership(result, dataset, population, subject) == (inside, words)
