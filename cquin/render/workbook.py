"""A stored run as an Excel workbook, for the analysts who take the figures into their own spreadsheets.

Written with XlsxWriter (a well-kept, fast, write-only xlsx library).  Sheets:
Summary (data quality, basis and money, components and bands), Milestones,
one per cohort, Work-lists, Rejections, Breakdowns and Care plans (what care plans say: the
report's tables, from :mod:`cquin.report.careplans`, with counts of 1 to 7 marked).  Numbers are numbers,
dates are dates, money has a pound format; every sheet's header row is frozen.
Sheets that name patients or staff (cohorts, work-lists, rejections, whose
values may hold NHS numbers) are marked IDENTIFIABLE in their first row and by
a red tab, and the file is created owner-only.  Counts are exact: a workbook
names patients, so it is never a publication.

Everything comes from the audit store, so the workbook agrees with every other
output of the run.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from cquin.engine.outcome import NO_CONTRACT_VALUE, NextStep, basis_from_stored
from cquin.render.worklist import IDENTIFIABLE, work_lists
from cquin.report.data import load_report_data
from cquin.store import cohort_members, open_store

EXCEL_MAX_ROWS = 1_048_576
SHEETS = ("Summary", "Milestones", "Year 1 cohort", "Year 2 cohort", "Work-lists", "Rejections", "Breakdowns", "Care plans")
SMALL_COLUMN = "small counts (1-7)"


def _cohort_sheet_name(label: str) -> str:
    """'Year 1 (2017/18)' -> 'Year 1 cohort' (sheet names are at most 31 characters, no []:*?/\\)."""
    short = label.split(" (")[0]
    name = f"{short} cohort"
    return "".join(ch for ch in name if ch not in "[]:*?/\\")[:31]


class _Sheet:
    """A worksheet written row by row, with the workbook's formats."""

    def __init__(self, book: Any, name: str, fmt: dict[str, Any], *, identifiable: bool = False) -> None:
        self.ws = book.add_worksheet(name)
        self.fmt = fmt
        self.row = 0
        self.widths: dict[int, int] = {}
        if identifiable:
            self.ws.set_tab_color("#b91c1c")
            self.ws.write(0, 0, IDENTIFIABLE, fmt["warn"])
            self.row = 1

    def header(self, cols: list[str]) -> None:
        for i, c in enumerate(cols):
            self.ws.write_string(self.row, i, c, self.fmt["head"])
            self.widths[i] = max(self.widths.get(i, 0), len(c))
        self.row += 1
        self.ws.freeze_panes(self.row, 0)

    def write(self, values: list[Any], kinds: list[str] | None = None) -> None:
        for i, v in enumerate(values):
            kind = kinds[i] if kinds else ""
            self._cell(self.row, i, v, kind)
        self.row += 1

    def _cell(self, r: int, c: int, v: Any, kind: str) -> None:
        ws, fmt = self.ws, self.fmt
        width = 10
        if v is None or v == "":
            ws.write_blank(r, c, None)
        elif kind == "money" and isinstance(v, (Decimal, int)):
            ws.write_number(r, c, float(v), fmt["money"])
            width = 14
        elif kind == "percent" and isinstance(v, (Fraction, Decimal, float)):
            ws.write_number(r, c, float(v), fmt["percent"])
        elif isinstance(v, dt.date):
            ws.write_datetime(r, c, dt.datetime(v.year, v.month, v.day), fmt["date"])
            width = 11
        elif isinstance(v, bool):
            ws.write_boolean(r, c, v)
        elif isinstance(v, (int, float, Decimal)) and kind != "text":
            ws.write_number(r, c, float(v) if isinstance(v, Decimal) else v, fmt["int"] if isinstance(v, int) else None)
        else:
            text = str(v)
            ws.write_string(r, c, text)  # never a formula: write_string stores the text as it is
            width = min(len(text), 60)
        self.widths[c] = max(self.widths.get(c, 0), width)

    def finish(self) -> None:
        for c, w in self.widths.items():
            self.ws.set_column(c, c, w + 2)


