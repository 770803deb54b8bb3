"""What a run's money rests on, and what reaching the next band is worth: typed values for every output.

:class:`NextStep` is one component's distance to its next paying band (how many
more patients or staff, and the pounds it would add); :class:`Basis` is the
contract value(s), the indicator's weighting, each year's available and earned
money and the grand totals over both years.  Both are computed exactly by the
engine (Fractions for shares, Decimal pounds rounded half-up to the penny as
the ruleset's ``money`` section says), kept with the run in the audit store,
and rebuilt from a stored run with :meth:`NextStep.from_stored` and
:func:`basis_from_stored`, so the terminal, CSV, submission, report and
workbook all show the same figures.

No figure here is policy: the weighting, periods and bands come from the ruleset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any

from cquin.engine.money import decimal_text

NO_CONTRACT_VALUE = "no contract value given"


@dataclass(frozen=True)
class NextStep:
    """One component's distance to its next paying band.

    ``more_needed`` is how many more members of the numerator population
    (``what``: its label in the ruleset) would reach ``band``; None when the
    denominator is too small for it ever to be reached.  ``worth`` is the extra
    money reaching it would earn (the next band's payment minus today's, both
    rounded to the penny); None when the run was given no contract value.
    """

    component: str
    year: str
    entity: str | None  # "patient" or "staff": who the work-list names
    band: str  # the next band, in words
    pays: Fraction  # what the next band pays, as a fraction of the component's share
    more_needed: int | None
    worth: Decimal | None
    what: str  # the numerator population's label, e.g. "Relevant staff trained in care and support planning"
    population: str = ""  # the numerator population's id
    denominator_population: str = ""

    @property
    def reachable(self) -> bool:
        return self.more_needed is not None

    def text(self) -> str:
        """One line, e.g. '2 more relevant staff trained in care and support planning: +£2,700.00 (above 85%, pays 100%)'."""
        what = self.what[:1].lower() + self.what[1:]
        pays = f"pays {decimal_text(self.pays * 100)}%"
        if self.more_needed is None:
            return f"{self.band} ({pays}) cannot be reached with this denominator"
        money = NO_CONTRACT_VALUE if self.worth is None else f"+£{self.worth:,.2f}"
        return f"{self.more_needed:,} more {what}: {money} ({self.band}, {pays})"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; ``band``, ``pays`` and ``more_needed`` are as the older ``next_band`` records had them."""
        return {
            "band": self.band,
            "pays": decimal_text(self.pays),
            "more_needed": self.more_needed,
            "worth": None if self.worth is None else f"{self.worth:.2f}",
            "component": self.component,
            "year": self.year,
            "entity": self.entity,
            "what": self.what,
            "population": self.population,
            "denominator_population": self.denominator_population,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], component: dict[str, Any] | None = None) -> NextStep:
        """From :meth:`as_dict` (or an older run's ``next_band``, which lacks the worth: then None)."""
        c = component or {}
        return cls(
            component=str(d.get("component") or c.get("component", "")),
            year=str(d.get("year") or c.get("year", "")),
            entity=d.get("entity", c.get("entity")),
            band=str(d["band"]),
            pays=Fraction(str(d["pays"])),
            more_needed=d.get("more_needed"),
            worth=None if d.get("worth") is None else Decimal(str(d["worth"])),
            what=str(d.get("what") or ""),
            population=str(d.get("population") or ""),
            denominator_population=str(d.get("denominator_population") or ""),
        )

    @classmethod
    def from_stored(cls, row: dict[str, Any]) -> NextStep | None:
        """The next step of a stored component row (``run_components``), or None at the top band."""
        raw = row.get("next_band")
        if not raw:
            return None
        return cls.from_dict(json.loads(raw) if isinstance(raw, str) else raw, row)


@dataclass(frozen=True)
class YearBasis:
    """One year's money and where it came from."""

    year: str
    label: str
    contract_value: Decimal | None  # None: no contract value was given
    value: Decimal | None  # the indicator's value for the year: contract value x weighting, to the penny
    available: Decimal | None  # the sum of the components' available amounts
    earned: Decimal | None
    earned_share: Fraction  # of the year's value, exact (known without a contract value)
    status: str = ""  # "" or "not started" (an as-of date before the year begins)

    def money(self, amount: Decimal | None) -> str:
        return NO_CONTRACT_VALUE if amount is None else f"£{amount:,.2f}"


