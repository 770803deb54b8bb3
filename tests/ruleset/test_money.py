"""Exact money and percentages: rounding happens only when a figure is shown, half-up."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from cquin.engine.money import decimal_text, percent_text, to_penny


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (Decimal("0.125"), Decimal("0.13")),
        (Decimal("0.124999"), Decimal("0.12")),
        (Decimal("0.135"), Decimal("0.14")),
        (Decimal("2.675"), Decimal("2.68")),  # a binary float would give 2.67
        (Decimal("1000"), Decimal("1000.00")),
        (Fraction(1, 8), Decimal("0.13")),
        (Fraction(124999, 1000000), Decimal("0.12")),
        (Fraction(1, 3), Decimal("0.33")),
        (Fraction(2, 3), Decimal("0.67")),
        (Fraction(2675, 1000), Decimal("2.68")),
        (Fraction(5, 1000) - Fraction(1, 10**12), Decimal("0.00")),
        (Fraction(0), Decimal("0.00")),
    ],
    ids=str,
)
def test_to_penny_rounds_half_up_on_the_exact_amount(amount: Decimal | Fraction, expected: Decimal):
    result = to_penny(amount)
    assert result == expected
    assert result.as_tuple().exponent == -2  # always shown to the penny


def test_to_penny_of_a_contract_share_is_exact():
    """£1,234,567.89 x 0.25% x 30% x 40% = £370.37037... -> £370.37."""
    amount = Fraction(Decimal("1234567.89")) * Fraction(1, 400) * Fraction(30, 100) * Fraction(2, 5)
    assert to_penny(amount) == Decimal("370.37")


def test_to_penny_rounds_a_negative_fraction_like_the_same_decimal():
    assert to_penny(Fraction(-1, 8)) == to_penny(Decimal("-0.125")) == Decimal("-0.13")


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (89, 270, "32.96"),
        (1, 3, "33.33"),
        (2, 3, "66.67"),
        (1, 8, "12.50"),
        (1, 1, "100.00"),
        (0, 5, "0.00"),
        (1, 200, "0.50"),
        (1, 80000, "0.00"),  # 0.00125%
        (1, 400, "0.25"),
        (1, 16, "6.25"),
        (1, 1600, "0.06"),  # 0.0625% -> 0.06
        (1, 800, "0.13"),  # 0.125% -> 0.13: half-up
    ],
)
def test_percent_text_has_two_decimals_rounded_half_up(numerator: int, denominator: int, expected: str):
    assert percent_text(numerator, denominator) == expected


def test_percent_text_of_a_zero_denominator_is_none():
    assert percent_text(0, 0) is None
    assert percent_text(5, 0) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(1, 2), "0.5"),
        (Fraction(1), "1"),
        (Fraction(1, 10), "0.1"),
        (Fraction(0), "0"),
        (Fraction(7, 10), "0.7"),
        (Fraction(1, 400), "0.0025"),
        (Fraction(100), "100"),
        (Fraction(1, 3), "0.333333"),
        (Fraction(2, 3), "0.666667"),
    ],
    ids=str,
)
def test_decimal_text_shows_a_fraction_without_trailing_zeros(value: Fraction, expected: str):
    assert decimal_text(value) == expected
