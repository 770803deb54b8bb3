"""The audit store, browsable: Datasette on 127.0.0.1 with metadata, links, canned queries and identifiers hidden.

``cquin serve`` (the optional extra ``pip install 'cquin[serve]'``) opens the store read-only in Datasette:

- metadata: a title and description for every table and column, with units (pence, fraction parts);
- links: every run table's ``run_id`` is a foreign key to ``runs`` (store schema 2), so Datasette links them;
- numbers: money as integer pence and fractions as numerator/denominator columns, so they sort as numbers;
- canned queries: one patient's decisions, rejections by reason, a cohort, what changed between two runs;
- NHS numbers hidden unless ``--show-identifiers``: an SQLite authorizer on every connection Datasette opens
  to the store reads each identifying column as NULL, in table pages, views, canned and custom SQL alike
  (SQLite's ``SQLITE_IGNORE`` for a column read, https://www.sqlite.org/c3ref/set_authorizer.html).

The server listens on 127.0.0.1 only; the store is opened read-only (Datasette's ``mode=ro`` connections).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from cquin.exceptions import UserError

HOST = "127.0.0.1"
DATABASE = "audit"

# Columns that hold NHS numbers, or text that may quote one (rejected values and reasons, override messages).
IDENTIFYING: dict[str, tuple[str, ...]] = {
    "runs": ("notes",),
    # vals: the values of the subject's reasons (an override's free-text reason may quote an NHS number).
    "run_subjects": ("subject_id", "vals"),
    "run_cohorts": ("patient_id", "vals"),  # vals: the values of the member's reason (its words read as empty too)
    "run_overrides": ("patient_id", "message"),
    "run_rejections": ("ref", "value", "reason"),
}

_TABLES: dict[str, dict[str, Any]] = {
    "runs": {
        "title": "Runs",
        "description": "One row per evaluation: when, by which cquin, with which ruleset (and its SHA-256), on which records.",
        "sort_desc": "started_at",
        "label_column": "run_id",
        "columns": {
            "run_id": "The run's id (start time and a random suffix).",
            "ruleset_sha256": "SHA-256 of the resolved ruleset the run used; its full text is in ruleset_json.",
            "totals": "Earned per year, in pounds (JSON); see run_totals for the same figures in pence.",
            "available": "Available per year, in pounds (JSON); see run_totals.",
            "results_sha256": "Digest of every component result and every decision, to tell whether two runs agree.",
            "parameters": "Contract values, as-of date and adapter options (JSON).",
        },
    },
    "run_totals": {
        "title": "Totals by year",
        "description": "What each run earned and what was available, per year, in pence (integers: they sort and add exactly).",
        "columns": {"earned_pence": "Earned, in pence.", "available_pence": "Available (contract value x weighting), in pence."},
    },
    "run_inputs": {
        "title": "Input files",
        "description": "Every file a run read: its SHA-256 and rows read, accepted and rejected (read = accepted + rejected).",
        "columns": {
            "sha256": "SHA-256 of the file as read.",
            "read": "Rows read.",
            "accepted": "Rows accepted.",
            "rejected": "Rows rejected.",
        },
    },
    "run_rejections": {
        "title": "Rejected rows",
        "description": "Every input row a run rejected, charged to its file and line, with the reason.",
        "facets": ["file", "reason_group"],
        "columns": {
            "line": "Line in the file (the header is line 1).",
            "value": "The value that was wrong (hidden unless served with --show-identifiers: it can be an NHS number).",
            "reason": "Why the row was rejected (hidden unless --show-identifiers: it can quote an NHS number).",
            "reason_group": "The reason with values, NHS numbers and line numbers taken out, so like rows group together.",
        },
    },
    "run_components": {
        "title": "Components",
        "description": "Each component of each run: counts, band reached, and the payment, as text and as exact numbers.",
        "columns": {
            "numerator": "Subjects in the numerator.",
            "denominator": "Subjects in the denominator.",
            "fraction": "numerator/denominator as an exact fraction (text).",
            "percent": "The percentage, two decimals, rounded half-up (text; bands are decided on the exact fraction).",
            "available_pence": "Available for this component, in pence.",
            "payment_pence": "Earned for this component, in pence.",
            "payment_fraction_numerator": "Share of the component's value the band pays: numerator.",
            "payment_fraction_denominator": "Share of the component's value the band pays: denominator.",
            "share_numerator": "The component's share of the year's value: numerator.",
            "share_denominator": "The component's share of the year's value: denominator.",
        },
    },
    "run_milestones": {"title": "Milestones", "description": "In-year milestones: due date and whether each was met."},
    "run_overrides": {
        "title": "Cohort overrides",
        "description": "What each agreed include or exclude did, or why it was refused.",
    },
    "run_cohorts": {
        "title": "Cohort members (stored form)",
        "description": "Every cohort member, with the reason they are in as a term of trace_terms and its values; "
        "see the run_cohort_members view for the reason in words.",
    },
    "run_cohort_members": {
        "title": "Cohort members",
        "description": "Every cohort member and why they are in (NHS numbers hidden by default).",
    },
    "run_subjects": {
        "title": "Subjects (stored form)",
        "description": "One row per patient or member of staff per run: the shape of their decisions (a term of trace_terms) "
        "and the values that fill it (dates, line numbers, codes; hidden unless --show-identifiers, as an override's "
        "free-text reason may quote an NHS number); see the run_decisions view for the decisions in words.",
    },
    "trace_terms": {
        "title": "Trace terms",
        "description": "The words the stored decisions are made of, shared by every run: rules (population ids), reason "
        "templates (%s where a value goes) and shapes (one subject's decisions without their values).",
    },
    "run_unmatched_codes": {"title": "Unmatched codes", "description": "Codes in the records that no code list knows."},
    "run_breakdowns": {
        "title": "Breakdowns",
        "description": "Aggregate counts by dimension kept with each run (no identifiers).",
    },
    "run_signoffs": {
        "title": "Sign-offs",
        "description": "Every sign-off decision (cquin signoff): run, subject (results, a cohort, the plan's acceptance), "
        "party, name, agree or dispute, date, note and the digest agreed. Append-only; a run with one is kept as it was.",
    },
    "run_decisions": {
        "title": "Decisions",
        "description": "Every subject and component: in the denominator? in the numerator? the rule (population) that decided and the fact.",
    },
}

_QUERIES: dict[str, dict[str, Any]] = {
    "patient_decisions": {
        "title": "One patient's decisions",
        "description": "Every component's decision for one NHS number (or staff id) in one run, in the run's order. "
        "Needs the server started with --show-identifiers.",
        "sql": """SELECT c.ordinal, d.component, c.name, d.in_denominator, d.in_numerator, d.rule, d.reason AS fact
