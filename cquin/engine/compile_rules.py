"""One compile function per rule kind: each turns a typed rule node into a table of who it holds for, and why.

Registered with ``@compile_rule.register(NodeClass)`` (after ehrQL's ``get_sql.register``), each function receives its
node, the :class:`~cquin.engine.populations.PopulationCompiler` that owns the evaluation's connection and
tables, and the :class:`Scope` it is compiled in; it returns the name of a table ``(id, inside, rule,
reason)`` over every patient (or member of staff): whether the node holds, the population whose test
decided, and the fact that decided it in words a commissioner can check against the source records.
Composite nodes combine their children's tables; nothing loops over patients in Python.

A new rule kind's compile function ends with ``return c.leaf(at, sql)`` where ``sql`` selects
``(id, inside, reason)`` for every id of ``at.universe`` (see docs/architecture.md, "Add a rule kind").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import singledispatch
from typing import TYPE_CHECKING, Any, Protocol

from cquin.dataset.duck import sql_str as q
from cquin.engine.reasons import NO_REASON, Safe, Templates, Text, Value, one_of
from cquin.engine.rules import (
    AllOf,
    AnyOf,
    CaresForCohort,
    Cohort,
    Conversation,
    Improved,
    LowActivation,
    Ltc,
    Measured,
    Not,
    PopulationRef,
    Rule,
    Served,
    Trained,
)
from cquin.engine.ruleset_common import resolve_date

if TYPE_CHECKING:
    import duckdb

    from cquin.engine.ruleset import Ruleset


class PopulationCompiler(Protocol):
    """What a compile function uses of the compiler that owns the evaluation's tables
    (:class:`cquin.engine.populations.PopulationCompiler`), so this module need not import it."""

    con: duckdb.DuckDBPyConnection
    r: Ruleset
    reasons: bool
    templates: Templates
    override_notes: list[dict[str, Any]]

    def t(self, name: str) -> str: ...
    def new_name(self, prefix: str) -> str: ...
    def population(self, pid: str) -> str: ...
    def leaf(self, at: Scope, sql: str, *, keeps_rule: bool = False) -> str: ...
    def table(self, sql: str) -> str: ...
    def scratch(self, sql: str) -> str: ...
    def combine(self, children: list[str], *, all_of: bool) -> str: ...
    def ltc_matches(self) -> str: ...
    def measurement(self, mid: str) -> str: ...
    def files(self, table: str) -> tuple[str, ...]: ...
    def because(self, words: str, **values: Value) -> str: ...


@dataclass(frozen=True)
class Scope:
    """Where a node is compiled: the table of every id it answers for, their entity, and the population it is in."""

    universe: str
    entity: str
    owner: str  # the population whose rule this node is part of: the ``rule`` a leaf's answer is charged to


@singledispatch
def compile_rule(node: Rule, c: PopulationCompiler, at: Scope) -> str:
    """The table (id, inside, rule, reason) for ``node``; one function is registered per rule kind."""
    raise TypeError(f"no compile function is registered for the rule kind {node.kind!r} ({type(node).__name__})")


def _where(c: PopulationCompiler, alias: str, source: str) -> dict[str, Value]:
    """The ``file`` and ``line`` values of a reason's "(conditions.csv line 3)", from the row ``alias`` of ``source``."""
    p = f"{alias}." if alias else ""
    return _located(c, source, f"{p}_file", f"{p}_line")


def _located(c: PopulationCompiler, source: str, file_sql: str, line_sql: str) -> dict[str, Value]:
    """The ``file`` and ``line`` values of a reason, from SQL for a row of ``source``'s file and line."""
    return {"file": one_of(file_sql, c.files(source), from_records=True), "line": Safe(f"CAST({line_sql} AS VARCHAR)")}


# --------------------------------------------------------------------------- settled


@singledispatch
def settled_by(node: Rule, r: Ruleset) -> dt.date | None:
    """The day from which no record dated later can change who ``node`` holds (None: not known, never assumed).

    An evaluation "as at" a cut on or after that day holds the same subjects as one with every record, so a
    milestone's count can reuse the main evaluation's table for the node (:meth:`PopulationCompiler.node`).
    A rule kind that does not register one is always computed afresh.
    """
    return None


