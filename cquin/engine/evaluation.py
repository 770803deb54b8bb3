"""Evaluate a ruleset over a canonical dataset: components, bands, payments, milestones and a per-patient trace.

The heavy lifting is set-based SQL in DuckDB (see :mod:`cquin.engine.populations`);
this module turns counts into exact fractions, bands and Decimal pounds, and
leaves the per-patient decisions in a DuckDB table for the audit store to keep.

Long because it is the one place components, attainment levels, bands, money and milestones meet; the SQL is in populations.py and compile_rules.py.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

import duckdb

from cquin.dataset import CanonicalDataset
from cquin.dataset.duck import first_row, scalar
from cquin.engine.bands import HUNDRED, band_for, to_fraction
from cquin.engine.evidence import EvidenceGap, evidence_gaps
from cquin.engine.money import decimal_text, percent_text, to_penny
from cquin.engine.outcome import Basis, NextStep, build_basis
from cquin.engine.populations import PopulationCompiler, q
from cquin.engine.reasons import REASON_TYPE, Templates
from cquin.engine.recorded import RecordedDecision, in_force
from cquin.engine.rules import Cohort
from cquin.engine.ruleset import Ruleset
from cquin.engine.ruleset_common import provider_dates
from cquin.exceptions import UserError


@dataclass
class ComponentResult:
    """One component's outcome, exactly: counts, fraction, band and money."""

    id: str
    year: str
    name: str
    entity: str | None  # "patient", "staff", or None for attainment components
    numerator: int | None
    denominator: int | None
    fraction: Fraction | None  # numerator/denominator, None when not computable or not a ratio
    band: str  # the band or level reached, in words
    payment_fraction: Fraction
    share: Fraction  # of the year's value, 0..1
    available: Decimal  # value x share, to the penny
    payment: Decimal  # earned, to the penny
    note: str = ""
    next_band: dict[str, Any] | None = None
    next_step: NextStep | None = None  # the distance to the next paying band and its worth
    status: str = ""  # "" or "not started" (an as-of date before the component's year begins)

    @property
    def percent(self) -> str | None:
        if self.numerator is None or self.denominator is None:
            return None
        return percent_text(self.numerator, self.denominator)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "year": self.year,
            "name": self.name,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "percent": self.percent,
            "band": self.band,
            "payment_fraction": decimal_text(self.payment_fraction),
            "share": decimal_text(self.share),
            "available": f"{self.available:.2f}",
            "payment": f"{self.payment:.2f}",
            "note": self.note,
            **({"next_band": self.next_band} if self.next_band is not None else {}),
            **({"next_step": self.next_step.as_dict()} if self.next_step is not None else {}),
            **({"status": self.status} if self.status else {}),
        }


@dataclass
class MilestoneResult:
    id: str
    year: str
    due: dt.date
    description: str
    status: str  # met | missed | not yet due
    detail: str


@dataclass(frozen=True)
class Trace:
    """Every subject's decision for every component, and each cohort's members, as one evaluation left them.

    The relations stay in the evaluation's DuckDB connection (a million patients' decisions are not Python
    objects); this is the one place their names are known: the store, verification, the impact of a ruleset
    change and tests read them through these methods.
    """

    con: duckdb.DuckDBPyConnection
    templates: Templates  # the words of the reasons: ``reason`` is a (template number, values) struct

    def decisions_sql(self, component: str | None = None) -> str:
        """SQL for (component, entity, id, in_denominator, in_numerator, rule, reason), of one component or all.

        ``reason`` is a ``STRUCT(t, v)``: :meth:`sentence` puts it in words.
        """
        where = f" WHERE component = {q(component)}" if component is not None else ""
        return f"SELECT component, entity, id, in_denominator, in_numerator, rule, reason FROM decisions{where}"

    def cohort_members_sql(self, cohort: str | None = None) -> str:
        """SQL for (cohort, id, reason): each cohort's members and why, of one cohort or all."""
        where = f" WHERE cohort = {q(cohort)}" if cohort is not None else ""
        return f"SELECT cohort, id, reason FROM cohort_members{where}"

    def sentence(self, reason: dict[str, Any] | None) -> str | None:
        """A reason read from :meth:`decisions_sql` or :meth:`cohort_members_sql`, in words."""
        return None if reason is None else self.templates.render(reason["t"], reason["v"])

    def scored_assessments_sql(self) -> str:
        """SQL for the assessments as scored (instrument, value, low activation, result in words, ...)."""
        return f"SELECT * FROM {EVALUATION_PREFIX}scored"

    def members(self, component: str, group: str) -> set[str]:
        """Who is in a component's ``group``: "numerator" or "denominator"."""
        column = {"numerator": "in_numerator", "denominator": "in_denominator"}[group]
        rows = self.con.execute(f"SELECT id FROM ({self.decisions_sql(component)}) WHERE {column}").fetchall()
        return {r[0] for r in rows}

    def cohort(self, name: str) -> set[str]:
        return {r[0] for r in self.con.execute(f"SELECT id FROM ({self.cohort_members_sql(name)})").fetchall()}

    def digest(self) -> tuple[Any, ...] | None:
        """(rows, an order-independent hash of every decision; None when there are none): equal when two evaluations decided alike."""
        # Each reason by its words and values, not by the number its template happens to have in this evaluation.
        import pyarrow as pa

        words = pa.table({"t": pa.array(range(len(self.templates.texts)), pa.int32()), "words": self.templates.texts})
        self.con.register("trace_words", words)
        try:
            return first_row(
                self.con,
                f"""SELECT count(*), bit_xor(hash(component, id, in_denominator, in_numerator, rule, w.words, d.reason.v))
                    FROM ({self.decisions_sql()}) d LEFT JOIN trace_words w ON w.t = d.reason.t""",
            )
        finally:
            self.con.unregister("trace_words")