def write_workbook(store: Path, run_id: str, out: Path) -> dict[str, int]:
    """Write run ``run_id`` as an .xlsx workbook; returns the number of data rows on each sheet."""
    import xlsxwriter

    from cquin.outfile import check_out

    check_out(out, "--xlsx")
    db = open_store(store, read_only=True)
    d = load_report_data(db, run_id)
    run = d.run
    rid = run["run_id"]
    basis = basis_from_stored(run, d.components)
    # Create the file owner-only before XlsxWriter writes it (it holds NHS numbers).
    import os

    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.close(fd)
    os.chmod(out, 0o600)
    book = xlsxwriter.Workbook(str(out), {"strings_to_formulas": False, "strings_to_urls": False, "constant_memory": False})
    fmt = {
        "head": book.add_format({"bold": True, "bg_color": "#e5e7eb", "bottom": 1}),
        "title": book.add_format({"bold": True, "font_size": 14}),
        "warn": book.add_format({"bold": True, "font_color": "#b91c1c"}),
        "money": book.add_format({"num_format": "£#,##0.00"}),
        "percent": book.add_format({"num_format": "0.00%"}),
        "date": book.add_format({"num_format": "yyyy-mm-dd"}),
        "int": book.add_format({"num_format": "#,##0"}),
        "small": book.add_format({"num_format": "#,##0", "bg_color": "#fef3c7"}),
        "small_percent": book.add_format({"num_format": "0.00%", "bg_color": "#fef3c7"}),
    }
    counts: dict[str, int] = {}

    # ------------------------------------------------------------------ Summary
    s = _Sheet(book, "Summary", fmt)
    s.ws.write_string(0, 0, str(d.ruleset.get("title", run["ruleset_id"])), fmt["title"])
    s.row = 1
    read = sum(int(i["read"] or 0) for i in d.inputs)
    rejected = sum(int(i["rejected"] or 0) for i in d.inputs)
    facts: list[tuple[str, Any, str]] = [
        ("run id", rid, "text"),
        ("ruleset", f"{run['ruleset_id']} {run['ruleset_version']}", "text"),
        ("ruleset SHA-256", run["ruleset_sha256"], "text"),
        ("results SHA-256", run["results_sha256"], "text"),
        ("as of", dt.date.fromisoformat(run["as_of"]) if run["as_of"] else "all records", ""),
        ("counts", "exact (the figures the bands were decided on)", "text"),
        (
            "data quality",
            f"{len(d.inputs)} files, {read:,} rows read, {read - rejected:,} accepted, {rejected:,} rejected"
            + (f" ({rejected / read:.2%})" if read else ""),
            "text",
        ),
        ("weighting (of the contract value)", basis.weighting, "percent"),
    ]
    for y in basis.years:
        facts += [
            (f"{y.label}: contract value", y.contract_value if y.contract_value is not None else NO_CONTRACT_VALUE, "money"),
            (f"{y.label}: available", y.available if y.available is not None else NO_CONTRACT_VALUE, "money"),
            (f"{y.label}: earned", y.earned if y.earned is not None else NO_CONTRACT_VALUE, "money"),
            (f"{y.label}: share of the value earned", y.earned_share, "percent"),
        ]
        if y.status:
            facts.append((f"{y.label}: status", y.status, "text"))
    facts += [
        ("total available", basis.available if basis.available is not None else NO_CONTRACT_VALUE, "money"),
        ("total earned", basis.earned if basis.earned is not None else NO_CONTRACT_VALUE, "money"),
    ]
    for label, value, kind in facts:
        s.write([label, value], ["text", kind])
    s.row += 1
    cols = [
        "component",
        "year",
        "name",
        "numerator",
        "denominator",
        "percent",
        "band reached",
        "pays",
        "share",
        "available",
        "earned",
        "next band",
        "more needed",
        "next band worth",
    ]
    s.header(cols)
    s.ws.freeze_panes(0, 0)  # the summary's header is not its first row: freeze the components' header instead
    s.ws.freeze_panes(s.row, 1)
    given = {y.year: y.contract_value is not None for y in basis.years}
    for c in d.components:
        step = NextStep.from_stored(c)
        g = given.get(c["year"], False)
        s.write(
            [
                c["component"],
                c["year"],
                c["name"],
                c["numerator"],
                c["denominator"],
                Fraction(c["numerator"], c["denominator"]) if c["numerator"] is not None and c["denominator"] else None,
                c["band"],
                Fraction(c["payment_fraction"]),
                Fraction(c["share"]),
                Decimal(c["available"]) if g else NO_CONTRACT_VALUE,
                Decimal(c["payment"]) if g else NO_CONTRACT_VALUE,
                step.band if step else None,
                step.more_needed if step else None,
                (step.worth if step.worth is not None else NO_CONTRACT_VALUE) if step else None,
            ],
            ["text", "text", "text", "", "", "percent", "text", "percent", "percent", "money", "money", "text", "", "money"],
        )
    counts["Summary"] = len(d.components)
    s.finish()

    # ------------------------------------------------------------------ Milestones
    s = _Sheet(book, "Milestones", fmt)
    s.header(["milestone", "year", "due", "description", "status", "detail"])
    desc = {m["id"]: m.get("description", "") for m in d.ruleset.get("milestones") or []}
    for m in d.milestones:
        s.write(
            [m["milestone"], m["year"], dt.date.fromisoformat(m["due"]), desc.get(m["milestone"], ""), m["status"], m["detail"]]
        )
    counts["Milestones"] = len(d.milestones)
    s.finish()

    # ------------------------------------------------------------------ cohorts
    for year, period in d.ruleset["periods"].items():
        if year not in {c["year"] for c in d.components}:
            continue
        name = _cohort_sheet_name(period["label"])
        s = _Sheet(book, name, fmt, identifiable=True)
        s.header(["nhs_number", "why"])
        n = 0
        for row in cohort_members(db, rid, year):
            s.write([row["patient_id"], row["reason"]], ["text", "text"])
            n += 1
        if basis.year(year).status:
            s.write([f"{period['label']}: {basis.year(year).status}: no cohort yet"], ["text"])
        counts[name] = n
        s.finish()

    # ------------------------------------------------------------------ work-lists
    s = _Sheet(book, "Work-lists", fmt, identifiable=True)
    s.header(["component", "next band", "more needed", "worth", "entity", "id", "status", "why"])
    n = 0
    for wl in work_lists(db, rid):
        st = wl.step
        for item in wl.items:
            s.write(
                [
                    st.component,
                    st.band,
                    st.more_needed,
                    st.worth if st.worth is not None else NO_CONTRACT_VALUE,
                    item.entity,
                    item.subject_id,
                    item.status,
                    item.why,
                ],
                ["text", "text", "", "money", "text", "text", "text", "text"],
            )
            n += 1
    counts["Work-lists"] = n
    s.finish()

    # ------------------------------------------------------------------ rejections
    s = _Sheet(book, "Rejections", fmt, identifiable=True)
    s.header(["file", "line", "column", "value", "reason"])
    limit = EXCEL_MAX_ROWS - s.row - 1
    total = 0
    for row in db.query(
        "SELECT file, line, column_name, value, reason FROM run_rejections WHERE run_id = ? ORDER BY file, line", [rid]
    ):
        total += 1
        if total <= limit:
            s.write(
                [row["file"], row["line"], row["column_name"], row["value"], row["reason"]], ["text", "", "text", "text", "text"]
            )
    if total > limit:
        s.write([f"… and {total - limit:,} more rejected rows (Excel holds {EXCEL_MAX_ROWS:,} rows; all are in the audit store)"])
    counts["Rejections"] = min(total, limit)
    s.finish()

    # ------------------------------------------------------------------ breakdowns
    s = _Sheet(book, "Breakdowns", fmt)
    b = d.breakdowns
    n = 0
    if not b:
        s.write(["These breakdowns were not recorded with this run."])
    else:
        pops = [p for p in b["populations"] if p in d.ruleset["populations"]]
        s.header(["dimension", "value"] + [d.ruleset["populations"][p]["label"] for p in pops])
        for dim in b["dimensions"].values():
            for v in dim["values"]:
                s.write([dim["label"], v["label"]] + [int(dim["counts"].get(p, {}).get(v["id"], 0)) for p in pops])
                n += 1
    counts["Breakdowns"] = n
    s.finish()

    # ------------------------------------------------------------------ care plans
    counts["Care plans"] = _care_plans_sheet(_Sheet(book, "Care plans", fmt), d.breakdowns, d.ruleset)
    book.close()
    return counts