def _latest(days: list[dt.date | None]) -> dt.date | None:
    return None if any(d is None for d in days) else max((d for d in days if d is not None), default=dt.date.min)


@settled_by.register(AllOf)
@settled_by.register(AnyOf)
def _settled_combination(node: AllOf | AnyOf, r: Ruleset) -> dt.date | None:
    return _latest([settled_by(child, r) for child in node.rules])


@settled_by.register(Not)
def _settled_not(node: Not, r: Ruleset) -> dt.date | None:
    return settled_by(node.rule, r)


@settled_by.register(PopulationRef)
def _settled_ref(node: PopulationRef, r: Ruleset) -> dt.date | None:
    return settled_by(r.populations[node.population].rule, r)


@settled_by.register(Served)
def _settled_served(node: Served, r: Ruleset) -> dt.date | None:
    # An episode starting after the cut cannot overlap a period that ended by it; one ending after it is
    # "ongoing" as at the cut, and overlaps that period just as it does.
    return r.period(node.during)[1] if node.during is not None else r.date(str(node.on))


@settled_by.register(Ltc)
def _settled_ltc(node: Ltc, r: Ruleset) -> dt.date | None:
    return r.date(node.recorded_by)


def _measurement_settled(mid: str, r: Ruleset) -> dt.date:
    """The end of the period a measurement's assessments are dated in (and of the one it must match)."""
    m = r.measurements[mid]
    end = r.period(m.within)[1]
    return max(end, _measurement_settled(m.same_instrument_as, r)) if m.same_instrument_as else end


@settled_by.register(Measured)
@settled_by.register(LowActivation)
def _settled_measured(node: Measured | LowActivation, r: Ruleset) -> dt.date | None:
    return _measurement_settled(node.measurement, r)


@settled_by.register(Improved)
def _settled_improved(node: Improved, r: Ruleset) -> dt.date | None:
    return max(_measurement_settled(node.start, r), _measurement_settled(node.end, r))


@settled_by.register(Conversation)
def _settled_conversation(node: Conversation, r: Ruleset) -> dt.date | None:
    return r.date(node.end)


@settled_by.register(Trained)
def _settled_trained(node: Trained, r: Ruleset) -> dt.date | None:
    return r.date(node.by)


@settled_by.register(CaresForCohort)
def _settled_cares(node: CaresForCohort, r: Ruleset) -> dt.date | None:
    return dt.date.min  # the staff list is read whole at any date


# --------------------------------------------------------------------------- combinations


@compile_rule.register(PopulationRef)
def _population(node: PopulationRef, c: PopulationCompiler, at: Scope) -> str:
    return c.population(node.population)


@compile_rule.register(AllOf)
def _all_of(node: AllOf, c: PopulationCompiler, at: Scope) -> str:
    return c.combine([compile_rule(child, c, at) for child in node.rules], all_of=True)


@compile_rule.register(AnyOf)
def _any_of(node: AnyOf, c: PopulationCompiler, at: Scope) -> str:
    return c.combine([compile_rule(child, c, at) for child in node.rules], all_of=False)


@compile_rule.register(Not)
def _not(node: Not, c: PopulationCompiler, at: Scope) -> str:
    child = compile_rule(node.rule, c, at)
    return c.table(f"SELECT id, NOT inside AS inside, rule, reason FROM {child}")


# --------------------------------------------------------------------------- patients


def ltc_categories(node: Ltc, doc: dict[str, Any]) -> list[str]:
    """The LTC categories an ``ltc`` test counts, in the ruleset's order (all of them unless it names some)."""
    return [str(cat["id"]) for cat in doc["ltc"]["categories"] if node.categories is None or cat["id"] in node.categories]