EVALUATION_PREFIX = "e_"  # the main evaluation's tables (milestones "as at" a date use their own prefixes)


@dataclass
class RunResult:
    """Everything one evaluation produced; the per-subject decisions are read through :attr:`trace`."""

    ruleset_id: str
    ruleset_version: str
    ruleset_sha256: str
    as_of: dt.date | None
    contract_values: dict[str, Decimal]
    components: list[ComponentResult]
    milestones: list[MilestoneResult]
    cohorts: dict[str, int]
    populations: dict[str, int]
    totals: dict[str, Decimal]
    available: dict[str, Decimal]
    override_notes: list[dict[str, Any]] = field(default_factory=list)
    carer_assessments: int = 0
    unmatched_codes: list[tuple[str, str, int]] = field(default_factory=list)
    # Components whose evidence is missing entirely (e.g. no staff list): every output shows these first.
    evidence_gaps: list[EvidenceGap] = field(default_factory=list)
    stated_contract_values: dict[str, Decimal | None] = field(default_factory=dict)  # None: not given
    year_status: dict[str, str] = field(default_factory=dict)  # period id -> "not started" when as-of is before it
    basis: Basis | None = None
    population_entities: dict[str, str] = field(default_factory=dict)  # population id -> "patient" | "staff"
    trace: Trace | None = None

    @property
    def contract_value_given(self) -> bool:
        return any(v is not None for v in self.stated_contract_values.values())

    def component(self, cid: str) -> ComponentResult:
        return next(c for c in self.components if c.id == cid)