@dataclass(frozen=True)
class Basis:
    """The contract basis of a run: value(s), weighting, each year's figures and the grand totals."""

    weighting: Fraction  # of the contract value, e.g. 1/400 for 0.25%
    years: tuple[YearBasis, ...]
    available: Decimal | None  # over all years
    earned: Decimal | None

    @property
    def weighting_percent(self) -> str:
        return decimal_text(self.weighting * 100)

    @property
    def given(self) -> bool:
        return self.available is not None

    def year(self, year: str) -> YearBasis:
        return next(y for y in self.years if y.year == year)

    def lines(self, years: list[str] | None = None) -> list[str]:
        """The basis in words, one line per year then the grand total (for terminals and reports)."""
        out = []
        for y in self.years:
            if years is not None and y.year not in years:
                continue
            if y.status:
                out.append(f"{y.label}: {y.status}")
                continue
            if y.contract_value is None:
                out.append(f"{y.label}: {float(y.earned_share) * 100:.1f}% of the year's value earned ({NO_CONTRACT_VALUE})")
                continue
            out.append(
                f"{y.label}: £{y.earned:,.2f} earned of £{y.available:,.2f} available "
                f"(contract value £{y.contract_value:,.2f} x {self.weighting_percent}% weighting)"
            )
        if self.earned is not None and (years is None or len(years) > 1):
            out.append(f"Total: £{self.earned:,.2f} earned of £{self.available:,.2f} available")
        return out

    def as_dict(self) -> dict[str, Any]:
        def m(v: Decimal | None) -> str | None:
            return None if v is None else f"{v:.2f}"

        return {
            "weighting_percent": self.weighting_percent,
            "years": [
                {
                    "year": y.year,
                    "label": y.label,
                    "contract_value": m(y.contract_value),
                    "value": m(y.value),
                    "available": m(y.available),
                    "earned": m(y.earned),
                    "earned_share": decimal_text(y.earned_share),
                    "status": y.status,
                }
                for y in self.years
            ],
            "available": m(self.available),
            "earned": m(self.earned),
        }


def build_basis(
    *,
    weighting: Fraction,
    years: list[tuple[str, str]],
    contract_values: dict[str, Decimal | None],
    available: dict[str, Decimal],
    earned: dict[str, Decimal],
    earned_share: dict[str, Fraction],
    status: dict[str, str],
) -> Basis:
    """The basis from per-year figures (``years`` is [(id, label)] in order)."""
    from cquin.engine.money import to_penny

    rows = []
    for yid, label in years:
        cv = contract_values.get(yid)
        given = cv is not None
        rows.append(
            YearBasis(
                yid,
                label,
                cv,
                to_penny(Fraction(cv) * weighting) if cv is not None else None,
                available.get(yid) if given else None,
                earned.get(yid) if given else None,
                earned_share.get(yid, Fraction(0)),
                status.get(yid, ""),
            )
        )
    all_given = bool(rows) and all(r.contract_value is not None for r in rows)
    total_available = sum((r.available or Decimal("0.00") for r in rows), Decimal("0.00")) if all_given else None
    total_earned = sum((r.earned or Decimal("0.00") for r in rows), Decimal("0.00")) if all_given else None
    return Basis(weighting, tuple(rows), total_available, total_earned)


def basis_from_stored(run: dict[str, Any], components: list[dict[str, Any]]) -> Basis:
    """The basis of a stored run (its ``runs`` row and ``run_components`` rows), from the run's own ruleset copy."""
    from cquin.engine.bands import HUNDRED, to_fraction

    ruleset = json.loads(run["ruleset_json"])
    params = json.loads(run.get("parameters") or "{}")
    year_ids: list[str] = []
    for c in components:
        if c["year"] not in year_ids:
            year_ids.append(c["year"])
    cv1 = params.get("contract_value")
    cv2 = params.get("contract_value_year2")
    values: dict[str, Decimal | None] = {}
    for i, y in enumerate(year_ids):
        raw = cv2 if (i > 0 and cv2 is not None) else cv1
        values[y] = None if raw is None else Decimal(str(raw))
    stored_status = params.get("year_status") or {}
    share = {
        y: sum(
            (Fraction(c["share"]) * Fraction(c["payment_fraction"]) for c in components if c["year"] == y),
            Fraction(0),
        )
        for y in year_ids
    }
    return build_basis(
        weighting=to_fraction(ruleset["indicator"]["weighting_percent"]) / HUNDRED,
        years=[(y, ruleset["periods"][y]["label"]) for y in year_ids],
        contract_values=values,
        available={k: Decimal(v) for k, v in json.loads(run["available"]).items()},
        earned={k: Decimal(v) for k, v in json.loads(run["totals"]).items()},
        earned_share=share,
        status={k: str(v) for k, v in stored_status.items()},
    )