def ltc_window_sql(node: Ltc, doc: dict[str, Any]) -> str:
    """SQL over LTC matches (category, recorded_on): the match is in its category's time window for ``node``.

    Each category's window: recorded on or before ``recorded_by``, and within its look-back if it has one
    (e.g. cancer: the 5 years up to the end of Year 1).
    """
    by = resolve_date(doc, node.recorded_by)
    wanted = ltc_categories(node, doc)
    windows = []
    for cat in doc["ltc"]["categories"]:
        if cat["id"] not in wanted:
            continue
        years = cat.get("lookback_years")
        cond = f"category = {q(cat['id'])} AND recorded_on <= DATE '{by.isoformat()}'"
        if years:
            cond += f" AND recorded_on >= DATE '{years_before(by, years).isoformat()}'"
        windows.append(f"({cond})")
    return " OR ".join(windows) or "false"


def years_before(day: dt.date, years: int) -> dt.date:
    """The first day of the ``years``-year window ending on ``day`` (e.g. 2018-03-31, 5 -> 2013-04-01)."""
    nxt = day + dt.timedelta(days=1)
    try:
        return nxt.replace(year=nxt.year - years)
    except ValueError:  # 29 February
        return nxt.replace(year=nxt.year - years, day=28)


@compile_rule.register(Served)
def _served(node: Served, c: PopulationCompiler, at: Scope) -> str:
    if node.during is not None:
        start, end = c.r.period(node.during)
        label = f"{node.during} ({start} to {end})"
    else:
        start = end = c.r.date(str(node.on))
        label = f"on {start}"
    s, e = f"DATE '{start.isoformat()}'", f"DATE '{end.isoformat()}'"
    overlap = f"(served_from <= {e} AND (served_to IS NULL OR served_to >= {s}))"
    under_care = c.because(
        "under care {label}: episode from {start} to {end} ({file} line {line})",
        label=label,
        start=Safe("CAST(ep.hit.f AS VARCHAR)"),
        end=Safe("coalesce(CAST(ep.hit.t AS VARCHAR), 'ongoing')"),
        **_located(c, c.t("patients"), "ep.hit.file", "ep.hit.line"),
    )
    not_under_care = c.because(
        "not under care {label} ({n} episode(s) from {start} to {end})",
        label=label,
        n=Safe("CAST(ep.n AS VARCHAR)"),
        start=Safe("CAST(ep.first_from AS VARCHAR)"),
        end=Safe("CASE WHEN ep.last_to = DATE '9999-12-31' THEN 'ongoing' ELSE CAST(ep.last_to AS VARCHAR) END"),
    )
    return c.leaf(
        at,
        f"""
        WITH ep AS (
          SELECT patient_id AS id, bool_or({overlap}) AS inside,
            arg_min(struct_pack(f := served_from, t := served_to, file := _file, line := _line),
                    struct_pack(o := NOT {overlap}, f := served_from, file := _file, line := _line)) AS hit,
            count(*) AS n, min(served_from) AS first_from, max(coalesce(served_to, DATE '9999-12-31')) AS last_to
          FROM {c.t("patients")} GROUP BY patient_id)
        SELECT u.id, coalesce(ep.inside, false) AS inside,
          CASE WHEN ep.inside THEN {under_care}
               WHEN ep.id IS NULL THEN {c.because("no episode of care known")}
               ELSE {not_under_care} END AS reason
        FROM {at.universe} u LEFT JOIN ep USING (id)""",
    )


