"""What care plans say, aggregated for the commissioner: needs met and unmet, referrals, goals and actions over time.

The commissioners' handbook asks commissioners to "look for trends in the objectives and action plans
contained within care plans" (4.3.2), to aggregate "data from care plans to determine 'unmet' needs" (4.4),
to build a menu of "more than medicine" services (4.6) and to use activation measurement "to assess whether
an intervention made a difference" (4.5.1).  :func:`compute_care_plan_views` turns the ``care_plans`` table
of an evaluated connection into those views, as plain counts of patients (so disclosure control can apply),
using only what the ruleset's ``care_planning`` section says: the categories, the conversation elements,
the date range and the two populations activation change compares.  Nothing here pays anything.
"""

from __future__ import annotations

from typing import Any

import duckdb

from cquin.dataset.duck import relation_exists
from cquin.engine.evaluation import EVALUATION_PREFIX
from cquin.engine.populations import q
from cquin.engine.ruleset import Ruleset, resolve_date

SCHEMA = 1
ANY_REFERRAL = "any"  # the activation-change row for a referral of any category


def compute_care_plan_views(
    con: duckdb.DuckDBPyConnection, ruleset: Ruleset, *, prefix: str = EVALUATION_PREFIX
) -> dict[str, Any] | None:
    """The care-plan views of an evaluated connection, JSON-ready; None when the ruleset has no ``care_planning``."""
    doc = ruleset.doc
    cp = doc.get("care_planning")
    if not cp:
        return None
    t = lambda name: f"{prefix}{name}"  # noqa: E731
    start, end = resolve_date(doc, cp["within"]["from"]), resolve_date(doc, cp["within"]["to"])
    # One row per entry dated in range; a plan is its plan_id, or a patient's entries agreed on one day.
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE cp_entries AS
            SELECT patient_id, coalesce(plan_id, '@' || CAST(agreed_on AS VARCHAR)) AS plan, agreed_on,
                   shared_with_patient, entry, category, coalesce(entry_on, agreed_on) AS dated
            FROM {t("care_plans")}
            WHERE coalesce(entry_on, agreed_on) BETWEEN DATE '{start}' AND DATE '{end}'"""
    )
    try:
        return {
            "schema": SCHEMA,
            "within": {"from": start.isoformat(), "to": end.isoformat()},
            "categories": [
                {"id": c["id"], "label": c["label"], "more_than_medicine": bool(c.get("more_than_medicine"))}
                for c in cp["categories"]
            ],
            **_summary(con),
            "needs": _needs(con, cp),
            "referrals": _referrals(con, cp),
            "mix": _mix(con, doc, ruleset),
            "elements": _elements(con, cp),
            "activation": _activation(con, cp, t),
        }
    finally:
        con.execute("DROP TABLE IF EXISTS cp_entries")


def _summary(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    entries, patients, plans, shared = con.execute(
        """SELECT (SELECT count(*) FROM cp_entries), (SELECT count(DISTINCT patient_id) FROM cp_entries),
                  count(*), count(*) FILTER (WHERE shared)
           FROM (SELECT patient_id, plan, bool_or(coalesce(shared_with_patient, false)) AS shared
                 FROM cp_entries GROUP BY ALL)"""
    ).fetchall()[0]
    return {"entries": int(entries), "patients": int(patients), "plans": int(plans), "plans_shared": int(shared)}


def _by_category(cp: dict[str, Any], rows: list[tuple[Any, ...]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """One row per ruleset category, in the ruleset's order, with zeros where nothing was recorded."""
    found = {r[0]: r[1:] for r in rows}
    return [
        {"category": c["id"], **dict(zip(fields, (int(v) for v in found.get(c["id"], (0,) * len(fields))), strict=True))}
        for c in cp["categories"]
    ]


def _needs(con: duckdb.DuckDBPyConnection, cp: dict[str, Any]) -> list[dict[str, Any]]:
    """Patients with a need in each category, and of them those for whom a referral or action in it followed."""
    rows = con.execute(
        """WITH need AS (SELECT patient_id, category, min(dated) AS first_on FROM cp_entries
                         WHERE entry = 'need' GROUP BY ALL),
                met AS (SELECT DISTINCT n.patient_id, n.category FROM need n JOIN cp_entries e
                          ON e.patient_id = n.patient_id AND e.category = n.category
                         AND e.entry IN ('referral', 'action') AND e.dated >= n.first_on)
           SELECT n.category, count(*), count(m.patient_id) FROM need n LEFT JOIN met m USING (patient_id, category)
           GROUP BY ALL"""
    ).fetchall()
    out = _by_category(cp, rows, ("patients_with_need", "met"))
    for row in out:
        row["unmet"] = row["patients_with_need"] - row["met"]
    return out


