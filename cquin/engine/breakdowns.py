"""Aggregate breakdowns of an evaluation, for the commissioner's report: plain counts, no patient identifiers.

After :func:`cquin.engine.evaluation.evaluate` the evaluation's DuckDB
connection holds, for its as-of date, the patients (``e_patients``), every
condition matched to an LTC category (``e_ltc_matches``), the chosen activation
measurements (``e_m_<measurement>``), each population's members
(``e_pop_<population>``), conversations and scored assessments.
:func:`compute_breakdowns` turns those into small tables of counts: each
patient population broken down by LTC category, number of LTC categories,
activation level, age band and sex; and conversations and assessments by
quarter.  The result is a JSON-ready dict, small enough to keep with the run in
the audit store, so a report never needs the patient records again.

Which LTC window and which measurement to use come from the ruleset (its
``ltc`` rule and the measurement its ``low_activation`` rule reads), not from
this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import duckdb

from cquin.dataset.duck import relation_exists
from cquin.dataset.tables import table
from cquin.engine.care_plans import compute_care_plan_views
from cquin.engine.compile_rules import ltc_categories, ltc_window_sql
from cquin.engine.evaluation import EVALUATION_PREFIX
from cquin.engine.rules import LowActivation, Ltc, first_test, population_order
from cquin.engine.ruleset import Ruleset

SCHEMA = 1

# Reporting age bands (years at the start of the first period); a presentation choice, not policy.
AGE_BANDS: tuple[tuple[int, int | None], ...] = ((0, 17), (18, 44), (45, 64), (65, 74), (75, 84), (85, None))
LTC_COUNT_TOP = 5  # 5 or more categories are counted together
NONE = "none"
UNKNOWN = "unknown"
NOT_RECORDED = "not_recorded"


def compute_breakdowns(con: duckdb.DuckDBPyConnection, ruleset: Ruleset, *, prefix: str = EVALUATION_PREFIX) -> dict[str, Any]:
    """Counts by dimension for every patient population, and activity by quarter, from an evaluated connection."""
    doc = ruleset.doc
    t = lambda name: f"{prefix}{name}"  # noqa: E731
    pops = [pid for pid in population_order(doc, "patient") if relation_exists(con, t(f"pop_{pid}"))]
    first_start = ruleset.period(ruleset.years()[0])[0]
    dimensions: dict[str, Any] = {}
    try:
        queries = list(_dimension_queries(con, doc, t, first_start))
        # One row per patient: a membership flag for each population and the value of each single-valued
        # dimension side by side, so every count is one grouped pass over a million rows, not a join per count.
        single = [(k, sql) for k, (_, _, _, sql, multi) in enumerate(queries) if not multi]
        # Membership as one bit per population (60 to a word), gathered in a single aggregate rather than
        # a join per population.
        words = range((len(pops) + 59) // 60)
        members = " UNION ALL ".join(
            f"SELECT id, {i // 60} AS word, {1 << (i % 60)}::BIGINT AS bit FROM {t('pop_' + pid)} WHERE inside"
            for i, pid in enumerate(pops)
        )
        masks = "".join(f", bit_or(bit) FILTER (WHERE word = {w}) AS mask{w}" for w in words)
        mask_join = f"LEFT JOIN (SELECT id{masks} FROM ({members}) GROUP BY id) m USING (id)" if pops else ""
        con.execute(
            "CREATE OR REPLACE TABLE bd_patients AS SELECT u.id"
            + "".join(f", ((coalesce(m.mask{i // 60}, 0) >> {i % 60}) & 1)::INT AS p{i}" for i in range(len(pops)))
            + f" FROM {t('patient_ids')} u {mask_join}"
        )
        # One dimension joined at a time: a single statement joining them all holds every hash table at once,
        # which at 5M patients is more than the memory limit.
        for k, sql in single:
            con.execute(
                f"CREATE OR REPLACE TABLE bd_patients AS SELECT b.*, d.value AS v{k} FROM bd_patients b LEFT JOIN ({sql}) d USING (id)"
            )
        sums = "".join(f", sum(p{i})" for i in range(len(pops)))
        for k, (dim_id, label, values, sql, multi) in enumerate(queries):
            counts = {pid: dict.fromkeys((v for v, _ in values), 0) for pid in pops}
            query = (
                f"SELECT d.value{sums} FROM bd_patients JOIN ({sql}) d USING (id) GROUP BY ALL"
                if multi
                else f"SELECT v{k}{sums} FROM bd_patients WHERE v{k} IS NOT NULL GROUP BY ALL"
            )
            for value, *ns in con.execute(query).fetchall():
                for pid, n in zip(pops, ns, strict=True):
                    if n or value in counts[pid]:
                        counts[pid][value] = int(n or 0)
            dimensions[dim_id] = {"label": label, "values": [{"id": v, "label": lab} for v, lab in values], "counts": counts}
    finally:
        con.execute("DROP TABLE IF EXISTS bd_patients")
    provider = con.execute(f"SELECT provider_code, provider_name FROM {t('provider')} LIMIT 1").fetchall()
    return {
        "schema": SCHEMA,
        "provider": {"code": provider[0][0], "name": provider[0][1]} if provider else None,
        "age_reference_date": first_start.isoformat(),
        "populations": pops,
        "dimensions": dimensions,
        "quarters": _quarters(con, doc, ruleset, t),
        "care_plans": compute_care_plan_views(con, ruleset, prefix=prefix),
    }


def _dimension_queries(
    con: duckdb.DuckDBPyConnection, doc: dict[str, Any], t: Any, age_on: dt.date
) -> Iterator[tuple[str, str, list[tuple[str, str]], str, bool]]:
    """(id, label, ordered (value, label) pairs, SQL giving distinct (id, value) rows, whether a patient can have
    several values) for each dimension."""
    ltc = first_test(doc, Ltc)
    if ltc is not None and relation_exists(con, t("ltc_matches")):
        cats = doc["ltc"]["categories"]
        wanted = ltc_categories(ltc, doc)
        per_patient = f"SELECT DISTINCT patient_id AS id, category FROM {t('ltc_matches')} WHERE {ltc_window_sql(ltc, doc)}"
        yield (
            "ltc_category",
            "LTC category",
            [(c["id"], c["label"]) for c in cats if c["id"] in wanted],
            f"SELECT id, category AS value FROM ({per_patient})",
            True,
        )
        top = LTC_COUNT_TOP
        counts = [(NONE, "no LTC")] + [(str(n), f"{n} LTC categor{'y' if n == 1 else 'ies'}") for n in range(1, top)]
        counts.append((f"{top}+", f"{top} or more LTC categories"))
        yield (
            "ltc_count",
            "Number of LTC categories",
            counts,
            f"""SELECT u.id, CASE WHEN n.k IS NULL THEN '{NONE}' WHEN n.k >= {top} THEN '{top}+' ELSE CAST(n.k AS VARCHAR) END AS value
                FROM {t("patient_ids")} u LEFT JOIN (SELECT id, count(*) AS k FROM ({per_patient}) GROUP BY id) n USING (id)""",
            False,
        )
    low = first_test(doc, LowActivation)
    mid = low.measurement if low is not None else next(iter(doc.get("measurements") or {}), None)
    if mid is not None and relation_exists(con, t(f"m_{mid}")):
        label = doc["measurements"][mid]["label"]
        pam = doc["instruments"]["pam"]
        levels = range(int(pam["level_range"]["min"]), int(pam["level_range"]["max"]) + 1)
        gpps_points = [
            float(v)
            for (v,) in con.execute(f"SELECT DISTINCT value FROM {t(f'm_{mid}')} WHERE instrument = 'gpps' ORDER BY 1").fetchall()
        ]
        values = [(f"pam:{lv}", f"PAM level {lv}") for lv in levels]
        values += [(f"gpps:{p:g}", f"GPPS {p:g} points") for p in gpps_points]
        values.append((NONE, f"no {label.lower()}"))
        yield (
            "activation",
            f"Activation level ({label.lower()})",
            values,
            f"""SELECT u.id, CASE WHEN m.id IS NULL THEN '{NONE}'
                       ELSE m.instrument || ':' || CASE WHEN m.instrument = 'pam' THEN CAST(CAST(m.value AS INTEGER) AS VARCHAR)
                                                        ELSE regexp_replace(CAST(CAST(m.value AS DOUBLE) AS VARCHAR), '\\.0$', '') END END AS value
                FROM {t("patient_ids")} u LEFT JOIN {t(f"m_{mid}")} m USING (id)""",
            False,
        )
    age = f"""(year(DATE '{age_on}') - year(dob) - CASE WHEN (month(dob), day(dob)) > ({age_on.month}, {age_on.day}) THEN 1 ELSE 0 END)"""
    bands = [
        (f"{lo}-{hi}" if hi is not None else f"{lo}+", f"{lo} to {hi}" if hi is not None else f"{lo} and over")
        for lo, hi in AGE_BANDS
    ]
    whens = " ".join(
        f"WHEN {age} BETWEEN {lo} AND {hi} THEN '{key}'" if hi is not None else f"WHEN {age} >= {lo} THEN '{key}'"
        for (lo, hi), (key, _) in zip(AGE_BANDS, bands, strict=True)
    )
    yield (
        "age_band",
        f"Age on {age_on}",
        bands + [(UNKNOWN, "not known")],
        f"""SELECT id, CASE {whens} ELSE '{UNKNOWN}' END AS value
            FROM (SELECT patient_id AS id, min(date_of_birth) AS dob FROM {t("patients")} GROUP BY patient_id)""",
        False,
    )
    sexes = [c for c in table("patients").columns if c.name == "sex"][0].values
    yield (
        "sex",
        "Sex",
        [(s, s) for s in sexes] + [(NOT_RECORDED, "not recorded")],
        f"""SELECT patient_id AS id, coalesce(nullif(any_value(sex), ''), '{NOT_RECORDED}') AS value
            FROM {t("patients")} GROUP BY patient_id""",
        False,
    )


def _quarters(con: duckdb.DuckDBPyConnection, doc: dict[str, Any], ruleset: Ruleset, t: Any) -> list[dict[str, Any]]:
    """Conversations held and the patients' own assessments in each quarter of each year (as known at the as-of date)."""
    out = []
    for year in ruleset.years():
        for quarter in doc["periods"][year].get("quarters") or []:
            start, end = quarter["from"], quarter["to"]
            conv = con.execute(
                f"SELECT count(*), count(DISTINCT patient_id) FROM {t('conversations')} WHERE held_on BETWEEN DATE '{start}' AND DATE '{end}'"
            ).fetchall()[0]
            assess = con.execute(
                f"""SELECT count(*), count(DISTINCT patient_id) FROM {t("scored")}
                    WHERE respondent = 'patient' AND assessed_on BETWEEN DATE '{start}' AND DATE '{end}'"""
            ).fetchall()[0]
            out.append(
                {
                    "period": year,
                    "quarter": quarter["id"],
                    "from": str(start),
                    "to": str(end),
                    "conversations": int(conv[0]),
                    "patients_with_conversation": int(conv[1]),
                    "assessments": int(assess[0]),
                    "patients_assessed": int(assess[1]),
                }
            )
    return out


