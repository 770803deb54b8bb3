"""What care plans say, as the tables both the report and the workbook show (so they show the same figures).

The views come from the run's breakdowns aggregate (key ``care_plans``, made by
:func:`cquin.engine.care_plans.compute_care_plan_views`).  Here they become tables of cells: text, a
:class:`Count` or a :class:`Percent` (an exact fraction of two counts).  The report renders a count
through :func:`cquin.disclosure.publish` (under ``--publish``) and marks a count from 1 to 7 in exact mode;
the workbook writes the exact numbers and marks the same counts.  Every count in these views is of patients
or of their plans and referrals, so every one is treated as a count of patients: a plan or referral count
of 1 to 7 identifies patients as surely as a patient count does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from cquin.disclosure import SMALLEST_SHOWN

ANY_REFERRAL = "any"  # cquin.engine.care_plans.ANY_REFERRAL
SMALL_NOTE = "1-7: would be suppressed on publication"
NO_VIEWS = "No care plans were recorded with this run; supply care_plans.csv (see the README)."
NO_SECTION = "The run's ruleset has no care_planning section, so no care-plan views were made."


def small(n: int | None) -> bool:
    """A count that disclosure control would suppress (1 to 7)."""
    return n is not None and 0 < n < SMALLEST_SHOWN


@dataclass(frozen=True)
class Count:
    """A count (of patients, or of their plans or referrals)."""

    n: int

    @property
    def small(self) -> bool:
        return small(self.n)


@dataclass(frozen=True)
class Percent:
    """numerator / denominator as a percentage; not computable when the denominator is 0."""

    num: int
    den: int

    @property
    def fraction(self) -> Fraction | None:
        return Fraction(self.num, self.den) if self.den else None

    @property
    def small(self) -> bool:
        return small(self.num) or small(self.den)


Cell = str | Count | Percent | None


@dataclass
class Table:
    id: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""


@dataclass
class CarePlanViews:
    within: tuple[str, str]
    entries: int
    patients: Count
    plans: Count
    plans_shared: Count
    tables: list[Table]
    needs: list[dict[str, Any]]  # (label, met, unmet) per category, for the chart
    mix: list[dict[str, Any]]  # (quarter label, goals, actions) per quarter, for the chart
    labels: dict[str, str]  # category id -> label

    @property
    def shared_percent(self) -> Percent:
        return Percent(self.plans_shared.n, self.plans.n)

    def table(self, tid: str) -> Table:
        return next(t for t in self.tables if t.id == tid)


def views_of(breakdowns: dict[str, Any] | None) -> dict[str, Any] | None | str:
    """The run's care-plan views, or the sentence that says why there are none."""
    if not breakdowns or "care_plans" not in breakdowns:
        return NO_VIEWS
    v = breakdowns["care_plans"]
    if v is None:
        return NO_SECTION
    if not v.get("entries"):
        return NO_VIEWS
    return dict(v)


def _mtm(flag: bool) -> str:
    return "yes" if flag else ""


def _quarter_label(ruleset: dict[str, Any], m: dict[str, Any]) -> str:
    label = (ruleset.get("periods") or {}).get(m["period"], {}).get("label", m["period"])
    year = label.split(" (")[-1].rstrip(")") if "(" in label else label
    return f"{m['quarter']} {year}"


def build(views: dict[str, Any], ruleset: dict[str, Any]) -> CarePlanViews:
    """The tables of one run's care-plan views (``views`` as stored; ``ruleset`` the run's own copy)."""
    cats = views["categories"]
    labels = {c["id"]: c["label"] for c in cats}
    mtm = {c["id"]: bool(c.get("more_than_medicine")) for c in cats}
    pops = ruleset.get("populations") or {}
    tables: list[Table] = []

    needs = Table(
        "needs",
        "Support needs and whether a referral or service followed",
        ["category", "more than medicine", "patients with the need", "met", "unmet", "% met"],
        note="A need is met when a referral or an action in the same category followed it for the same patient.",
    )
    for r in views["needs"]:
        needs.rows.append(
            [
                labels.get(r["category"], r["category"]),
                _mtm(mtm.get(r["category"], False)),
                Count(r["patients_with_need"]),
                Count(r["met"]),
                Count(r["unmet"]),
                Percent(r["met"], r["patients_with_need"]),
            ]
        )
    tables.append(needs)

    refs = Table(
        "referrals",
        "Referrals by type",
        ["type", "more than medicine", "patients referred", "referrals made"],
        note="'More than medicine' types are the handbook's community and non-clinical services (4.6).",
    )
    for r in views["referrals"]:
        refs.rows.append(
            [
                labels.get(r["category"], r["category"]),
                _mtm(mtm.get(r["category"], False)),
                Count(r["patients"]),
                Count(r["referrals"]),
            ]
        )
    tables.append(refs)

    quarters = [_quarter_label(ruleset, m) for m in views["mix"]]
    for key, title in (("goals", "Patients with a goal, by quarter"), ("actions", "Patients with an action, by quarter")):
        t = Table(f"mix-{key}", title, ["category", *quarters])
        for c in cats:
            t.rows.append([c["label"], *(Count(int(m[key].get(c["id"], 0))) for m in views["mix"])])
        tables.append(t)

    act = views.get("activation")
    if act:
        measured = pops.get(act["measured_population"], {}).get("label", act["measured_population"])
        improved = pops.get(act["improved_population"], {}).get("label", act["improved_population"])
        t = Table(
            "activation",
            "Activation change by referral",
            [
                "referral",
                "referred: measured",
                "referred: improved",
                "referred: % improved",
                "not referred: measured",
                "not referred: improved",
                "not referred: % improved",
            ],
            note=f"Measured: {measured}. Improved: {improved}. Of those measured, the patients referred in each "
            "category (the categories with any referral) against those who were not.",
        )
        for r in act["rows"]:
            if r["category"] != ANY_REFERRAL and not r["referred"]:
                continue
            t.rows.append(
                [
                    "Any referral" if r["category"] == ANY_REFERRAL else labels.get(r["category"], r["category"]),
                    Count(r["referred"]),
                    Count(r["referred_improved"]),
                    Percent(r["referred_improved"], r["referred"]),
                    Count(r["not_referred"]),
                    Count(r["not_referred_improved"]),
                    Percent(r["not_referred_improved"], r["not_referred"]),
                ]
            )
        tables.append(t)

    els = Table(
        "elements",
        "The conversation's elements",
        ["element", "plans recording it", "% of plans"],
        note="The elements of a personalised care and support planning conversation, as the indicator defines it; "
        "the patient-owned document is a plan shared with the patient.",
    )
    for el in views["elements"]:
        els.rows.append([el["label"], Count(el["plans"]), Percent(el["plans"], views["plans"])])
    tables.append(els)

    return CarePlanViews(
        within=(views["within"]["from"], views["within"]["to"]),
        entries=int(views["entries"]),
        patients=Count(views["patients"]),
        plans=Count(views["plans"]),
        plans_shared=Count(views["plans_shared"]),
        tables=tables,
        needs=[{"label": labels.get(r["category"], r["category"]), "met": r["met"], "unmet": r["unmet"]} for r in views["needs"]],
        mix=[{"label": q, "goals": m["goals"], "actions": m["actions"]} for q, m in zip(quarters, views["mix"], strict=True)],
        labels=labels,
    )
