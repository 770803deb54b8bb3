"""Progress during the year: ``--as-of`` each Year 1 quarter end gives milestone statuses and next-band distances.

The expected figures are worked out here by hand from the demo CSV files, not
by the engine: staff training from a table read off staff.csv and training.csv;
activation assessment by a plain-Python reading of the records known on each date.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from cquin.engine.evaluation import RunResult, evaluate
from cquin.engine.ruleset import Ruleset, load_ruleset, normalise_answer
from cquin.loading import load_dataset

QUARTER_ENDS = [dt.date(2017, 6, 30), dt.date(2017, 9, 30), dt.date(2017, 12, 31), dt.date(2018, 3, 31)]


@pytest.fixture(scope="module")
def progress() -> dict[dt.date, RunResult]:
    """The demo data evaluated as of each Year 1 quarter end (loaded once)."""
    rs = load_ruleset("cquin_2017_19")
    dataset, _ = load_dataset(DEMO_DIR, rs.vocabulary())
    return {day: evaluate(rs, dataset, contract_value=Decimal("12000000"), as_of=day) for day in QUARTER_ENDS}


# ----------------------------------------------------------------------------- staff training, by hand
# staff.csv: S00001, S00002, S00003, S00007, S00008, S00009 care for the cohort (6).
# training.csv: S00003 2017-04-25; S00007 and S00008 2017-08-05; S00009 2018-03-29; S00001 2018-06-07 (after Year 1).
# Bands: below 33% pays 10%; 33% up to 66% 40%; 66% to 85% inclusive 70%; above 85% 100%.
# Next band: the smallest n of 6 inside the next band's lower edge:
#   33% of 6 = 1.98 -> 2;  66% of 6 = 3.96 -> 4;  above 85% of 6 = 5.1 -> 6.
STAFF = [
    # as of,               trained, pays,  next band,   more needed
    (dt.date(2017, 6, 30), 1, "0.1", "from 33% up to but not including 66%", 1),
    (dt.date(2017, 9, 30), 3, "0.4", "from 66% to 85% inclusive", 1),
    (dt.date(2017, 12, 31), 3, "0.4", "from 66% to 85% inclusive", 1),
    (dt.date(2018, 3, 31), 4, "0.7", "above 85%", 2),
]


@pytest.mark.parametrize(("as_of", "trained", "pays", "next_band", "more"), STAFF)
def test_staff_training_progress_matches_the_hand_count(
    progress: dict[dt.date, RunResult], as_of: dt.date, trained: int, pays: str, next_band: str, more: int
) -> None:
    c = progress[as_of].component("y1.staff_training")
    assert (c.numerator, c.denominator) == (trained, 6)
    assert c.payment_fraction == Fraction(pays)
    assert c.next_band == {"band": next_band, "pays": c.next_band["pays"], "more_needed": more}


# ----------------------------------------------------------------------------- milestones, by hand
# Issue 16 item 6: before its due date a milestone is not decided: it shows its progress and "not yet due",
# never "met" (the Q4 training milestone once said "met" on 30 Jun with 1 of 6 staff trained).
# y1.q2.plan is due 30 Sep 2017 (the plan was agreed 2017-09-15), y1.q3.cohort 31 Dec 2017, the Q4 ones 31 Mar 2018.
# Once due, the Year 1 milestones are met: plan agreed in time, and at least one member counted by the due date.
NYD = "not yet due"
MILESTONES = {
    dt.date(2017, 6, 30): {"y1.q2.plan": NYD, "y1.q3.cohort": NYD, "y1.q4.training": NYD, "y1.q4.cohort": NYD},
    dt.date(2017, 9, 30): {"y1.q2.plan": "met", "y1.q3.cohort": NYD, "y1.q4.training": NYD, "y1.q4.cohort": NYD},
    dt.date(2017, 12, 31): {"y1.q2.plan": "met", "y1.q3.cohort": "met", "y1.q4.training": NYD, "y1.q4.cohort": NYD},
    dt.date(2018, 3, 31): {"y1.q2.plan": "met", "y1.q3.cohort": "met", "y1.q4.training": "met", "y1.q4.cohort": "met"},
}


@pytest.mark.parametrize("as_of", QUARTER_ENDS)
def test_milestone_statuses_at_each_quarter_end(progress: dict[dt.date, RunResult], as_of: dt.date) -> None:
    statuses = {m.id: m.status for m in progress[as_of].milestones if m.year == "year1"}
    assert statuses == MILESTONES[as_of]


def test_a_milestone_not_yet_due_shows_its_progress(progress: dict[dt.date, RunResult]) -> None:
    plan = next(m for m in progress[dt.date(2017, 6, 30)].milestones if m.id == "y1.q2.plan")
    assert plan.detail == "progress as at 2017-06-30 (due 2017-09-30): no plan_agreed_on recorded by 2017-06-30"
    training = next(m for m in progress[dt.date(2017, 6, 30)].milestones if m.id == "y1.q4.training")
    assert training.status == NYD and "trained in care and support planning: 1 of" in training.detail


def test_before_year_2_begins_it_is_not_started_with_no_cohort_and_no_money(progress: dict[dt.date, RunResult]) -> None:
    result = progress[dt.date(2017, 6, 30)]
    assert result.year_status == {"year2": "not started"}
    assert "year2" not in result.cohorts and "year2_cohort" not in result.populations
    for c in result.components:
        if c.year == "year2":
            assert (c.numerator, c.denominator, c.payment, c.status) == (None, None, Decimal("0.00"), "not started")
    assert result.totals["year2"] == Decimal("0.00")
    assert result.basis is not None and result.basis.year("year2").status == "not started"


# ----------------------------------------------------------------------------- activation assessment, by hand


def _rows(name: str) -> list[dict[str, str]]:
    with (Path(DEMO_DIR) / name).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _nhs_ok(n: str) -> bool:
    if len(n) != 10 or not n.isdigit():
        return False
    check = 11 - sum(int(d) * w for d, w in zip(n[:9], range(10, 1, -1), strict=True)) % 11
    return (0 if check == 11 else check) == int(n[9])


def hand_count(rs: Ruleset, as_of: dt.date) -> dict[str, set[str]]:
    """LTC-identified, baseline-assessed and low-activation patients known on ``as_of``, in plain Python."""
    y1_start, y1_end = dt.date(2017, 4, 1), dt.date(2018, 3, 31)
    cut = min(as_of, y1_end)
    served = set()
    known = set()
    for r in _rows("patients.csv"):
        start, end = _date(r["served_from"]), _date(r["served_to"]) if r["served_to"] else None
        if not _nhs_ok(r["patient_id"]) or start is None or (r["date_of_birth"] and _date(r["date_of_birth"]) is None):
            continue
        known.add(r["patient_id"])
        if start <= cut and (end is None or end >= y1_start):
            served.add(r["patient_id"])
    # LTC: a code in a category's lists (SNOMED exactly, ICD-10 by prefix without the dot) or a direct GPPS category,
    # recorded by the cut; cancer only from 1 Apr 2013 (5 years up to 31 Mar 2018).
    snomed: dict[str, set[str]] = {}
    icd: dict[str, set[str]] = {}
    for cat in rs.doc["ltc"]["categories"]:
        for ref in cat["code_lists"]:
            cl = rs.code_lists[ref]
            for code in cl.codes:
                (snomed if cl.system == "snomed" else icd).setdefault(code, set()).add(cat["id"])
    ltc = set()
    for r in _rows("conditions.csv"):
        when = _date(r["recorded_on"])
        if r["patient_id"] not in served or when is None or when > cut:
            continue
        system = r["code_system"].strip().lower()  # the canonical adapter accepts any capitals
        if system == "snomed":
            cats = snomed.get(r["code"], set())
        elif system == "icd10":
            norm = r["code"].replace(".", "").upper()
            cats = set().union(*(icd.get(norm[:k], set()) for k in range(3, len(norm) + 1)))
        elif system == "gpps":
            cats = {r["code"].lower()}
        else:
            cats = set()
        if cats - {"cancer"} or ("cancer" in cats and when >= dt.date(2013, 4, 1)):
            ltc.add(r["patient_id"])
    # Baseline: the earliest of the patient's own assessments in Year 1 known by the cut (PAM before GPPS on a tie);
    # low activation is PAM level 1 or 2 (recorded, else from the score: up to 47.0 is 1, up to 55.1 is 2) or 0 GPPS points.
    options = rs.gpps_options()
    earliest: dict[str, tuple[dt.date, int, bool]] = {}
    for r in _rows("assessments.csv"):
        when = _date(r["assessed_on"])
        if r["patient_id"] not in known or when is None or r["respondent"] != "patient":
            continue
        if r["instrument"] == "pam":
            score = Decimal(r["pam_score"]) if r["pam_score"] else None
            if score is not None and not 0 <= score <= 100:
                continue
            level = (
                int(r["pam_level"])
                if r["pam_level"]
                else (1 if score <= Decimal("47.0") else 2 if score <= Decimal("55.1") else 3)
            )
            low, rank = level <= 2, 0
        else:
            answers = [normalise_answer(r[f]) for f in ("gpps_q32", "gpps_q33")]
            if any(a not in options[f] for a, f in zip(answers, ("gpps_q32", "gpps_q33"), strict=True)):
                continue
            low, rank = sum(options[f][a] for a, f in zip(answers, ("gpps_q32", "gpps_q33"), strict=True)) == 0, 1
        if y1_start <= when <= cut and (r["patient_id"] not in earliest or (when, rank) < earliest[r["patient_id"]][:2]):
            earliest[r["patient_id"]] = (when, rank, low)
    baseline = {p for p in ltc if p in earliest}
    return {"ltc": ltc, "baseline": baseline, "low": {p for p in baseline if earliest[p][2]}}


@pytest.mark.parametrize("as_of", QUARTER_ENDS)
def test_activation_assessment_progress_matches_the_hand_count(progress: dict[dt.date, RunResult], as_of: dt.date) -> None:
    rs = load_ruleset("cquin_2017_19")
    counted = hand_count(rs, as_of)
    c = progress[as_of].component("y1.activation_assessment")
    assert (c.numerator, c.denominator) == (len(counted["baseline"]), len(counted["ltc"]))
    # Bands: below 25% pays 0; 25% to 50% inclusive pays 50%; above 50% pays 100%.
    share = Fraction(len(counted["baseline"]), len(counted["ltc"]))
    if share > Fraction(1, 2):
        assert c.next_band is None
    else:
        # The next band's lower edge: at least 25% (n >= ceil(den/4)) or above 50% (n > den/2).
        target = math.ceil(Fraction(len(counted["ltc"]), 4)) if share < Fraction(1, 4) else len(counted["ltc"]) // 2 + 1
        assert c.next_band is not None and c.next_band["more_needed"] == target - len(counted["baseline"])


def test_the_q3_cohort_milestone_counts_the_hand_counted_cohort(progress: dict[dt.date, RunResult]) -> None:
    # Evaluated as of 31 Mar 2018, the Q3 milestone counts what was recorded by its due date, 31 Dec 2017.
    # The demo's Year 1 overrides only exclude two non-members, so the cohort is the low-activation baseline set.
    low = hand_count(load_ruleset("cquin_2017_19"), dt.date(2017, 12, 31))["low"]
    milestone = next(m for m in progress[dt.date(2018, 3, 31)].milestones if m.id == "y1.q3.cohort")
    assert milestone.detail.startswith(f"as at 2017-12-31: Year 1 cohort: {len(low)} of ")
