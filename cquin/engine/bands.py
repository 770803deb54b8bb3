"""Payment bands decided on exact fractions, and the checks that they tile their range.

A band is written in policy language (``at_least``/``above`` for its lower edge,
``at_most``/``below`` for its upper edge).  Values are compared as
:class:`fractions.Fraction`, so 89 of 270 (32.96...%) is below 33% even though it
rounds to 33%.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

HUNDRED = Fraction(100)


def to_fraction(value: Any) -> Fraction:
    """An exact fraction from a YAML number (int or Decimal) or a numeric string."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, (int, Decimal)):
        return Fraction(value)
    return Fraction(str(value))


@dataclass(frozen=True)
class Band:
    """One payment band: a range of the measured value and the share of value it pays."""

    lower: Fraction
    lower_inclusive: bool
    upper: Fraction | None  # None: no upper edge (count bands)
    upper_inclusive: bool
    pays: Fraction  # a fraction of the component's share, 0..1
    label: str = ""

    def contains(self, value: Fraction) -> bool:
        if value < self.lower or (value == self.lower and not self.lower_inclusive):
            return False
        if self.upper is None:
            return True
        return value < self.upper or (value == self.upper and self.upper_inclusive)

    def describe(self, unit: str = "%") -> str:
        """The band in words, e.g. '25% to 50% inclusive' or 'below 25%'."""
        lo = _fmt(self.lower) + unit
        if self.upper is None:
            return f"at least {lo}" if self.lower_inclusive else f"above {lo}"
        hi = _fmt(self.upper) + unit
        if self.lower == 0 and self.lower_inclusive:
            return f"up to {hi}" if self.upper_inclusive else f"below {hi}"
        if self.upper == HUNDRED and self.upper_inclusive and unit == "%":
            return f"at least {lo}" if self.lower_inclusive else f"above {lo}"
        left = f"from {lo}" if self.lower_inclusive else f"above {lo}"
        right = f"to {hi} inclusive" if self.upper_inclusive else f"up to but not including {hi}"
        return f"{left} {right}"


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return format(Decimal(value.numerator) / Decimal(value.denominator), "f").rstrip("0").rstrip(".")


def band_from_spec(spec: dict[str, Any], *, upper_limit: Fraction | None) -> Band:
    """Build a band from its YAML form; a missing edge means the range's own edge."""
    if "at_least" in spec:
        lower, lower_inc = to_fraction(spec["at_least"]), True
    elif "above" in spec:
        lower, lower_inc = to_fraction(spec["above"]), False
    else:
        lower, lower_inc = Fraction(0), True
    upper: Fraction | None
    if "at_most" in spec:
        upper, upper_inc = to_fraction(spec["at_most"]), True
    elif "below" in spec:
        upper, upper_inc = to_fraction(spec["below"]), False
    else:
        upper, upper_inc = upper_limit, True
    return Band(lower, lower_inc, upper, upper_inc, to_fraction(spec["pays_percent"]) / HUNDRED, spec.get("label", ""))


def band_for(bands: list[Band], value: Fraction) -> Band | None:
    """The band containing ``value`` (bands are validated not to overlap)."""
    for band in bands:
        if band.contains(value):
            return band
    return None


def coverage_problems(bands: list[Band], *, upper_limit: Fraction | None, unit: str = "%") -> list[tuple[int, str]]:
    """Gaps and overlaps in ``bands`` over [0, upper_limit] (or [0, infinity)).

    Returns ``(band index, message)`` pairs; an empty list means the bands tile
    the range exactly, every value falling in exactly one band.
    """
    problems: list[tuple[int, str]] = []
    order = sorted(range(len(bands)), key=lambda i: (bands[i].lower, not bands[i].lower_inclusive))
    # The edge reached so far: everything below `edge` is covered, and `edge` itself iff `edge_in`.
    edge, edge_in = Fraction(0), False
    for i in order:
        b = bands[i]
        if b.upper is not None and (b.upper < b.lower or (b.upper == b.lower and not (b.lower_inclusive and b.upper_inclusive))):
            problems.append((i, f"band {b.describe(unit)} is empty: its upper edge is not above its lower edge"))
            continue
        if b.lower < edge or (b.lower == edge and edge_in and b.lower_inclusive):
            problems.append((i, f"band {b.describe(unit)} overlaps the band before it at {_fmt(max(b.lower, edge))}{unit}"))
        elif b.lower > edge or (b.lower == edge and not edge_in and not b.lower_inclusive):
            gap = f"{_fmt(edge)}{unit}" if b.lower == edge else f"{_fmt(edge)}{unit} and {_fmt(b.lower)}{unit}"
            what = "is in no band" if b.lower == edge else "are in no band"
            problems.append((i, f"bands leave a gap: values at {gap} {what} (before band {b.describe(unit)})"))
        if b.upper is None:
            edge, edge_in = Fraction(10**18), True
        elif b.upper > edge or (b.upper == edge and b.upper_inclusive):
            edge, edge_in = b.upper, b.upper_inclusive
    if upper_limit is None:
        if edge != Fraction(10**18):
            problems.append((order[-1] if order else 0, f"bands stop at {_fmt(edge)}{unit}: the last band needs no upper edge"))
    elif edge < upper_limit or (edge == upper_limit and not edge_in):
        problems.append(
            (
                order[-1] if order else 0,
                f"bands leave a gap: values above {_fmt(edge)}{unit} up to {_fmt(upper_limit)}{unit} are in no band",
            )
        )
    return problems