def evaluate(
    ruleset: Ruleset,
    dataset: CanonicalDataset,
    *,
    contract_value: Decimal | None = None,
    contract_value_year2: Decimal | None = None,
    as_of: dt.date | None = None,
    recorded: Sequence[RecordedDecision] = (),
) -> RunResult:
    """Evaluate ``ruleset`` over ``dataset``; money is computed when a contract value is given (else £0 available).

    ``recorded`` holds the decisions recorded in the audit store (``cquin signoff``) that the ruleset's
    ``recorded_evidence`` names, e.g. the commissioner's acceptance of the plan.
    """
    con = dataset.con
    _load_code_lists(con, ruleset)
    years = ruleset.years()
    values: dict[str, Decimal] = {}
    stated: dict[str, Decimal | None] = {}
    for i, year in enumerate(years):
        v = contract_value_year2 if (i > 0 and contract_value_year2 is not None) else contract_value
        values[year] = v if v is not None else Decimal(0)
        stated[year] = v
    # A year whose period begins after the as-of date has not started: no cohort, no counts, no money yet.
    year_status = {y: "not started" for y in years if as_of is not None and as_of < ruleset.period(y)[0]}
    comp = PopulationCompiler(con, ruleset, as_of=as_of, prefix=EVALUATION_PREFIX)
    con.execute(
        "CREATE OR REPLACE TABLE decisions (component VARCHAR, entity VARCHAR, id VARCHAR, in_denominator BOOLEAN, "
        f"in_numerator BOOLEAN, rule VARCHAR, reason {REASON_TYPE})"
    )
    results = []
    zero = ruleset.zero_denominator
    for c in ruleset.components:
        indicator_value = values[c["year"]] * _dec(ruleset.weighting)
        share = to_fraction(c["share_percent"]) / HUNDRED
        available = to_penny(Fraction(indicator_value) * share)
        if c["year"] in year_status:
            begins = ruleset.period(c["year"])[0]
            results.append(
                ComponentResult(
                    c["id"],
                    c["year"],
                    c["name"],
                    None if "attainment" in c else ruleset.populations[c["denominator"]].entity,
                    None,
                    None,
                    None,
                    f"not started (the year begins {begins})",
                    Fraction(0),
                    share,
                    available,
                    Decimal("0.00"),
                    f"as of {as_of} this year has not begun: nothing is counted or earned yet",
                    status="not started",
                )
            )
            continue
        if "attainment" in c:
            level = _attainment(con, comp, ruleset, c, recorded, as_of)
            pays = to_fraction(level["pays_percent"]) / HUNDRED
            results.append(
                ComponentResult(
                    c["id"],
                    c["year"],
                    c["name"],
                    None,
                    None,
                    None,
                    None,
                    level["label"]
                    + (" (provisional: awaiting the commissioner's confirmation)" if level.get("_provisional") else ""),
                    pays,
                    share,
                    available,
                    to_penny(Fraction(indicator_value) * share * pays),
                    level.get("_why", ""),
                )
            )
            continue
        den_pop, num_pop = c["denominator"], c["numerator"]
        entity = ruleset.populations[den_pop].entity
        den_t, num_t = comp.population(den_pop), comp.population(num_pop)
        # The numerator is counted within the denominator, so it can never exceed it.
        con.execute(
            f"""INSERT INTO decisions SELECT {q(c["id"])}, {q(entity)}, d.id, d.inside, d.inside AND n.inside,
                  CASE WHEN d.inside THEN n.rule ELSE d.rule END,
                  CASE WHEN d.inside THEN n.reason ELSE d.reason END
                FROM {den_t} d JOIN {num_t} n USING (id)"""
        )
        num, den = first_row(
            con,
            f"SELECT count(*) FILTER (WHERE in_numerator), count(*) FILTER (WHERE in_denominator) FROM decisions WHERE component = {q(c['id'])}",
        )  # type: ignore[misc]
        bands = ruleset.bands(c)
        on_count = c.get("bands_on") == "numerator_count"
        fraction = Fraction(num, den) if den else None
        measured = Fraction(num) if on_count else (fraction * HUNDRED if fraction is not None else None)
        note = ""
        if measured is None:
            pays, band_text = to_fraction(zero["pays_percent"]) / HUNDRED, "not computable (denominator is zero)"
            note = (
                "denominator is zero: the percentage is not computable and the component pays " + decimal_text(pays * 100) + "%"
            )
            next_band = None
        else:
            band = band_for(bands, measured)
            if band is None:  # validated rulesets tile the range; keep the guard explicit
                raise UserError(f"component {c['id']}: no band contains {float(measured):g}")
            pays = band.pays
            unit = "" if on_count else "%"
            band_text = band.describe(unit) + (f" ({band.label})" if band.label else "")
            next_band = _next_band(bands, band, num, den, on_count)
        payment = to_penny(Fraction(indicator_value) * share * pays)
        step = None
        if next_band is not None:
            target = to_fraction(next_band["pays"])
            worth = to_penny(Fraction(indicator_value) * share * target) - payment
            step = NextStep(
                c["id"],
                c["year"],
                entity,
                next_band["band"],
                target,
                next_band["more_needed"],
                worth if stated[c["year"]] is not None else None,
                ruleset.populations[num_pop].label,
                num_pop,
                den_pop,
            )
        results.append(
            ComponentResult(
                c["id"],
                c["year"],
                c["name"],
                entity,
                num,
                den,
                fraction,
                band_text,
                pays,
                share,
                available,
                payment,
                note,
                next_band,
                step,
            )
        )
    cohorts = {}
    pops = {}
    con.execute(f"CREATE OR REPLACE TABLE cohort_members (cohort VARCHAR, id VARCHAR, reason {REASON_TYPE})")
    for pid, pop in ruleset.populations.items():
        pops[pid] = comp.count_inside(pid)
        if isinstance(pop.rule, Cohort):
            name = pop.rule.overrides
            if name in year_status:  # the cohort of a year not yet begun is not drawn
                continue
            cohorts[name] = pops[pid]
            con.execute(f"INSERT INTO cohort_members SELECT {q(name)}, id, reason FROM {comp.population(pid)} WHERE inside")
    for c in ruleset.components:  # a year not begun counts no one for its components
        if c["year"] in year_status:
            for key in ("denominator", "numerator"):
                pops.pop(c.get(key, ""), None)
    for pid, pop in ruleset.populations.items():
        if isinstance(pop.rule, Cohort) and pop.rule.overrides in year_status:
            pops.pop(pid, None)
    totals = {y: sum((r.payment for r in results if r.year == y), Decimal("0.00")) for y in years}
    available_totals = {y: sum((r.available for r in results if r.year == y), Decimal("0.00")) for y in years}
    milestones = _milestones(con, ruleset, as_of, comp)
    # An include the ruleset refuses (not served in Year 1; a Year 2 include from outside the Year 1 cohort) is a
    # rejected row of the overrides file: the ledger, and so the data quality figures and the store, say so.
    for n in comp.override_notes:
        if n["kind"] == "rejected":
            dataset.ledger.reject_counted(n["file"], n["line"], "patient_id", n["patient_id"], n["message"])
    carers = int(scalar(con, f"SELECT count(*) FROM {EVALUATION_PREFIX}scored WHERE respondent = 'carer'"))  # type: ignore[index]
    unmatched = _unmatched(con, comp)
    basis = build_basis(
        weighting=ruleset.weighting,
        years=[(y, ruleset.period_label(y)) for y in years],
        contract_values=stated,
        available=available_totals,
        earned=totals,
        earned_share={y: sum((r.share * r.payment_fraction for r in results if r.year == y), Fraction(0)) for y in years},
        status=year_status,
    )
    return RunResult(
        ruleset.id,
        ruleset.version,
        ruleset.sha256,
        as_of,
        values,
        results,
        milestones,
        cohorts,
        pops,
        totals,
        available_totals,
        comp.override_notes,
        carers,
        [(s, c, int(n)) for s, c, n in unmatched],
        evidence_gaps(ruleset.doc, dataset, results, available_totals),
        stated,
        year_status,
        basis,
        {pid: pop.entity for pid, pop in ruleset.populations.items()},
        Trace(con, comp.templates),
    )


