"""Canonical CSV exports under the faults an independent evaluator found (issue 12): each row's fate is exact.

White space of any kind around a value is trimmed; same-day assessments are
compared by their results; repeated overrides count a patient once; refused
override includes are rejected rows in the ledger; a patient whose patients.csv
row was rejected has their other rows rejected naming that row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset
from cquin.runner import run_evaluation
from cquin.store import open_store
from tests.adapters.ledger_checks import assert_every_record_counted
from tests.adapters.test_canonical import gpps, make_folder, override, patient

P1, P2, P3 = "9990000018", "9990000026", "9990000034"


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset("cquin_2017_19")


@pytest.fixture(scope="module")
def vocab(ruleset) -> Vocabulary:
    return ruleset.vocabulary()


def load(folder: Path, vocab: Vocabulary) -> CanonicalDataset:
    ds, _ = load_dataset(folder, vocab, adapter="canonical")
    assert_every_record_counted(ds, folder)
    return ds


def rejected(ds: CanonicalDataset, file: str) -> dict[int, str]:
    return {line: reason for f, line, _ref, _col, _val, reason in ds.ledger.rejection_rows() if f == file}


# ---------------------------------------------------------------------- item 9: all surrounding white space


@pytest.mark.parametrize("pad", ["\t", "\u00a0", "\u2003", "\t \u00a0\u202f"], ids=["tab", "nbsp", "em-space", "mixed"])
def test_any_white_space_around_a_value_is_trimmed(tmp_path, vocab, pad):
    folder = make_folder(
        tmp_path,
        patients=[patient(P1, sex=f"{pad}female{pad}", served_from=f"{pad}2017-01-01")],
        assessments=[
            gpps(P1, gpps_q32=f"{pad}Yes, definitely{pad}", gpps_q33=f"Very{pad}confident{pad}", instrument=f"gpps{pad}")
        ],
    )
    ds = load(folder, vocab)
    assert ds.ledger.rejection_rows() == []
    assert ds.con.execute("SELECT patient_id, sex, CAST(served_from AS VARCHAR) FROM patients").fetchall() == [
        (P1, "female", "2017-01-01")
    ]
    assert ds.con.execute("SELECT instrument, gpps_q32 FROM assessments").fetchall() == [("gpps", "Yes, definitely")]


def test_a_tab_around_a_gpps_answer_scores_as_the_answer(tmp_path, ruleset, vocab):
    folder = make_folder(
        tmp_path,
        patients=[patient(P1)],
        assessments=[gpps(P1, gpps_q32="\tNo\t", gpps_q33="Not very confident\u00a0")],
    )
    ds = load(folder, vocab)
    trace = evaluate(ruleset, ds).trace
    assert trace is not None
    assert ds.con.execute(f"SELECT CAST(value AS DOUBLE), low FROM ({trace.scored_assessments_sql()})").fetchall() == [
        (0.0, True)
    ]


# ---------------------------------------------------------------------- item 10: same-day results


def test_same_day_gpps_assessments_differing_only_in_case_are_one_assessment(tmp_path, vocab):
    folder = make_folder(
        tmp_path,
        patients=[patient(P1), patient(P2)],
        assessments=[
            gpps(P1),
            gpps(P1, gpps_q32="YES, DEFINITELY", gpps_q33="very  confident"),
            gpps(P2),
            gpps(P2, gpps_q32="No"),
        ],
    )
    ds = load(folder, vocab)
    reasons = rejected(ds, "assessments.csv")
    assert reasons[3] == (
        "the same assessment as assessments.csv line 2 (the same result on the same day, written differently; counted once)"
    )
    assert reasons[4].startswith("conflicting assessments") and reasons[5].startswith("conflicting assessments")
    assert ds.con.execute("SELECT patient_id, gpps_q32 FROM assessments").fetchall() == [(P1, "Yes, definitely")]


def test_same_day_pam_results_written_as_equal_numbers_are_one_assessment(tmp_path, vocab):
    from tests.adapters.test_canonical import pam

    folder = make_folder(tmp_path, patients=[patient(P1)], assessments=[pam(P1, pam_score="55.2"), pam(P1, pam_score="55.20")])
    ds = load(folder, vocab)
    assert sorted(rejected(ds, "assessments.csv")) == [3]
    assert ds.count("assessments") == 1


# ---------------------------------------------------------------------- item 7: one patient, counted once


def test_a_repeated_include_of_one_patient_is_rejected_as_a_repeat_naming_the_first(tmp_path, vocab):
    folder = make_folder(
        tmp_path,
        patients=[patient(P1)],
        overrides=[
            override(P1, reason="agreed at CQRG", agreed_on="2018-02-01"),
            override(P1, reason="confirmed", agreed_on="2018-01-10"),
        ],
    )
    ds = load(folder, vocab)
    # The earliest agreed is used, so the patient is in from the first date either row allows.
    assert rejected(ds, "overrides.csv") == {
        2: "repeated override: 9990000018 is already included in the year1 cohort by overrides.csv line 3 (a patient is counted once)"
    }
    assert ds.count("overrides") == 1


# ---------------------------------------------------------------------- item 8: refused includes are rejected rows


def test_a_refused_include_is_a_rejected_row_in_the_ledger_and_the_store(tmp_path, vocab):
    folder = make_folder(
        tmp_path,
        patients=[patient(P1), patient(P2, served_from="2018-06-01")],
        overrides=[override(P1), override(P2, reason="agreed")],
    )
    store = tmp_path / "audit.sqlite"
    ev = run_evaluation(folder, store=store)
    stats = ev.dataset.ledger.files["overrides.csv"]
    assert stats.as_dict() == {"read": 2, "accepted": 1, "rejected": 1}
    reason = rejected(ev.dataset, "overrides.csv")[3]
    assert reason.startswith("include of 9990000026 in the year1 cohort refused: not in Patients served in Year 1")
    db = open_store(store)
    row = next(iter(db.query("SELECT accepted, rejected FROM run_inputs WHERE name = 'overrides.csv'")))
    assert (row["accepted"], row["rejected"]) == (1, 1)
    stored = [r["reason"] for r in db.query("SELECT reason FROM run_rejections WHERE file = 'overrides.csv'")]
    assert stored == [reason]


def test_evaluating_twice_does_not_reject_a_refused_include_twice(tmp_path, ruleset, vocab):
    folder = make_folder(tmp_path, patients=[patient(P1), patient(P2, served_from="2018-06-01")], overrides=[override(P2)])
    ds = load(folder, vocab)
    evaluate(ruleset, ds)
    evaluate(ruleset, ds, as_of=dt.date(2019, 3, 31))
    assert ds.ledger.files["overrides.csv"].as_dict() == {"read": 1, "accepted": 0, "rejected": 1}


# ---------------------------------------------------------------------- item 12: name the rejected patients row


def test_a_patients_other_rows_name_their_rejected_patients_row(tmp_path, vocab):
    from tests.adapters.test_canonical import condition

    folder = make_folder(
        tmp_path,
        patients=[
            patient(P1),
            patient(P2, date_of_birth="1950-13-01"),
            patient(P3, served_from="2017-05-01", served_to="2017-04-01"),
        ],
        conditions=[condition(P1), condition(P2), condition(P3)],
    )
    ds = load(folder, vocab)
    reasons = rejected(ds, "conditions.csv")
    assert reasons[3] == (
        "unknown patient 9990000026: their patients row was rejected (patients.csv line 3: '1950-13-01' is not a real date)"
    )
    assert reasons[4] == (
        "unknown patient 9990000034: their patients row was rejected "
        "(patients.csv line 4: the episode ends (2017-04-01) before it starts (2017-05-01))"
    )


# ---------------------------------------------------------------------- item 13: no identifiers in the report


def test_the_report_shows_rejection_reasons_without_any_patient_level_value(tmp_path):
    from cquin.report.data import load_report_data
    from cquin.report.page import render_report
    from tests.adapters.test_canonical import condition, pam

    identifiers = ["999-100-0011", "9991000011", "999 000 0018", "9990000018", "9990000026", "LP0012", "1950-13-01"]
    identifiers += ["1931-02-03", "1930-01-01"]
    folder = make_folder(
        tmp_path,
        patients=[
            patient("999 000 0018", date_of_birth="1950-13-01"),  # rejected for its date of birth
            patient(P2, date_of_birth="1931-02-03", served_from="1930-01-01"),  # born after the episode starts
            patient(P3),
        ],
        conditions=[condition("999-100-0011"), condition(P1), condition("LP0012")],
        assessments=[pam(P3, instrument="gpps", pam_score="", gpps_q32="maybe", gpps_q33="Very confident")],
    )
    store = tmp_path / "audit.sqlite"
    ev = run_evaluation(folder, store=store)
    reasons = " ".join(r[5] for r in ev.dataset.ledger.rejection_rows())
    assert "9991000011" in reasons and "1950-13-01" in reasons  # the ledger, inside the store, keeps the detail
    d = load_report_data(store, ev.run_id)
    for control in (True, False):
        html = render_report(d, control=control)
        section = html[html.index('<section id="data-quality">') :]
        section = section[: section.index("</section>")]
        assert "Rejected rows by reason" in section and "is not a real date" in section
        assert "maybe" not in section  # a value typed into a cell is shown as …, never as written
        for value in identifiers:
            assert value not in html, value