@compile_rule.register(Ltc)
def _ltc(node: Ltc, c: PopulationCompiler, at: Scope) -> str:
    by = c.r.date(node.recorded_by)
    wanted = ltc_categories(node, c.r.doc)
    ok = ltc_window_sql(node, c.r.doc)
    wanted_sql = ", ".join(q(w) for w in wanted)
    m = c.ltc_matches()
    if not c.reasons:  # who is in, without reading the facts back
        return c.leaf(
            at,
            f"""
        WITH placed AS (SELECT patient_id, ({ok}) AS ok FROM {m} WHERE category IN ({wanted_sql})),
        hits AS (SELECT patient_id AS id, bool_or(ok) AS inside FROM placed GROUP BY patient_id)
        SELECT u.id, coalesce(h.inside, false) AS inside, {NO_REASON} AS reason FROM {at.universe} u LEFT JOIN hits h USING (id)""",
        )
    cat_rank = " ".join(f"WHEN {q(cat)} THEN {i}" for i, cat in enumerate(wanted))
    # Each match gets one 128-bit position (date, source file, line, category): the patient's first match
    # in its window and latest match are the minimum and maximum position, so ties are broken by where the
    # record is (a deterministic trace) and every aggregate has a fixed-size state, which DuckDB can spill
    # to disk at scale.  The facts are then read back by position: rows at one position differ at most in
    # the code list that matched, so they carry the same fact.
    pos = (
        "((CAST(recorded_on - DATE '1800-01-01' AS HUGEINT) << 80) + (CAST(f.rank AS HUGEINT) << 64)"
        f" + (CAST(_line AS HUGEINT) << 8) + CASE category {cat_rank} END)"
    )
    # The code systems the ruleset's code lists are in, and its direct recording's: the words of the reasons.
    systems = [
        *sorted({str(cl["system"]) for cl in (c.r.doc.get("code_lists") or {}).values()}),
        c.r.direct_recording_code_system,
    ]
    fact = {
        "system": one_of("f.code_system", systems),
        "code": Text("f.code"),
        "category": one_of("f.category", wanted),
        "recorded": Safe("CAST(f.recorded_on AS VARCHAR)"),
    }
    first_fact = "{system} {code} ({category}) recorded {recorded} ({file} line {line})"
    where = _where(c, "f", m)
    one_category = c.because(first_fact, **fact, **where)
    more_categories = c.because(
        first_fact + " (+{more} more LTC categories)", **fact, **where, more=Safe("CAST(h.n_categories - 1 AS VARCHAR)")
    )
    latest = c.because(
        "no LTC code in its time window by {by} (latest LTC code: {system} {code} ({category}) recorded {recorded})",
        by=by.isoformat(),
        **fact,
    )
    nothing = c.because("no condition in the LTC categories recorded by {by}", by=by.isoformat())
    # Built in steps, each a table: at scale every step then lives on disk rather than being held in
    # memory as a shared intermediate result.
    placed = c.scratch(
        f"""SELECT m.patient_id, m.category, ({ok}) AS ok, {pos} AS pos, m.code_system, m.code, m.recorded_on, m._file, m._line
            FROM {m} m JOIN (SELECT _file, row_number() OVER (ORDER BY _file) AS rank FROM (SELECT DISTINCT _file FROM {m})) f
              USING (_file)
            WHERE category IN ({wanted_sql})"""
    )
    hits = c.scratch(
        f"""SELECT patient_id AS id, bool_or(ok) AS inside, min(first) AS first, max(latest) AS latest,
                   count(*) FILTER (WHERE ok) AS n_categories
            FROM (SELECT patient_id, bool_or(ok) AS ok, min(pos) FILTER (WHERE ok) AS first, max(pos) AS latest
                  FROM {placed} GROUP BY patient_id, category)
            GROUP BY patient_id"""
    )
    # The one fact each patient's reason needs: the first match in the window when inside, else the latest.
    facts = c.scratch(
        f"""SELECT DISTINCT patient_id, pos, code_system, code, category, recorded_on, _file, _line FROM {placed} p
            SEMI JOIN (SELECT id, CASE WHEN inside THEN first ELSE latest END AS pos FROM {hits}) w
              ON w.id = p.patient_id AND w.pos = p.pos"""
    )
    described = c.scratch(
        f"""SELECT h.id, h.inside,
              CASE WHEN h.inside AND h.n_categories > 1 THEN {more_categories}
                   WHEN h.inside THEN {one_category}
                   ELSE {latest} END AS reason
            FROM {hits} h JOIN {facts} f ON f.patient_id = h.id AND f.pos = CASE WHEN h.inside THEN h.first ELSE h.latest END"""
    )
    return c.leaf(
        at,
        f"""
        SELECT u.id, coalesce(d.inside, false) AS inside,
          coalesce(d.reason, {nothing}) AS reason
        FROM {at.universe} u LEFT JOIN {described} d USING (id)""",
    )