def dimension_catalogue(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dimension :func:`compute_breakdowns` can report for a ruleset, with every value it can take.

    Read from the ruleset alone (no data), so a FHIR Measure and its CodeSystem can name the strata before any
    run: ``{"id", "label", "values": [(id, label)], "partition": bool}``; ``partition`` is true when each
    patient has exactly one value (so the strata add up to the population), false for the LTC category (a
    patient can have several).
    """
    out: list[dict[str, Any]] = []
    ltc = first_test(doc, Ltc)
    if ltc is not None:
        cats = doc["ltc"]["categories"]
        wanted = ltc_categories(ltc, doc)
        out.append(
            {
                "id": "ltc_category",
                "label": "LTC category",
                "values": [(c["id"], c["label"]) for c in cats if c["id"] in wanted],
                "partition": False,
            }
        )
        top = LTC_COUNT_TOP
        counts = [(NONE, "no LTC")] + [(str(n), f"{n} LTC categor{'y' if n == 1 else 'ies'}") for n in range(1, top)]
        out.append(
            {
                "id": "ltc_count",
                "label": "Number of LTC categories",
                "values": [*counts, (f"{top}+", f"{top} or more LTC categories")],
                "partition": True,
            }
        )
    low = first_test(doc, LowActivation)
    mid = low.measurement if low is not None else next(iter(doc.get("measurements") or {}), None)
    if mid is not None:
        label = doc["measurements"][mid]["label"]
        pam = doc["instruments"]["pam"]
        values = [
            (f"pam:{lv}", f"PAM level {lv}") for lv in range(int(pam["level_range"]["min"]), int(pam["level_range"]["max"]) + 1)
        ]
        totals = {0.0}
        for question in doc["instruments"]["gpps"]["questions"]:
            totals = {t + float(o["points"]) for t in totals for o in question["options"]}
        values += [(f"gpps:{p:g}", f"GPPS {p:g} points") for p in sorted(totals)]
        values.append((NONE, f"no {label.lower()}"))
        out.append({"id": "activation", "label": f"Activation level ({label.lower()})", "values": values, "partition": True})
    first = min(p["from"] for p in doc["periods"].values())
    bands = [
        (f"{lo}-{hi}" if hi is not None else f"{lo}+", f"{lo} to {hi}" if hi is not None else f"{lo} and over")
        for lo, hi in AGE_BANDS
    ]
    out.append({"id": "age_band", "label": f"Age on {first}", "values": [*bands, (UNKNOWN, "not known")], "partition": True})
    sexes = [c for c in table("patients").columns if c.name == "sex"][0].values
    out.append(
        {"id": "sex", "label": "Sex", "values": [*((s, s) for s in sexes), (NOT_RECORDED, "not recorded")], "partition": True}
    )
    return out
