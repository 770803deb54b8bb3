"""A milestone "as at" a date counts what was known on that date; at the run's own date, that is the run's count."""

from __future__ import annotations

import datetime as dt

import pytest

from cquin.demo import DEMO_DIR
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset


@pytest.fixture(scope="module")
def ruleset():  # type: ignore[no-untyped-def]
    return load_ruleset("cquin_2017_19")


def _run(ruleset, as_of):  # type: ignore[no-untyped-def]
    dataset, _ = load_dataset(DEMO_DIR, ruleset.vocabulary())
    return evaluate(ruleset, dataset, as_of=as_of)


def test_a_milestone_not_yet_due_shows_the_runs_own_counts_as_its_progress(ruleset) -> None:  # type: ignore[no-untyped-def]
    result = _run(ruleset, dt.date(2017, 12, 31))
    q4 = next(m for m in result.milestones if m.id == "y1.q4.cohort")  # due 31 Mar 2018
    assert q4.status == "not yet due"
    cohort, ltc = result.cohorts["year1"], result.populations["ltc_identified"]
    assert q4.detail.startswith(f"progress as at 2017-12-31 (due 2018-03-31): Year 1 cohort: {cohort} of ")
    assert f": {ltc} (" in q4.detail


def test_a_milestone_due_on_the_runs_date_counts_as_a_later_run_counts_it(ruleset) -> None:  # type: ignore[no-untyped-def]
    on_the_day = next(m for m in _run(ruleset, dt.date(2017, 12, 31)).milestones if m.id == "y1.q3.cohort")
    later = next(m for m in _run(ruleset, dt.date(2018, 6, 30)).milestones if m.id == "y1.q3.cohort")
    assert on_the_day.status in ("met", "missed")
    assert (on_the_day.status, on_the_day.detail) == (later.status, later.detail)
    assert on_the_day.detail.startswith("as at 2017-12-31: Year 1 cohort: ")