@compile_rule.register(Measured)
def _measured(node: Measured, c: PopulationCompiler, at: Scope) -> str:
    mid = node.measurement
    m = c.r.measurements[mid]
    start, end = c.r.period(m.within)
    t = c.measurement(mid)
    label = m.label.lower()
    # Why not: carer-only, other instrument, or nothing in the period.
    within = f"s.assessed_on BETWEEN DATE '{start}' AND DATE '{end}'"
    same = m.same_instrument_as
    other_instr, other_join = "", ""
    if same:
        o = c.measurement(same)
        other_join = f"LEFT JOIN {o} o ON o.id = u.id"
        instrument = one_of(
            f"coalesce(o.instrument, '(no {same})')",
            [*c.r.instruments["preference"], f"(no {same})"],
        )
        another = c.because(
            "no {label}: the {respondent}'s assessments in {within} were on another instrument than the {instrument} {same}",
            label=label,
            respondent=m.respondent,
            within=m.within,
            instrument=instrument,
            same=same.replace("_", " "),
        )
        other_instr = f"""WHEN coalesce(seen.own, false) THEN {another}
                          WHEN o.id IS NULL THEN {c.because("no {same} to compare with", same=same.replace("_", " "))} """
    carer = "carer" if m.respondent == "patient" else "patient"
    found = c.because(
        "{measurement}: {result} on {on} ({file} line {line})",
        measurement=mid.replace("_", " "),
        result=Safe("t.result"),
        on=Safe("CAST(t.assessed_on AS VARCHAR)"),
        **_where(c, "t", c.t("assessments_raw")),
    )
    only_other = c.because(
        "no {label}: only {carer} assessments in {within} ({start} to {end}); a {carer}'s answers are not the {respondent}'s own",
        label=label,
        carer=carer,
        within=m.within,
        start=str(start),
        end=str(end),
        respondent=m.respondent,
    )
    none = c.because(
        "no {respondent} assessment dated in {within} ({start} to {end})",
        respondent=m.respondent,
        within=m.within,
        start=str(start),
        end=str(end),
    )
    return c.leaf(
        at,
        f"""
        WITH seen AS (
          -- Whose assessments in the period there are, in one pass (not a lookup per patient).
          SELECT s.patient_id AS id, bool_or(s.respondent = {q(m.respondent)}) AS own, bool_or(s.respondent = {q(carer)}) AS other
          FROM {c.t("scored")} s WHERE {within} AND s.respondent IN ({q(m.respondent)}, {q(carer)}) GROUP BY s.patient_id)
        SELECT u.id, t.id IS NOT NULL AS inside,
          CASE WHEN t.id IS NOT NULL THEN {found}
               {other_instr}
               WHEN coalesce(seen.other, false) THEN {only_other}
               ELSE {none} END AS reason
        FROM {at.universe} u LEFT JOIN {t} t ON t.id = u.id LEFT JOIN seen ON seen.id = u.id {other_join}""",
    )


@compile_rule.register(LowActivation)
def _low_activation(node: LowActivation, c: PopulationCompiler, at: Scope) -> str:
    mid = node.measurement
    t = c.measurement(mid)
    name = mid.replace("_", " ")
    return c.leaf(
        at,
        f"""
        SELECT u.id, coalesce(t.low, false) AS inside,
          CASE WHEN t.id IS NULL THEN {c.because("no {m}", m=name)}
               WHEN t.low THEN {c.because("{m} {result} is low activation", m=name, result=Safe("t.result"))}
               ELSE {c.because("{m} {result} is not low activation", m=name, result=Safe("t.result"))} END AS reason
        FROM {at.universe} u LEFT JOIN {t} t USING (id)""",
    )


