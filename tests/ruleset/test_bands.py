"""Payment bands: decided on exact fractions, every boundary tested from both sides.

The bands are read from the bundled ruleset through ``Ruleset.bands`` and
``band_for``, so these tests pin the policy as published (not a copy of it).
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from cquin.engine.bands import Band, band_for, band_from_spec, coverage_problems
from cquin.engine.money import percent_text
from cquin.engine.ruleset import Ruleset, load_ruleset

HUNDRED = Fraction(100)
JUST = Fraction(1, 10**9)  # a sliver: far smaller than any count of patients could make


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset("cquin_2017_19")


def pays(ruleset: Ruleset, component_id: str, value: Fraction | int) -> Fraction:
    band = band_for(ruleset.bands(ruleset.component(component_id)), Fraction(value))
    assert band is not None, f"{value} falls in no band of {component_id}"
    return band.pays


# (component, measured value: a percentage, or a count for count bands, expected share paid)
BOUNDARIES = [
    # Activation assessment: below 25% -> 0; 25% to 50% inclusive -> 50%; above 50% -> 100%.
    ("y1.activation_assessment", Fraction(0), Fraction(0)),
    ("y1.activation_assessment", Fraction(24999, 1000), Fraction(0)),
    ("y1.activation_assessment", 25 - JUST, Fraction(0)),
    ("y1.activation_assessment", Fraction(25), Fraction(1, 2)),
    ("y1.activation_assessment", Fraction(50), Fraction(1, 2)),
    ("y1.activation_assessment", 50 + JUST, Fraction(1)),
    ("y1.activation_assessment", Fraction(5001, 100), Fraction(1)),
    ("y1.activation_assessment", Fraction(100), Fraction(1)),
    # Staff training: below 33% -> 10%; 33% up to 66% -> 40%; 66% to 85% inclusive -> 70%; above 85% -> 100%.
    ("y1.staff_training", Fraction(0), Fraction(1, 10)),
    ("y1.staff_training", 33 - JUST, Fraction(1, 10)),
    ("y1.staff_training", Fraction(33), Fraction(2, 5)),
    ("y1.staff_training", 66 - JUST, Fraction(2, 5)),
    ("y1.staff_training", Fraction(66), Fraction(7, 10)),
    ("y1.staff_training", Fraction(85), Fraction(7, 10)),
    ("y1.staff_training", 85 + JUST, Fraction(1)),
    ("y1.staff_training", Fraction(100), Fraction(1)),
    # Conversations: below 50% -> 0; 50% to 75% inclusive -> 50%; above 75% -> 100%.
    ("y2.conversations", Fraction(0), Fraction(0)),
    ("y2.conversations", 50 - JUST, Fraction(0)),
    ("y2.conversations", Fraction(50), Fraction(1, 2)),
    ("y2.conversations", Fraction(75), Fraction(1, 2)),
    ("y2.conversations", 75 + JUST, Fraction(1)),
    ("y2.conversations", Fraction(100), Fraction(1)),
    # Improvement in activation: below 25% -> 0; 25% to 50% inclusive -> 50%; above 50% -> 100%.
    ("y2.activation_improvement", 25 - JUST, Fraction(0)),
    ("y2.activation_improvement", Fraction(25), Fraction(1, 2)),
    ("y2.activation_improvement", Fraction(50), Fraction(1, 2)),
    ("y2.activation_improvement", 50 + JUST, Fraction(1)),
    # LTC identification pays on the count of patients identified: none -> 0, any -> 100%.
    ("y1.ltc_identification", Fraction(0), Fraction(0)),
    ("y1.ltc_identification", Fraction(1), Fraction(1)),
    ("y1.ltc_identification", Fraction(250_000), Fraction(1)),
]


def value_id(value: Fraction) -> str:
    if value.denominator == JUST.denominator:
        n = round(value)
        return f"just-below-{n}" if value < n else f"just-above-{n}"
    return f"{float(value):g}"


@pytest.mark.parametrize(
    ("component_id", "value", "expected"),
    BOUNDARIES,
    ids=[f"{c}-{value_id(v)}-pays-{float(e):g}" for c, v, e in BOUNDARIES],
)
def test_boundary_value_pays_its_band(ruleset: Ruleset, component_id: str, value: Fraction, expected: Fraction):
    assert pays(ruleset, component_id, value) == expected


def test_shared_boundary_goes_to_higher_band(ruleset: Ruleset):
    """'33% to 66%' and '66 to 85%' both name 66%: exactly 66% pays the higher band."""
    assert pays(ruleset, "y1.staff_training", 66) == Fraction(7, 10)
    assert pays(ruleset, "y1.staff_training", 66 - JUST) == Fraction(2, 5)


def test_89_of_270_is_below_33_percent_although_it_rounds_to_33(ruleset: Ruleset):
    """Bands are decided on the exact fraction, never on the rounded percentage shown."""
    value = Fraction(89, 270) * 100
    assert value < 33
    assert percent_text(89, 270) == "32.96"
    assert round(Decimal(percent_text(89, 270))) == 33
    assert pays(ruleset, "y1.staff_training", value) == Fraction(1, 10)


@pytest.mark.parametrize(
    "component_id", ["y1.activation_assessment", "y1.staff_training", "y2.conversations", "y2.activation_improvement"]
)
def test_every_percentage_falls_in_exactly_one_band(ruleset: Ruleset, component_id: str):
    bands = ruleset.bands(ruleset.component(component_id))
    values = [Fraction(n, 8) for n in range(0, 801)] + [Fraction(89, 270) * 100]
    for value in values:
        containing = [b for b in bands if b.contains(value)]
        assert len(containing) == 1, f"{float(value)}% is in {len(containing)} bands"


@pytest.mark.parametrize(
    "component_id",
    ["y1.ltc_identification", "y1.activation_assessment", "y1.staff_training", "y2.conversations", "y2.activation_improvement"],
)
def test_bundled_bands_tile_their_range(ruleset: Ruleset, component_id: str):
    comp = ruleset.component(component_id)
    limit = None if comp.get("bands_on") == "numerator_count" else HUNDRED
    assert coverage_problems(ruleset.bands(comp), upper_limit=limit) == []


def test_bands_pay_more_as_the_value_rises(ruleset: Ruleset):
    for comp in ruleset.doc["components"]:
        if "bands" in comp:
            paid = [b.pays for b in sorted(ruleset.bands(comp), key=lambda b: b.lower)]
            assert paid == sorted(paid), comp["id"]


def test_bands_are_described_in_words(ruleset: Ruleset):
    words = [b.describe() for b in ruleset.bands(ruleset.component("y1.staff_training"))]
    assert words == ["below 33%", "from 33% up to but not including 66%", "from 66% to 85% inclusive", "above 85%"]
    counts = [b.describe("") for b in ruleset.bands(ruleset.component("y1.ltc_identification"))]
    assert counts == ["below 1", "at least 1"]


def test_a_value_outside_every_band_is_in_none():
    bands = [band_from_spec({"at_least": 10, "pays_percent": 100}, upper_limit=HUNDRED)]
    assert band_for(bands, Fraction(5)) is None


# --------------------------------------------------------------------------- coverage_problems


def band(lower: int, upper: int | None, *, lower_in: bool = True, upper_in: bool = False, pays: int = 0) -> Band:
    return Band(Fraction(lower), lower_in, None if upper is None else Fraction(upper), upper_in, Fraction(pays, 100))


def test_tiling_bands_have_no_coverage_problems():
    bands = [band(0, 25), band(25, 50, upper_in=True), band(50, 100, lower_in=False, upper_in=True)]
    assert coverage_problems(bands, upper_limit=HUNDRED) == []


def test_a_gap_between_bands_is_a_problem_at_the_band_after_it():
    bands = [band(0, 25), band(30, 100, upper_in=True)]
    [(index, message)] = coverage_problems(bands, upper_limit=HUNDRED)
    assert index == 1
    assert "gap" in message and "25%" in message and "30%" in message


def test_a_single_value_left_out_is_a_gap():
    """below 50 and above 50: exactly 50% is in no band."""
    bands = [band(0, 50), band(50, 100, lower_in=False, upper_in=True)]
    [(index, message)] = coverage_problems(bands, upper_limit=HUNDRED)
    assert index == 1
    assert "50% is in no band" in message


def test_overlapping_bands_are_a_problem_at_the_later_band():
    bands = [band(0, 66, upper_in=True), band(66, 100, upper_in=True)]
    [(index, message)] = coverage_problems(bands, upper_limit=HUNDRED)
    assert index == 1
    assert "overlaps" in message and "66%" in message


def test_bands_that_stop_short_of_100_percent_leave_the_top_uncovered():
    bands = [band(0, 50), band(50, 90, upper_in=True)]
    [(index, message)] = coverage_problems(bands, upper_limit=HUNDRED)
    assert index == 1
    assert "gap" in message and "above 90%" in message and "100%" in message


def test_bands_that_start_above_zero_leave_the_bottom_uncovered():
    bands = [band(10, 50), band(50, 100, upper_in=True)]
    [(index, message)] = coverage_problems(bands, upper_limit=HUNDRED)
    assert index == 0
    assert "gap" in message and "0%" in message and "10%" in message


def test_count_bands_need_an_open_top():
    bands = [band(0, 1), band(1, 10, upper_in=True)]
    [(index, message)] = coverage_problems(bands, upper_limit=None, unit="")
    assert index == 1
    assert "stop at 10" in message


def test_an_empty_band_is_a_problem():
    bands = [band(0, 50), band(50, 50), band(50, 100, upper_in=True)]
    problems = coverage_problems(bands, upper_limit=HUNDRED)
    assert [i for i, _ in problems] == [1]
    assert "empty" in problems[0][1]


def test_bands_may_be_listed_in_any_order():
    bands = [band(50, 100, lower_in=False, upper_in=True), band(0, 25), band(25, 50, upper_in=True)]
    assert coverage_problems(bands, upper_limit=HUNDRED) == []
