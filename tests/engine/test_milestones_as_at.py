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


def _compilers(ruleset, cut):  # type: ignore[no-untyped-def]
    """The main evaluation's compiler, one as at ``cut`` reusing it, and one as at ``cut`` computing everything."""
    from cquin.engine.evaluation import EVALUATION_PREFIX, _load_code_lists
    from cquin.engine.populations import PopulationCompiler

    dataset, _ = load_dataset(DEMO_DIR, ruleset.vocabulary())
    _load_code_lists(dataset.con, ruleset)
    base = PopulationCompiler(dataset.con, ruleset, as_of=None, prefix=EVALUATION_PREFIX)
    for pid in ruleset.populations:
        base.population(pid)
    reusing = PopulationCompiler(dataset.con, ruleset, as_of=cut, prefix="ra_", base=base, reasons=False)
    afresh = PopulationCompiler(dataset.con, ruleset, as_of=cut, prefix="af_", reasons=False)
    return base, reusing, afresh


@pytest.mark.parametrize("cut", [dt.date(2017, 12, 31), dt.date(2018, 3, 31), dt.date(2018, 9, 30)])
def test_a_count_as_at_a_date_is_the_same_whether_it_reuses_the_main_evaluation_or_not(ruleset, cut) -> None:  # type: ignore[no-untyped-def]
    _, reusing, afresh = _compilers(ruleset, cut)
    for pid in ruleset.populations:
        assert reusing.count_inside(pid) == afresh.count_inside(pid), pid


def test_a_population_no_later_record_can_change_is_not_computed_again_as_at_a_later_date(ruleset) -> None:  # type: ignore[no-untyped-def]
    base, reusing, _ = _compilers(ruleset, dt.date(2018, 3, 31))  # Year 1 ends: its LTCs are settled
    assert reusing.population("ltc_identified") == base.population("ltc_identified")
    # The cohort is not: an override agreed after the date may still change it.
    assert reusing.population("year1_cohort") != base.population("year1_cohort")
    base, early, _ = _compilers(ruleset, dt.date(2017, 12, 31))  # within Year 1: an LTC may still be recorded
    assert early.population("ltc_identified") != base.population("ltc_identified")