@compile_rule.register(Improved)
def _improved(node: Improved, c: PopulationCompiler, at: Scope) -> str:
    a, b = c.measurement(node.start), c.measurement(node.end)
    fa, fb = node.start.replace("_", " "), node.end.replace("_", " ")
    results: dict[str, Value] = {"fa": fa, "fb": fb, "ra": Safe("a.result"), "rb": Safe("b.result")}
    return c.leaf(
        at,
        f"""
        SELECT u.id, coalesce(b.value > a.value AND a.instrument = b.instrument, false) AS inside,
          CASE WHEN a.id IS NULL THEN {c.because("no {fa}", fa=fa)}
               WHEN b.id IS NULL THEN {c.because("no {fb}", fb=fb)}
               WHEN b.value > a.value THEN {c.because("{fb} {rb} is higher than {fa} {ra}", **results)}
               ELSE {c.because("{fb} {rb} is not higher than {fa} {ra}", **results)} END AS reason
        FROM {at.universe} u LEFT JOIN {a} a USING (id) LEFT JOIN {b} b USING (id)""",
    )


@compile_rule.register(Conversation)
def _conversation(node: Conversation, c: PopulationCompiler, at: Scope) -> str:
    s, e = c.r.date(node.start), c.r.date(node.end)
    held = "conversation held {on} ({file} line {line})"
    facts: dict[str, Value] = {
        "on": Safe("CAST(c.first_on AS VARCHAR)"),
        **_located(c, c.t("conversations"), "c.first.f", "c.first.l"),
    }
    return c.leaf(
        at,
        f"""
        WITH conv AS (
          SELECT patient_id AS id, count(*) AS n, min(held_on) AS first_on,
            arg_min(struct_pack(f := _file, l := _line), struct_pack(d := held_on, f := _file, l := _line)) AS first

          FROM {c.t("conversations")} WHERE held_on BETWEEN DATE '{s}' AND DATE '{e}' GROUP BY patient_id)
        SELECT u.id, c.id IS NOT NULL AS inside,
          CASE WHEN c.id IS NOT NULL AND c.n > 1
                 THEN {c.because(held + " ({n} conversations in all)", **facts, n=Safe("CAST(c.n AS VARCHAR)"))}
               WHEN c.id IS NOT NULL THEN {c.because(held, **facts)}
               ELSE {c.because("no care and support planning conversation recorded {s} to {e}", s=str(s), e=str(e))} END AS reason
        FROM {at.universe} u LEFT JOIN conv c USING (id)""",
    )


@compile_rule.register(Cohort)
def _cohort(node: Cohort, c: PopulationCompiler, at: Scope) -> str:
    owner = at.owner
    members = compile_rule(node.members, c, at)
    cohort = node.overrides
    requires = compile_rule(node.include_requires, c, at) if node.include_requires is not None else None
    ov = c.t(c.new_name(f"ov_{cohort}_"))
    req_join = f"LEFT JOIN {requires} rq ON rq.id = o.patient_id" if requires else ""
    req_ok = "rq.inside" if requires else "true"
    refused_prefix = ""
    if isinstance(node.include_requires, PopulationRef):
        refused_prefix = "not in " + c.r.populations[node.include_requires.population].label + ": "
    req_reason = "rq.reason" if requires else NO_REASON
    c.con.execute(
        f"""CREATE OR REPLACE TABLE {ov} AS
        SELECT o.patient_id AS id, o.action, o.reason AS why, o.agreed_on, o._file, o._line,
               m.inside AS member, {req_ok} AS allowed, {req_reason} AS refused_because
        FROM {c.t("overrides")} o JOIN {members} m ON m.id = o.patient_id {req_join}
        WHERE o.cohort = {q(cohort)}
        -- One override per patient (the load rejects repeats and conflicts), so no patient is counted twice.
        QUALIFY row_number() OVER (PARTITION BY o.patient_id ORDER BY o.agreed_on NULLS FIRST, o._file, o._line) = 1"""
    )
    # Report what the overrides did: refused includes are rejected rows; no-op excludes are noted.
    for row in c.con.execute(
        f"""SELECT id, action, why, _file, _line, member, allowed, refused_because FROM {ov}
            WHERE (action = 'include' AND (NOT allowed OR member)) OR (action = 'exclude' AND NOT member)
            ORDER BY _file, _line"""
    ).fetchall():
        pid, action, why, file, line, member, allowed, refused = row
        if action == "include" and not allowed:
            because = refused_prefix + (c.templates.render(refused["t"], refused["v"]) or "") if refused else ""
            kind, text = "rejected", f"include of {pid} in the {cohort} cohort refused: {because}"
        elif action == "include":
            kind, text = "no effect", f"include of {pid} in the {cohort} cohort changes nothing: already a member"
        else:
            kind, text = "no effect", f"exclude of {pid} from the {cohort} cohort changes nothing: not a member"
        c.override_notes.append({"file": file, "line": line, "patient_id": pid, "kind": kind, "message": text, "reason": why})
    override: dict[str, Value] = {"why": Text("o.why"), **_where(c, "o", c.t("overrides"))}
    agreed: dict[str, Value] = {"on": Safe("CAST(o.agreed_on AS VARCHAR)")}

    def by_override(done: str) -> str:
        said = f"{done} by agreed override: {{why}}"
        return f"""CASE WHEN o.agreed_on IS NOT NULL THEN {c.because(said + ", agreed {on} ({file} line {line})", **override, **agreed)}
                        ELSE {c.because(said + " ({file} line {line})", **override)} END"""

    # A cohort keeps the rule that decided each member: its own where an override changed the answer.
    return c.leaf(
        at,
        f"""
        SELECT m.id,
          CASE WHEN (o.action = 'exclude' AND m.inside) OR (o.action = 'include' AND o.allowed AND NOT m.inside)
               THEN {q(owner)} ELSE m.rule END AS rule,
          CASE WHEN o.action = 'exclude' THEN false WHEN o.action = 'include' AND o.allowed THEN true ELSE m.inside END AS inside,
          CASE WHEN o.action = 'exclude' AND m.inside
                 THEN {by_override("excluded")}
               WHEN o.action = 'include' AND o.allowed AND NOT m.inside
                 THEN {by_override("included")}
               ELSE m.reason END AS reason
        FROM {members} m LEFT JOIN {ov} o USING (id)""",
        keeps_rule=True,
    )