FROM run_decisions d JOIN run_components c ON c.run_id = d.run_id AND c.component = d.component
WHERE d.run_id = :run_id AND d.subject_id = :nhs_number ORDER BY c.ordinal""",
    },
    "rejections_by_reason": {
        "title": "Rejections by reason",
        "description": "Rejected rows of one run grouped by file and reason (values and line numbers taken out).",
        "sql": """SELECT file, reason_group, count(*) AS rows, min(line) AS first_line
FROM run_rejections WHERE run_id = :run_id GROUP BY file, reason_group ORDER BY file, rows DESC""",
    },
    "cohort": {
        "title": "Cohort",
        "description": "The members of one cohort of one run (e.g. year1_cohort) and why each is in.",
        "sql": """SELECT patient_id, reason FROM run_cohort_members WHERE run_id = :run_id AND cohort = :cohort ORDER BY patient_id""",
    },
    "changes_between_runs": {
        "title": "What changed between two runs",
        "description": "Each component's counts and payment in two runs side by side, and the difference.",
        "sql": """SELECT a.component, a.name, a.numerator AS numerator_a, b.numerator AS numerator_b,
       a.denominator AS denominator_a, b.denominator AS denominator_b, a.band AS band_a, b.band AS band_b,
       a.payment_pence AS payment_pence_a, b.payment_pence AS payment_pence_b,
       coalesce(b.payment_pence, 0) - coalesce(a.payment_pence, 0) AS payment_change_pence
FROM run_components a LEFT JOIN run_components b ON b.run_id = :run_b AND b.component = a.component
WHERE a.run_id = :run_a ORDER BY a.ordinal""",
    },
    "subjects_that_changed": {
        "title": "Subjects whose decisions changed between two runs",
        "description": "Subjects whose denominator or numerator membership differs between two runs, per component.",
        "sql": """SELECT a.component, a.subject_id, a.in_denominator AS in_denominator_a, b.in_denominator AS in_denominator_b,
       a.in_numerator AS in_numerator_a, b.in_numerator AS in_numerator_b, a.reason AS fact_a, b.reason AS fact_b