def _care_plans_sheet(s: _Sheet, breakdowns: dict[str, Any] | None, ruleset: dict[str, Any]) -> int:
    """The report's care-plan tables, exact; a count of 1 to 7 (and a percentage of one) is shaded and its column
    named in the last column, since disclosure control would suppress it.  Returns the number of table rows."""
    from cquin.report import careplans

    views = careplans.views_of(breakdowns)
    if isinstance(views, str) or views is None:
        s.write([views or careplans.NO_VIEWS])
        s.finish()
        return 0
    v = careplans.build(views, ruleset)
    s.ws.write_string(0, 0, "What care plans say", s.fmt["title"])
    s.ws.write_string(1, 0, f"Counts are exact. Shaded counts, named in the column '{SMALL_COLUMN}', are {careplans.SMALL_NOTE}.")
    s.row = 2
    for label, value, kind in (
        ("care plans", v.plans.n, ""),
        ("patients", v.patients.n, ""),
        ("plans shared with the patient", v.plans_shared.n, ""),
        ("share of plans shared with the patient", v.shared_percent.fraction, "percent"),
        ("entries dated from", dt.date.fromisoformat(v.within[0]), ""),
        ("entries dated to", dt.date.fromisoformat(v.within[1]), ""),
    ):
        s.write([label, value], ["text", kind])
    n = 0
    for t in v.tables:
        s.row += 1
        s.ws.write_string(s.row, 0, t.title, s.fmt["head"])
        s.row += 1
        if t.note:
            s.ws.write_string(s.row, 0, t.note)  # a note: it does not widen the column
            s.row += 1
        cols = [*t.columns, SMALL_COLUMN]
        for i, head in enumerate(cols):
            s.ws.write_string(s.row, i, head, s.fmt["head"])
            s.widths[i] = max(s.widths.get(i, 0), min(len(head), 24))
        s.row += 1
        for r in t.rows:
            smalls = [t.columns[i] for i, c in enumerate(r) if isinstance(c, careplans.Count | careplans.Percent) and c.small]
            for i, c in enumerate(r):
                if isinstance(c, careplans.Count):
                    s.ws.write_number(s.row, i, c.n, s.fmt["small" if c.small else "int"])
                elif isinstance(c, careplans.Percent):
                    if c.fraction is None:
                        s.ws.write_blank(s.row, i, None)
                    else:
                        s.ws.write_number(s.row, i, float(c.fraction), s.fmt["small_percent" if c.small else "percent"])
                else:
                    s._cell(s.row, i, c, "text")
            s._cell(s.row, len(r), ", ".join(smalls), "text")
            s.row += 1
            n += 1
    s.finish()
    return n
