"""Exact money and percentages: Decimal pounds rounded half-up to the penny only when shown."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

PENNY = Decimal("0.01")


def to_penny(amount: Decimal | Fraction) -> Decimal:
    """Round an amount of pounds half-up to the penny."""
    if isinstance(amount, Fraction):
        # Round on the exact fraction, not on a binary or truncated decimal.
        pennies = abs(amount) * 100
        whole, rest = divmod(pennies.numerator, pennies.denominator)
        if Fraction(rest, pennies.denominator) >= Fraction(1, 2):
            whole += 1
        sign = -1 if amount < 0 else 1
        return (Decimal(sign * whole) / 100).quantize(PENNY)
    return amount.quantize(PENNY, rounding=ROUND_HALF_UP)


def percent_text(numerator: int, denominator: int) -> str | None:
    """The percentage with two decimals, rounded half-up; None when not computable."""
    if denominator == 0:
        return None
    value = Fraction(numerator * 100, denominator)
    whole, rest = divmod(value.numerator * 100, value.denominator)
    if Fraction(rest, value.denominator) >= Fraction(1, 2):
        whole += 1
    return f"{Decimal(whole) / 100:.2f}"


def decimal_text(value: Fraction) -> str:
    """A terminating fraction such as 1/2 as '0.5'; others to 6 places."""
    d = Decimal(value.numerator) / Decimal(value.denominator)
    text = format(d.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP), "f") if len(str(d)) > 12 else format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