def _unmatched(con: Any, comp: PopulationCompiler) -> list[tuple[str, str, int]]:
    return con.execute(
        f"""SELECT code_system, code, count(*) FROM {comp.t("conditions")} c
            WHERE NOT EXISTS (SELECT 1 FROM {comp.ltc_matches()} m WHERE m._file = c._file AND m._line = c._line)
            GROUP BY ALL ORDER BY 3 DESC, 1, 2"""
    ).fetchall()


def unmatched_codes(ruleset: Ruleset, dataset: CanonicalDataset) -> list[tuple[str, str, int]]:
    """Condition codes in the data that no LTC code list of ``ruleset`` knows, with how often each occurs."""
    _load_code_lists(dataset.con, ruleset)
    comp = PopulationCompiler(dataset.con, ruleset, as_of=None, prefix="u_", reasons=False)
    return [(s, c, int(n)) for s, c, n in _unmatched(dataset.con, comp)]


def _dec(f: Fraction) -> Decimal:
    return Decimal(f.numerator) / Decimal(f.denominator)


def _load_code_lists(con: Any, ruleset: Ruleset) -> None:
    """The LTC code lists as a table (category, list, system, normalised code), built through Arrow in one step."""
    import pyarrow as pa

    cols: dict[str, list[str]] = {"category": [], "list_id": [], "system": [], "code": []}
    for cat in ruleset.ltc_categories:
        for ref in cat["code_lists"]:
            cl = ruleset.code_lists[ref]
            n = len(cl.codes)
            cols["category"] += [cat["id"]] * n
            cols["list_id"] += [ref] * n
            cols["system"] += [cl.system] * n
            cols["code"] += list(cl.codes)
    con.register("arrow_codes", pa.table({k: pa.array(v, pa.string()) for k, v in cols.items()}))
    con.execute("CREATE OR REPLACE TABLE codelist AS SELECT * FROM arrow_codes")
    con.unregister("arrow_codes")


def _on_or_before(day: dt.date | None, limit: dt.date) -> bool:
    return day is not None and day <= limit


def _attainment(
    con: Any,
    comp: PopulationCompiler,
    ruleset: Ruleset,
    c: dict[str, Any],
    recorded: Sequence[RecordedDecision],
    as_of: dt.date | None,
) -> dict[str, Any]:
    names = provider_dates()  # the provider table's date columns, from its schema
    row = first_row(con, f"SELECT {', '.join(names)} FROM {comp.t('provider')} LIMIT 1")
    dates: dict[str, dt.date | None] = {name: row[i] if row else None for i, name in enumerate(names)}
    declared = ruleset.doc.get("recorded_evidence") or {}
    used = dict.fromkeys(k for level in c["attainment"] for k in level["requires"] if k in declared)
    states = {k: in_force(declared[k], k, recorded, as_of) for k in used}

    def when(key: str, due: dt.date) -> dt.date | None:
        return states[key].date(due) if key in states else dates.get(key)

    for level in c["attainment"]:
        ok = all(_on_or_before(when(k, ruleset.date(ref)), ruleset.date(ref)) for k, ref in level["requires"].items())
        if ok:
            shown = ", ".join(f"{k} {v}" for k, v in dates.items() if v) or "no provider dates recorded"
            needed = [states[k] for k in level["requires"] if k in states]
            # What the recorded evidence said, for every level: a refusal explains a lower level too.
            shown = "; ".join([shown] + [s.describe() for s in states.values()])
            provisional = any(s.provisional for s in needed)
            return {**level, "_why": shown, "_provisional": provisional}
    raise UserError(f"component {c['id']}: no attainment level applies")  # validation requires a catch-all level