FROM run_decisions a JOIN run_decisions b ON b.run_id = :run_b AND b.subject_id = a.subject_id AND b.component = a.component
WHERE a.run_id = :run_a AND (a.in_denominator IS NOT b.in_denominator OR a.in_numerator IS NOT b.in_numerator)
ORDER BY a.component, a.subject_id LIMIT 1000""",
    },
}


def metadata(*, show_identifiers: bool) -> dict[str, Any]:
    """Datasette metadata for the audit store: titles, descriptions, units, facets and canned queries."""
    tables: dict[str, Any] = {}
    for name, spec in _TABLES.items():
        entry = {k: v for k, v in spec.items() if k != "columns"}
        entry["columns"] = dict(spec.get("columns", {}))
        hidden = IDENTIFYING.get(name, ())
        if hidden and not show_identifiers:
            entry["description"] += (
                " Identifying columns (" + ", ".join(hidden) + ") read as empty: start with --show-identifiers to see them."
            )
        tables[name] = entry
    tables["run_decisions"]["description"] += "" if show_identifiers else " subject_id reads as empty unless --show-identifiers."
    return {
        "title": "cquin audit store",
        "description": "Every run of cquin: its inputs, rejections, components, totals, cohorts and per-subject decisions. "
        + (
            "NHS numbers are SHOWN: this server was started with --show-identifiers."
            if show_identifiers
            else "NHS numbers are hidden."
        ),
        "databases": {DATABASE: {"title": "Audit store", "tables": tables, "queries": _QUERIES}},
    }


def authorizer(show_identifiers: bool) -> Any:
    """An SQLite authorizer that reads identifying columns as NULL (unless ``show_identifiers``) and allows nothing but reads."""
    hidden = {(t, c) for t, cols in IDENTIFYING.items() for c in cols}
    allowed = {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_PRAGMA,
        sqlite3.SQLITE_RECURSIVE,
    }

    def check(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action == sqlite3.SQLITE_READ and not show_identifiers and (arg1, arg2) in hidden:
            return sqlite3.SQLITE_IGNORE
        if action in allowed or action == sqlite3.SQLITE_TRANSACTION:
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return check


def _plugin(show_identifiers: bool, hookimpl: Any) -> Any:
    """A Datasette plugin that installs the authorizer on every connection Datasette opens to the audit store."""

    class Plugin:
        __name__ = "cquin_serve"

        @staticmethod
        @hookimpl
        def prepare_connection(conn: sqlite3.Connection, database: str) -> None:
            if database == DATABASE:
                conn.set_authorizer(authorizer(show_identifiers))

    return Plugin


def datasette_app(store: Path, *, show_identifiers: bool = False) -> Any:
    """A Datasette instance serving ``store`` (read-only) with cquin's metadata and identifier hiding."""
    try:
        from datasette import hookimpl
        from datasette.app import Datasette
        from datasette.plugins import pm
    except ImportError:
        raise UserError("cquin serve needs Datasette: pip install 'cquin[serve]'") from None
    from cquin.store import SCHEMA_VERSION

    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    if version < SCHEMA_VERSION:
        raise UserError(
            f"{store}: the audit store is schema {version}, this cquin serves schema {SCHEMA_VERSION}: "
            "run any cquin command on it once (e.g. `cquin runs list --store ...`) to migrate it, then serve it"
        )
    old = pm.get_plugin("cquin_serve")
    if old is not None:  # a second app in one process (tests) replaces the first's setting
        pm.unregister(old)
    pm.register(_plugin(show_identifiers, hookimpl), name="cquin_serve")
    ds = Datasette(
        [],
        metadata=metadata(show_identifiers=show_identifiers),
        settings={"default_page_size": 100, "sql_time_limit_ms": 5000, "suggest_facets": False},
    )
    from datasette.database import Database

    ds.add_database(Database(ds, path=str(store), is_mutable=True), name=DATABASE)
    return ds


def serve(store: Path, *, port: int = 8001, show_identifiers: bool = False) -> None:  # noqa: D103
    """Serve the audit store on http://127.0.0.1:PORT/ until interrupted."""
    import uvicorn

    ds = datasette_app(store, show_identifiers=show_identifiers)
    uvicorn.run(ds.app(), host=HOST, port=port, log_level="warning")
