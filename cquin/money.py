"""Amounts of money given by the user (contract values): read exactly, and bounded before any work starts."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# Far above any NHS contract (the whole NHS England budget is some £10^11), and small enough that every
# payment, to the penny, stays exact within Decimal's default 28 digits.
MAX_POUNDS = Decimal(10) ** 12


def parse_pounds(text: str) -> Decimal:
    """``text`` ("12000000", "12,000,000.00", "£12m" is not accepted) as pounds; ValueError says what is wrong."""
    cleaned = str(text).replace(",", "").replace("£", "").strip()
    if len(cleaned) > 40:
        raise ValueError("expected an amount in pounds, e.g. 12000000 or 12,000,000.00")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError("expected an amount in pounds, e.g. 12000000 or 12,000,000.00") from None
    if not value.is_finite() or value < 0:
        raise ValueError("expected a positive amount in pounds")
    if value > MAX_POUNDS:
        raise ValueError(f"more than £{MAX_POUNDS:,.0f}; expected the annual contract value in pounds")
    if value != value.quantize(Decimal("0.01")):  # exact: the value is bounded above
        raise ValueError("expected pounds and pence (at most two decimal places)")
    return value