def _next_band(bands: list[Any], band: Any, num: int, den: int, on_count: bool) -> dict[str, Any] | None:
    """How many more numerator members would reach the next paying band, exactly (None when at the top)."""
    higher = sorted((b for b in bands if b.pays > band.pays), key=lambda b: (b.lower, not b.lower_inclusive))
    if not higher:
        return None
    target = higher[0]
    # The smallest numerator n with n (or n/den as a percentage) inside the target's lower edge.
    edge = target.lower if on_count else target.lower * den / HUNDRED
    need = math.ceil(edge) if target.lower_inclusive else math.floor(edge) + 1
    more = max(need - num, 0)
    reachable = on_count or num + more <= den
    unit = "" if on_count else "%"
    return {"band": target.describe(unit), "pays": decimal_text(target.pays), "more_needed": more if reachable else None}


def _milestones(con: Any, ruleset: Ruleset, as_of: dt.date | None, base: PopulationCompiler) -> list[MilestoneResult]:
    out = []
    compilers: dict[dt.date, PopulationCompiler] = {}
    latest: list[dt.date | None] = []  # the latest record date, once it is needed
    for ms in ruleset.doc.get("milestones") or []:
        due = ruleset.date(ms["due"])
        if as_of is not None and as_of < due:
            cut = as_of
        else:
            cut = due
        check = ms["check"]
        if cut not in compilers:  # milestones due on the same day share one evaluation
            if cut == as_of or (as_of is None and _nothing_dated_after(base, cut, latest)):
                compilers[cut] = base  # what was known at the cut is what the main evaluation counted: reuse it
            else:
                compilers[cut] = PopulationCompiler(
                    con, ruleset, as_of=cut, prefix=f"ms{len(compilers)}_", base=base, reasons=False
                )
        comp = compilers[cut]
        if "provider_date" in check:
            row = first_row(con, f"SELECT {check['provider_date']} FROM {comp.t('provider')} LIMIT 1")
            when = row[0] if row else None
            met = when is not None and when <= due
            detail = f"{check['provider_date']} {when}" if when else f"no {check['provider_date']} recorded by {cut}"
        else:
            n = comp.count_inside(check["population"])
            label = ruleset.populations[check["population"]].label
            detail = f"{label}: {n}"
            if "compared_to" in check:
                d = comp.count_inside(check["compared_to"])
                other = ruleset.populations[check["compared_to"]].label
                pct = percent_text(n, d)
                detail += f" of {other}: {d}" + (f" ({pct}%)" if pct else "")
            met = n > 0
        if as_of is not None and as_of < due:
            # Before its due date a milestone is not decided: show the progress so far, never "met" or "missed".
            status, shown = "not yet due", f"progress as at {cut} (due {due}): {detail}"
        else:
            status, shown = ("met" if met else "missed"), f"as at {cut}: {detail}"
        out.append(MilestoneResult(ms["id"], ms["year"], due, ms["description"], status, shown))
    return out


def _nothing_dated_after(base: PopulationCompiler, cut: dt.date, latest: list[dt.date | None]) -> bool:
    if not latest:
        latest.append(base.latest_dated())
    return latest[0] is None or latest[0] <= cut


def membership(run: RunResult, dataset: CanonicalDataset, population: str, subject: str) -> tuple[bool, str]:
    """Whether ``subject`` is in ``population`` after the evaluation ``run``, and why (for tests and explanations)."""
    try:
        row = first_row(dataset.con, f"SELECT inside, reason.t, reason.v FROM e_pop_{population} WHERE id = ?", [subject])
    except duckdb.Error:  # the population table is only there if the run built it
        return False, f"population {population!r} was not evaluated"
    if row is None:
        return False, f"{subject} is not among the accepted records"
    assert run.trace is not None
    return bool(row[0]), str(run.trace.templates.render(row[1], row[2]))
