"""Comparing two runs: whether they differ in data, ruleset or both; who moved in or out of each figure, and why.

The small provider (tests/cycle/conftest.py) worked by hand:
  as of 30 Sep 2017: LTC 018 (arthritis 2015) and 026 (diabetes 2016); 034's hypertension (20 Nov 2017) is not yet
  recorded.  Baselines: 018 (Jun 2017, level 2); 026's (Oct 2017) not yet.  Year 1 cohort: 018.
  as of 31 Mar 2018: LTC 018, 026, 034; baselines 018, 026 (level 1), 034 (Dec 2017, level 3).  Cohort: 018, 026.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.cycle.compare import compare_runs, provider_progress
from cquin.exceptions import UserError
from cquin.runner import run_evaluation

from .conftest import write_records

Q2, Q4 = dt.date(2017, 9, 30), dt.date(2018, 3, 31)
WIDER = """extends: cquin_2017_19@1.x
schema_version: 1
id: cquin_2017_19_wider
version: 1.1.0
status: published
title: "Indicator 11 with PAM level 3 counted as low activation (a test change)"
instruments:
  pam:
    low_activation_levels: [1, 2, 3]
"""


def evaluate(records: Path, store: Path, **kw: object) -> str:
    ev = run_evaluation(records, contract_value=Decimal("1000000"), store=store, **kw)  # type: ignore[arg-type]
    assert ev.run_id is not None
    return ev.run_id


def figure(cmp, item: str, measure: str):  # type: ignore[no-untyped-def]
    return next(f for f in cmp.figures if f.item == item and f.measure == measure)


@pytest.fixture(scope="module")
def quarters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    folder = tmp_path_factory.mktemp("quarters")
    store = folder / "audit.sqlite"
    records = write_records(folder / "records")
    return store, evaluate(records, store, as_of=Q2), evaluate(records, store, as_of=Q4)


def test_runs_of_the_same_records_at_two_dates_differ_only_in_their_as_of_date(quarters):
    store, q2, q4 = quarters
    cmp = compare_runs(store, q2, q4)
    assert cmp.differs_in == ["as-of date"] and cmp.input_changes == []


def test_a_condition_recorded_after_the_earlier_date_moves_the_patient_into_ltc_identification(quarters):
    store, q2, q4 = quarters
    fig = figure(compare_runs(store, q2, q4), "y1.ltc_identification", "numerator")
    assert (fig.before, fig.after) == (2, 3)
    (move,) = fig.moved_in
    assert move.subject_id == "9990000034" and not fig.moved_out
    assert move.why == "record dated after 2017-09-30 (counted as of 2018-03-31)"
    assert "icd10 I10 (high_blood_pressure) recorded 2017-11-20 (conditions.csv line 4)" in move.after


def test_a_baseline_taken_after_the_earlier_date_moves_the_patient_into_the_cohort(quarters):
    store, q2, q4 = quarters
    cmp = compare_runs(store, q2, q4)
    cohort = figure(cmp, "cohort.year1", "members")
    assert (cohort.before, cohort.after) == (1, 2)
    assert [(m.subject_id, m.direction) for m in cohort.moves] == [("9990000026", "in")]
    assert "baseline PAM level 1" in cohort.moves[0].after
    assessed = figure(cmp, "y1.activation_assessment", "numerator")
    assert sorted(m.subject_id for m in assessed.moved_in) == ["9990000026", "9990000034"]


def test_components_whose_figures_did_not_change_are_marked_same(quarters):
    store, q2, q4 = quarters
    changed = {c.component: c.changed for c in compare_runs(store, q2, q4).components}
    assert changed["y1.staff_training"] is False  # S1 trained May 2017, S2 never: 1 of 2 on both dates
    assert changed["y1.ltc_identification"] is True


def test_a_changed_record_is_named_as_the_reason(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    before = evaluate(write_records(tmp_path / "a"), store)
    conditions = (tmp_path / "a" / "conditions.csv").read_text() + "9990000050,icd10,E11,2017-06-01\n"
    after = evaluate(write_records(tmp_path / "b", conditions_csv=conditions), store)
    cmp = compare_runs(store, before, after)
    assert cmp.differs_in == ["data"]
    assert any(c.startswith("conditions.csv: changed (accepted 3 -> 4") for c in cmp.input_changes)
    fig = figure(cmp, "y1.ltc_identification", "numerator")
    assert [(m.subject_id, m.why) for m in fig.moved_in] == [("9990000050", "record added or changed")]


def test_a_patient_new_in_the_records_is_named_as_such(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    before = evaluate(write_records(tmp_path / "a"), store)
    patients = (tmp_path / "a" / "patients.csv").read_text() + "9990000069,1955-01-01,female,2017-05-01,\n"
    after = evaluate(write_records(tmp_path / "b", patients_csv=patients), store)
    fig = figure(compare_runs(store, before, after), "y1.ltc_identification", "denominator")
    assert [(m.subject_id, m.why, m.before) for m in fig.moved_in] == [
        ("9990000069", "new in the records", "not in this run's records")
    ]


def test_a_ruleset_change_alone_is_named_as_the_reason(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    records = write_records(tmp_path / "records")
    (tmp_path / "wider.yaml").write_text(WIDER, encoding="utf-8")
    published = evaluate(records, store)
    wider = evaluate(records, store, ruleset=str(tmp_path / "wider.yaml"))
    cmp = compare_runs(store, published, wider)
    assert cmp.differs_in == ["ruleset"]
    cohort = figure(cmp, "cohort.year1", "members")
    assert [(m.subject_id, m.direction, m.why) for m in cohort.moves] == [("9990000034", "in", "ruleset change")]
    assert "not low activation" in cohort.moves[0].before


def test_an_agreed_override_is_named_as_the_reason(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    before = evaluate(write_records(tmp_path / "a"), store)
    overrides = "patient_id,cohort,action,reason,agreed_on\n9990000018,year1,exclude,has a personal health budget plan,2018-01-10"
    after = evaluate(write_records(tmp_path / "b", overrides_csv=overrides), store)
    cmp = compare_runs(store, before, after)
    assert cmp.differs_in == ["data"]
    cohort = figure(cmp, "cohort.year1", "members")
    assert [(m.subject_id, m.direction, m.why) for m in cohort.moves] == [("9990000018", "out", "override")]
    conversations = figure(cmp, "y2.conversations", "denominator")
    assert [(m.subject_id, m.why) for m in conversations.moved_out] == [("9990000018", "override")]


def test_comparing_a_run_with_itself_is_refused(quarters):
    store, q2, _ = quarters
    with pytest.raises(UserError, match="two different runs"):
        compare_runs(store, q2, q2)


def test_progress_shows_each_as_of_date_once_with_its_latest_run(quarters, tmp_path: Path):
    store, q2, q4 = quarters
    code, points = provider_progress(store)
    assert code == "RYX"
    assert [(p.as_of, p.run_id) for p in points] == [("2017-09-30", q2), ("2018-03-31", q4)]
    assert [p.components["y1.ltc_identification"]["numerator"] for p in points] == [2, 3]
    assert [p.cohorts["year1"] for p in points] == [1, 2]


def test_progress_leaves_out_a_superseded_run(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    records = write_records(tmp_path / "records")
    old = evaluate(records, store, as_of=Q4)
    new = evaluate(records, store, as_of=Q2, supersedes=old)
    _, points = provider_progress(store)
    assert [p.run_id for p in points] == [new]


def test_the_cli_compares_as_json_and_writes_every_move_to_an_owner_only_file(quarters, tmp_path: Path):
    store, q2, q4 = quarters
    moves = tmp_path / "moves.csv"
    got = CliRunner().invoke(app, ["compare", q2, q4, "--format", "json", "--out", str(moves), "--store", str(store)])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    assert doc["differs_in"] == ["as-of date"]
    assert doc["signoff"] == {"run_a": "sign-off: not signed off", "run_b": "sign-off: not signed off"}
    lines = moves.read_text().splitlines()
    assert lines[0] == "item,measure,subject_id,entity,direction,why,run_a,run_b"
    assert any(line.startswith("cohort.year1,members,9990000026,patient,in,") for line in lines)
    assert os.stat(moves).st_mode & 0o077 == 0


def test_the_cli_table_lists_who_moved_and_why(quarters):
    store, q2, q4 = quarters
    got = CliRunner().invoke(app, ["compare", q2, q4, "--store", str(store)])
    assert got.exit_code == 0, got.output
    assert "the runs differ in: as-of date" in got.output
    assert "y1.ltc_identification numerator: 2 -> 3 (+1); 1 moved in, 0 moved out" in got.output
    assert "in  9990000034" in got.output


def test_the_report_shows_progress_over_the_year_as_a_chart_and_a_table(quarters, tmp_path: Path):
    from cquin.report import write_report

    store, q2, q4 = quarters
    page = tmp_path / "report.html"
    write_report(store, q4, page, disclosure_control=False)
    html = page.read_text()
    section = html[html.index('<section id="progress">') :]
    section = section[: section.index("</section>")]
    assert "plotly-graph-div" in section
    assert "2017-09-30" in section and "2018-03-31 (this run)" in section
    assert "2 / 4 (50.00%)" in section and "3 / 4 (75.00%)" in section  # LTC identified of served, Q2 then Q4