def _referrals(con: duckdb.DuckDBPyConnection, cp: dict[str, Any]) -> list[dict[str, Any]]:
    rows = con.execute(
        "SELECT category, count(DISTINCT patient_id), count(*) FROM cp_entries WHERE entry = 'referral' GROUP BY ALL"
    ).fetchall()
    return _by_category(cp, rows, ("patients", "referrals"))


def _mix(con: duckdb.DuckDBPyConnection, doc: dict[str, Any], ruleset: Ruleset) -> list[dict[str, Any]]:
    """Patients with a goal, and with an action, in each category, quarter by quarter (only non-zero counts kept)."""
    out = []
    for year in ruleset.years():
        for quarter in doc["periods"][year].get("quarters") or []:
            start, end = quarter["from"], quarter["to"]
            counts: dict[str, dict[str, int]] = {"goal": {}, "action": {}}
            for entry, category, n in con.execute(
                f"""SELECT entry, category, count(DISTINCT patient_id) FROM cp_entries
                    WHERE entry IN ('goal', 'action') AND dated BETWEEN DATE '{start}' AND DATE '{end}'
                    GROUP BY ALL ORDER BY ALL"""
            ).fetchall():
                counts[entry][category] = int(n)
            out.append(
                {
                    "period": year,
                    "quarter": quarter["id"],
                    "from": str(start),
                    "to": str(end),
                    "goals": counts["goal"],
                    "actions": counts["action"],
                }
            )
    return out


def _elements(con: duckdb.DuckDBPyConnection, cp: dict[str, Any]) -> list[dict[str, Any]]:
    """Plans that record each element of the conversation (the patient-owned document: plans shared)."""
    recorded = dict(
        con.execute(
            "SELECT category, count(DISTINCT (patient_id, plan)) FROM cp_entries WHERE entry = 'element' GROUP BY ALL"
        ).fetchall()
    )
    shared = con.execute(
        """SELECT count(*) FROM (SELECT patient_id, plan FROM cp_entries GROUP BY ALL
           HAVING bool_or(coalesce(shared_with_patient, false)))"""
    ).fetchall()[0][0]
    out = []
    for el in cp.get("conversation_elements") or []:
        n = shared if el.get("recorded_by") == "shared_with_patient" else recorded.get(el["id"], 0)
        out.append(
            {
                "id": el["id"],
                "label": el["label"],
                "plans": int(n),
                **({"recorded_by": el["recorded_by"]} if "recorded_by" in el else {}),
            }
        )
    return out


def _activation(con: duckdb.DuckDBPyConnection, cp: dict[str, Any], t: Any) -> dict[str, Any] | None:
    """For each category: of those measured twice, how many were referred and improved, against those not referred."""
    spec = cp.get("activation_change")
    if not spec:
        return None
    measured, improved = t(f"pop_{spec['measured']}"), t(f"pop_{spec['improved']}")
    if not (relation_exists(con, measured) and relation_exists(con, improved)):
        return None
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE cp_measured AS
            SELECT m.id, coalesce(i.inside, false) AS improved FROM {measured} m LEFT JOIN {improved} i USING (id)
            WHERE m.inside"""
    )
    try:
        total, total_improved = con.execute("SELECT count(*), count(*) FILTER (WHERE improved) FROM cp_measured").fetchall()[0]
        rows = []
        cats = [(c["id"], f"category = {q(c['id'])}") for c in cp["categories"]] + [(ANY_REFERRAL, "true")]
        for cid, cond in cats:
            referred, referred_improved = con.execute(
                f"""SELECT count(*), count(*) FILTER (WHERE improved) FROM cp_measured m
                    WHERE m.id IN (SELECT patient_id FROM cp_entries WHERE entry = 'referral' AND {cond})"""
            ).fetchall()[0]
            rows.append(
                {
                    "category": cid,
                    "referred": int(referred),
                    "referred_improved": int(referred_improved),
                    "not_referred": int(total - referred),
                    "not_referred_improved": int(total_improved - referred_improved),
                }
            )
        return {
            "measured_population": spec["measured"],
            "improved_population": spec["improved"],
            "measured": int(total),
            "rows": rows,
        }
    finally:
        con.execute("DROP TABLE IF EXISTS cp_measured")
