"""Statistical disclosure control, for figures that are to be *published*.

The parties to a contract (provider and commissioner) exchange exact aggregate
figures, and the payment is decided on them: every output cquin writes for them
(terminal, JSON, CSV, submission, report, workbook, MeasureReport) is exact by
default.  Disclosure control is what NHS Digital applies when it publishes, and
cquin applies it only when asked (``--publish``), and then only to counts of
patients: staff counts, file row counts and money are not counts of patients
and are never altered (:func:`applies_to`).  Every altered cell is marked.

The rule is NHS Digital's own, as its published figures apply it (codonPython
``suppression.py``; see shared/reference/domain.md): a count of 0 stays 0, a
count from 1 to 7 is suppressed and shown as ``*``, and every other count is
rounded to the nearest 5.  (An integer is never exactly half-way between two
multiples of 5, so "nearest" needs no tie rule.)

A percentage derived from a suppressed count is not shown; otherwise it is
computed from the published (rounded) counts, so it reveals nothing the counts
do not.  Money, bands and milestone statuses are the contract's outcome, not
counts of people, and are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from cquin.engine.money import percent_text

SUPPRESSED = "*"
SMALLEST_SHOWN = 8  # 1..7 are suppressed
ROUND_TO = 5
RULE_TEXT = "0 stays 0; 1-7 shown as *; other counts rounded to the nearest 5 (NHS Digital disclosure control)"


@dataclass(frozen=True)
class Published:
    """A count as it may be shared: the figure to show, its value if any, and what was done to it."""

    text: str  # what to print: "0", "*", "1235"
    value: int | None  # the published number; None when suppressed
    marker: str  # "" (shown as it is), "suppressed" or "rounded" (to the nearest 5, possibly unchanged)

    @property
    def suppressed(self) -> bool:
        return self.value is None


PATIENT = "patient"


def applies_to(entity: str | None, control: bool) -> bool:
    """Whether disclosure control alters a count of ``entity``: only counts of patients, only when publishing."""
    return control and entity == PATIENT


def publish(count: int | None, *, control: bool = False) -> Published:
    """The count as it may leave the provider (unchanged when ``control`` is off)."""
    if count is None:
        return Published("", None, "")
    count = int(count)
    if not control or count == 0:
        return Published(str(count), count, "")
    if count < 0:
        raise ValueError(f"a count cannot be negative: {count}")
    if count < SMALLEST_SHOWN:
        return Published(SUPPRESSED, None, "suppressed")
    rounded = ROUND_TO * ((count + ROUND_TO // 2) // ROUND_TO)
    return Published(str(rounded), rounded, "rounded")


def published_value(count: int | None, *, control: bool = False) -> int | None:
    """The published number (None when suppressed or unknown)."""
    return publish(count, control=control).value


def published_fraction(numerator: int | None, denominator: int | None, *, control: bool = False) -> Fraction | None:
    """numerator/denominator from the published counts; None when either is suppressed or the denominator is 0."""
    n, d = published_value(numerator, control=control), published_value(denominator, control=control)
    if n is None or d is None or d == 0:
        return None
    return Fraction(n, d)


def published_percent(numerator: int | None, denominator: int | None, *, control: bool = False) -> str | None:
    """The percentage (two decimals) of the published counts, or None when it must not be shown."""
    n, d = published_value(numerator, control=control), published_value(denominator, control=control)
    if n is None or d is None:
        return None
    return percent_text(n, d)