# --------------------------------------------------------------------------- staff


@compile_rule.register(CaresForCohort)
def _cares_for_cohort(node: CaresForCohort, c: PopulationCompiler, at: Scope) -> str:
    where = _where(c, "s", c.t("staff"))
    return c.leaf(
        at,
        f"""
        SELECT u.id, coalesce(s.cares_for_cohort = {str(node.value).lower()}, false) AS inside,
          CASE WHEN s.cares_for_cohort THEN {c.because("identified as caring for the patient cohort ({file} line {line})", **where)}
               ELSE {c.because("not identified as caring for the patient cohort ({file} line {line})", **where)} END AS reason
        FROM {at.universe} u LEFT JOIN {c.t("staff")} s ON s.staff_id = u.id""",
    )


@compile_rule.register(Trained)
def _trained(node: Trained, c: PopulationCompiler, at: Scope) -> str:
    by = c.r.date(node.by)
    start = c.r.date(node.start) if node.start is not None else None
    done = {"on": Safe("CAST(completed_on AS VARCHAR)"), **_where(c, "", c.t("training"))}
    window = f"completed_on <= DATE '{by}'" + (f" AND completed_on >= DATE '{start}'" if start else "")
    return c.leaf(
        at,
        f"""
        WITH tr AS (
          SELECT staff_id AS id, bool_or({window}) AS inside,
            arg_min(CASE WHEN course IS NOT NULL THEN {c.because("training '{course}' completed {on} ({file} line {line})", course=Text("course"), **done)}
                         ELSE {c.because("training  completed {on} ({file} line {line})", **done)} END,
                    CASE WHEN {window} THEN struct_pack(d := completed_on, f := _file, l := _line) END) AS hit,
            min(completed_on) AS first_on
          FROM {c.t("training")} GROUP BY staff_id)
        SELECT u.id, coalesce(t.inside, false) AS inside,
          CASE WHEN t.inside THEN t.hit
               WHEN t.id IS NOT NULL THEN {c.because("training completed {on}, outside the window (by {by})", on=Safe("CAST(t.first_on AS VARCHAR)"), by=str(by))}
               ELSE {c.because("no training record completed by {by}", by=str(by))} END AS reason
        FROM {at.universe} u LEFT JOIN tr t USING (id)""",
    )
