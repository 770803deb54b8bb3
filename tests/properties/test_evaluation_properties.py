"""Properties of an evaluation that must hold for every dataset, not just the hand-worked ones.

Each property draws small populations (see :mod:`tests.properties.populations`)
and evaluates the published ruleset over them:

- the same records give identical results and an identical decisions table,
  whatever order they arrive in (and twice in a row);
- a patient who meets no criterion (served outside both years, with no other
  record) changes no numerator;
- no component pays more than the value available to it, and no year pays
  more than its total available, whatever the contract values.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cquin.engine.ruleset import Ruleset, load_ruleset
from tests.properties.populations import (
    Population,
    bounded,
    components,
    decisions,
    nhs_number,
    number,
    populations,
    run,
    shuffled,
)

RULESET = load_ruleset("cquin_2017_19")
VOCAB = RULESET.vocabulary()


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return RULESET


@bounded(3)
@given(pop=populations(VOCAB))
def test_the_same_records_evaluate_identically_twice(ruleset: Ruleset, pop: Population):
    first, ds1 = run(ruleset, pop)
    second, ds2 = run(ruleset, pop)
    assert components(first) == components(second)
    assert decisions(first, ds1) == decisions(second, ds2)
    assert [m.__dict__ for m in first.milestones] == [m.__dict__ for m in second.milestones]


@bounded(4)
@given(pop=populations(VOCAB, min_patients=2), seed=st.integers(0, 2**32 - 1))
def test_the_order_records_arrive_in_changes_nothing(ruleset: Ruleset, pop: Population, seed: int):
    original, ds1 = run(ruleset, pop)
    reordered, ds2 = run(ruleset, shuffled(pop, seed))
    assert components(original) == components(reordered)
    assert decisions(original, ds1) == decisions(reordered, ds2)
    assert original.cohorts == reordered.cohorts
    assert original.override_notes == reordered.override_notes


def outsider(pop: Population, served_from: str, served_to: str) -> Population:
    """``pop`` plus a patient served only outside both years, with no conditions, assessments or conversations."""
    serial = 900_000 + len(pop["patients"])
    row = {"patient_id": nhs_number(serial), "date_of_birth": "1950-01-01", "sex": "female"}
    extra = {k: [dict(r) for r in v] for k, v in pop.items()}
    extra["patients"].append(row | {"served_from": served_from, "served_to": served_to, "_file": "patients.csv", "_line": 10_000})
    return number(extra)


@bounded(4)
@given(
    pop=populations(VOCAB),
    served=st.sampled_from([("2010-01-01", "2017-03-31"), ("2019-04-01", ""), ("2012-05-05", "2016-12-31")]),
)
def test_a_patient_who_meets_no_criterion_changes_no_numerator(ruleset: Ruleset, pop: Population, served: tuple[str, str]):
    before, _ = run(ruleset, pop)
    after, _ = run(ruleset, outsider(pop, *served))
    for b, a in zip(before.components, after.components, strict=True):
        assert a.numerator == b.numerator, a.id


money = st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2, allow_nan=False, allow_infinity=False)


@bounded(4)
@given(pop=populations(VOCAB), value=money, value_year2=st.one_of(st.none(), money))
def test_no_payment_exceeds_the_value_available(ruleset: Ruleset, pop: Population, value: Decimal, value_year2):
    from cquin.engine.evaluation import evaluate
    from tests.properties.populations import build

    result = evaluate(ruleset, build(pop, VOCAB), contract_value=value, contract_value_year2=value_year2)
    for c in result.components:
        assert Decimal(0) <= c.payment <= c.available, c.id
    for year, paid in result.totals.items():
        assert paid <= result.available[year], year
        assert result.available[year] <= result.contract_values[year], year
