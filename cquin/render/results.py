"""Evaluation results as a rich table, one JSON document, or CSV.

Longer than most because the terminal table, the JSON document and the CSV of one result share their cell and disclosure rules.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.dataset import CanonicalDataset
from cquin.engine.evaluation import RunResult
from cquin.engine.evidence import pseudonymous_notice
from cquin.engine.evidence import summary as evidence_summary
from cquin.engine.money import decimal_text
from cquin.engine.outcome import NO_CONTRACT_VALUE
from cquin.engine.ruleset import Ruleset
from cquin.outfile import safe_cell


def selected_years(ruleset: Ruleset, year: str) -> list[str]:
    """The period ids for ``--year 1|2|all``."""
    years = ruleset.years()
    if year == "all":
        return years
    return [years[int(year) - 1]]


def result_document(
    run_id: str | None, result: RunResult, dataset: CanonicalDataset, years: list[str], *, publish: bool = False
) -> dict[str, Any]:
    """The JSON document ``cquin evaluate --format json`` prints: exact counts, unless ``publish`` (patient counts only)."""
    from cquin.disclosure import RULE_TEXT

    given = result.contract_value_given
    components = []
    for c in result.components:
        if c.year not in years:
            continue
        d = c.as_dict()
        if not given:
            d["available"] = d["payment"] = None
        cells = published_cells(c, publish)
        if publish:
            d["numerator"], d["denominator"], d["percent"] = cells["numerator"], cells["denominator"], cells["percent"]
            d["disclosure"] = cells["disclosure"]
        components.append(d)
    basis = result.basis.as_dict() if result.basis is not None else None
    if basis is not None:
        basis["years"] = [y for y in basis["years"] if y["year"] in years]
    gaps = [g for g in result.evidence_gaps if g.year in years]
    return {
        "identifiers": {"pseudonymous": dataset.pseudonymous is not None, "notice": pseudonymous_notice(dataset.pseudonymous)},
        "evidence_missing": {"summary": evidence_summary(gaps), "components": [g.as_dict() for g in gaps]},
        "run_id": run_id,
        "ruleset": {"id": result.ruleset_id, "version": result.ruleset_version, "sha256": result.ruleset_sha256},
        "as_of": result.as_of.isoformat() if result.as_of else None,
        "counts": "published: patient counts under disclosure control (" + RULE_TEXT + ")" if publish else "exact",
        "contract_values": {
            k: (None if v is None else f"{v:.2f}") for k, v in result.stated_contract_values.items() if k in years
        },
        "basis": basis,
        "components": components,
        "cohorts": {k: _count(v, publish) for k, v in result.cohorts.items() if k in years or k not in result.available},
        "populations": {k: _count(v, publish and _entity(result, k) == "patient") for k, v in result.populations.items()},
        "totals": {k: f"{v:.2f}" if given else None for k, v in result.totals.items() if k in years},
        "available": {k: f"{v:.2f}" if given else None for k, v in result.available.items() if k in years},
        "year_status": {k: v for k, v in result.year_status.items() if k in years},
        "milestones": [
            {"id": m.id, "year": m.year, "due": m.due.isoformat(), "status": m.status, "detail": "" if publish else m.detail}
            for m in result.milestones
            if m.year in years
        ],
        "data_quality": {name: f.as_dict() for name, f in dataset.ledger.files.items()},
        "notes": list(dataset.ledger.notes),
        "overrides": [] if publish else result.override_notes,
        "carer_assessments": _count(result.carer_assessments, publish),
        "unmatched_codes": [{"code_system": s, "code": c, "count": n} for s, c, n in result.unmatched_codes[:50]],
    }


def _count(n: int, publish: bool) -> int | str:
    from cquin.disclosure import publish as published

    p = published(n, control=publish)
    return p.text if p.value is None else p.value


def _entity(result: RunResult, population: str) -> str | None:
    return result.population_entities.get(population)


def published_cells(c: Any, publish: bool) -> dict[str, Any]:
    """A component's numerator, denominator and percentage as an output shows them, with the disclosure marker.

    Exact unless ``publish``; then only a count of patients is published under disclosure control (staff counts
    never are), the percentage is that of the published counts, and ``disclosure`` says what was done to which cell.
    """
    from cquin.disclosure import applies_to, published_percent
    from cquin.disclosure import publish as published

    control = applies_to(c.entity, publish)
    num, den = published(c.numerator, control=control), published(c.denominator, control=control)
    pct = published_percent(c.numerator, c.denominator, control=control) if c.numerator is not None else None
    marker = ""
    if control:
        marker = "; ".join(f"{name} {p.marker}" for name, p in (("numerator", num), ("denominator", den)) if p.marker)
        if pct is None and c.numerator is not None:
            marker += "; percent not shown (a count is suppressed)"
    elif publish and c.entity == "staff":
        marker = "staff counts: exact (not patients)"
    return {
        "numerator": num.value if num.value is not None or c.numerator is None else num.text,
        "denominator": den.value if den.value is not None or c.denominator is None else den.text,
        "numerator_text": num.text,
        "denominator_text": den.text,
        "percent": pct,
        "disclosure": marker,
    }


def _money_cell(amount: Decimal | None, given: bool) -> str:
    return f"{amount:.2f}" if given and amount is not None else NO_CONTRACT_VALUE


def result_csv(result: RunResult, years: list[str], *, publish: bool = False, pseudonymous: str | None = None) -> str:
    """One row per component, then each year's total and the grand total, for spreadsheets.

    Counts are exact (the figures the bands were decided on); with ``publish``,
    counts of patients are published under disclosure control (see
    :mod:`cquin.disclosure`) and the ``disclosure`` column marks every altered cell.
    Cells that could run as formulas are neutralised. Each row says which identifiers the run used
    (``pseudonymous``) and, for a component with no evidence at all, what is missing.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    given = result.contract_value_given
    identifiers = "pseudonymous: " + pseudonymous if pseudonymous else "NHS number"
    missing = {g.component: g.message for g in result.evidence_gaps}
    for c in result.components:
        if c.year in years:
            d = c.as_dict()
            cells = published_cells(c, publish)
            step = c.next_step
            w.writerow(
                [
                    safe_cell(x)
                    for x in (
                        c.id,
                        c.year,
                        c.name,
                        cells["numerator_text"],
                        cells["denominator_text"],
                        cells["percent"],
                        c.band,
                        d["payment_fraction"],
                        d["share"],
                        _money_cell(c.available, given),
                        _money_cell(c.payment, given),
                        step.band if step else "",
                        "" if step is None or step.more_needed is None else _published_more(step, publish),
                        "" if step is None else _money_cell(step.worth, given),
                        cells["disclosure"],
                        missing.get(c.id, ""),
                        identifiers,
                    )
                ]
            )
    if result.basis is not None:
        for y in result.basis.years:
            if y.year in years:
                w.writerow(
                    ["total", y.year, f"{y.label} total" + (f" ({y.status})" if y.status else "")]
                    + [""] * 4
                    + [decimal_text(y.earned_share), "1"]
                    + [_money_cell(y.available, given), _money_cell(y.earned, given), "", "", "", ""]
                    + ["", identifiers]
                )
        if len(years) > 1:
            b = result.basis
            w.writerow(
                ["total", "all", "Grand total"]
                + [""] * 6
                + [_money_cell(b.available, given), _money_cell(b.earned, given), "", "", "", ""]
                + ["", identifiers]
            )
    return buf.getvalue()


def _published_more(step: Any, publish: bool) -> str:
    from cquin.disclosure import applies_to
    from cquin.disclosure import publish as published

    return published(step.more_needed, control=applies_to(step.entity, publish)).text


# A component's stored figures, in the order every tabular output lists them.
COMPONENT_FIELDS = (
    "component",
    "year",
    "name",
    "numerator",
    "denominator",
    "percent",
    "band",
    "payment_fraction",
    "share",
    "available",
    "payment",
)
CSV_COLUMNS = [
    *COMPONENT_FIELDS,
    "next_band",
    "more_needed",
    "next_band_worth",
    "disclosure",
    "evidence_missing",
    "identifiers",
]


def render_unmatched(console: Console, unmatched: list[tuple[str, str, int]], top: int = 10) -> None:
    """Codes in the data no code list knows: what the code lists may be missing."""
    if not unmatched:
        return
    total = sum(n for _, _, n in unmatched)
    shown = "; ".join(f"{escape(s)} {escape(c)} × {n:,}" for s, c, n in unmatched[:top])
    more = f" and {len(unmatched) - top:,} more" if len(unmatched) > top else ""
    console.print(f"codes no LTC code list knows: {len(unmatched):,} distinct, {total:,} rows — {shown}{more}")


WIDE = 110  # from this width the table has a column for each figure; below it, figures share cells


def render_table(
    console: Console,
    run_id: str | None,
    result: RunResult,
    dataset: CanonicalDataset,
    years: list[str],
    ruleset: Ruleset,
    *,
    verbose: bool = False,
) -> None:
    """Money and bands first, whole at any width from 80 columns; then milestones, then a short load summary.

    The layout changes with the width; numbers are never cut (their columns do not wrap and are as wide as
    their widest figure).  ``verbose`` prints the whole load report instead of its summary.
    """
    if (notice := pseudonymous_notice(dataset.pseudonymous)) is not None:
        console.print(f"[bold yellow]{escape(notice)}[/]")
    render_evidence_missing(
        console,
        [g.message for g in result.evidence_gaps if g.year in years],
        evidence_summary([g for g in result.evidence_gaps if g.year in years]),
    )
    title = f"[bold]{escape(ruleset.title)}[/] — {result.ruleset_id} {result.ruleset_version}"
    title += f" — as of {result.as_of}" if result.as_of else " — all records"
    console.print(title)
    basis = result.basis
    wide = console.width >= WIDE
    for year in years:
        label = ruleset.period_label(year)
        yb = basis.year(year) if basis is not None else None
        if yb is not None and yb.status:
            begins = ruleset.period(year)[0]
            console.print(
                f"\n[bold]{escape(label)}: {yb.status}[/] (begins {begins}; as of {result.as_of}): no cohort, no money yet"
            )
            continue
        if yb is not None and yb.contract_value is not None:
            head = (
                f"[bold]{escape(label)}: £{yb.earned:,.2f} earned of £{yb.available:,.2f} available[/] "
                f"({float(yb.earned_share) * 100:.1f}%)\n[dim]contract value £{yb.contract_value:,.2f} x "
                f"{basis.weighting_percent}% weighting[/]"  # type: ignore[union-attr]
            )
        else:
            share = float(yb.earned_share) * 100 if yb is not None else 0.0
            head = f"[bold]{escape(label)}: {share:.1f}% of the year's value earned[/] ({NO_CONTRACT_VALUE})"
        console.print("\n" + head)
        console.print(_year_table(result, year, wide))
    if basis is not None and basis.earned is not None and len(years) > 1:
        console.print(f"[bold]Total: £{basis.earned:,.2f} earned of £{basis.available:,.2f} available[/]")
    cohorts = ", ".join(f"{k}: {v:,}" for k, v in result.cohorts.items() if k in years or not ruleset.has_period(k))
    if cohorts:
        console.print(f"cohorts — {cohorts}; carer assessments counted separately: {result.carer_assessments:,}")
    for m in result.milestones:
        if m.year in years:
            colour = {"met": "green", "missed": "red"}.get(m.status, "yellow")
            console.print(f"milestone {m.id} (due {m.due}): [{colour}]{m.status}[/] — {escape(m.detail)}")
    others = [y for y in ruleset.years() if y not in years]
    notes = [n for n in result.override_notes if not any(f" {y} cohort" in n["message"] for y in others)]
    for n in notes[: None if verbose else 5]:
        console.print(f"[yellow]override {n['kind']}[/] ({escape(str(n['file']))} line {n['line']}): {escape(n['message'])}")
    if not verbose and len(notes) > 5:
        console.print(f"[dim]… and {len(notes) - 5:,} more override notes (--verbose shows them all)[/]")
    console.print()
    if verbose:
        render_data_quality(console, dataset)
        render_unmatched(console, result.unmatched_codes, top=len(result.unmatched_codes))
    else:
        render_load_summary(console, dataset, result.unmatched_codes)
    if run_id:
        console.print(f"run [bold]{run_id}[/] stored; explain a patient with: cquin explain {run_id} NHS_NUMBER")


def render_evidence_missing(console: Console, messages: list[str], summary: list[str] | None = None) -> None:
    """Components with no evidence at all, first and in red: what is missing, what it costs, how to supply it."""
    for line in summary or []:
        console.print(f"[bold red]{escape(line)}[/]")
    for m in messages:
        console.print(f"[red]{escape(m)}[/]")


def _year_table(result: RunResult, year: str, wide: bool) -> Table:
    if wide:
        table = Table(box=box.HEAVY_HEAD, pad_edge=False)
    else:  # no outer edge, one space between columns: every figure fits in 80 columns
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True, padding=(0, 1))
    rows = [c for c in result.components if c.year == year]
    given = result.contract_value_given
    money = [f"{c.payment:,.2f}" if given else "—" for c in rows]
    nums = ["—" if c.numerator is None else f"{c.numerator:,}" for c in rows]
    dens = ["" if c.denominator is None else f"{c.denominator:,}" for c in rows]
    pcts = ["—" if c.percent is None else c.percent for c in rows]

    def fixed(col: str, cells: list[str], **kw: Any) -> None:
        # A figure column never wraps and is never narrower than its widest figure.
        width = max([len(col)] + [len(x) for cell in cells for x in cell.split("\n")])
        table.add_column(col, justify="right", no_wrap=True, width=width, **kw)

    table.add_column("component", overflow="fold", min_width=max([len(c.id) for c in rows] + [9]))
    fixed("£ earned", money)
    table.add_column("band reached", overflow="fold")
    if wide:
        fixed("numerator", nums)
        fixed("denominator", dens)
        fixed("%", pcts)
        fixed("pays", [f"{float(c.payment_fraction) * 100:g}%" for c in rows])
        fixed("share", [f"{float(c.share) * 100:g}%" for c in rows])
    else:
        counted = [n if not d else f"{n}\nof {d}" for n, d in zip(nums, dens, strict=True)]
        fixed("counted", counted)
        fixed("%", pcts)
    for c, m, n, d, pct in zip(rows, money, nums, dens, pcts, strict=True):
        band = escape(c.band)
        if not wide:
            band += f"\n[dim]pays {float(c.payment_fraction) * 100:g}% of a {float(c.share) * 100:g}% share[/]"
        if c.next_step is not None:
            band += f"\n[cyan]next: {escape(c.next_step.text())}[/]"
        name = f"{escape(c.id)}\n[dim]{escape(c.name)}[/]"
        if wide:
            table.add_row(name, m, band, n, d, pct, f"{float(c.payment_fraction) * 100:g}%", f"{float(c.share) * 100:g}%")
        else:
            table.add_row(name, m, band, n if not d else f"{n}\nof {d}", pct)
    return table


def render_load_summary(console: Console, dataset: CanonicalDataset, unmatched: list[tuple[str, str, int]]) -> None:
    """The load report in a few lines: files, rows read/accepted/rejected, the commonest reasons."""
    files = list(dataset.ledger.files.values())
    read = sum(f.read for f in files)
    accepted = sum(f.accepted for f in files)
    rejected = sum(f.rejected for f in files)
    bad = [f for f in files if f.rejected]
    line = f"data: {len(files)} files, {read:,} rows read, {accepted:,} accepted, {rejected:,} rejected"
    if bad:
        line += " (" + ", ".join(f"{escape(f.name)} {f.rejected:,}" for f in bad[:4])
        line += f" and {len(bad) - 4} more files)" if len(bad) > 4 else ")"
    console.print(line)
    summary = sorted(dataset.ledger.reasons_summary(), key=lambda r: -r[2])
    for file, kind, n in summary[:3]:
        console.print(f"  {n:,} × {escape(kind)} ({escape(file)})")
    if len(summary) > 3:
        console.print(f"  … and {len(summary) - 3:,} more kinds of rejection")
    if unmatched:
        total = sum(n for _, _, n in unmatched)
        console.print(f"codes no LTC code list knows: {len(unmatched):,} distinct, {total:,} rows")
    if dataset.ledger.notes:
        console.print(f"{len(dataset.ledger.notes):,} load notes")
    console.print("[dim]--verbose shows the whole load report; every rejected row is kept in the audit store[/]")


def render_data_quality(console: Console, dataset: CanonicalDataset) -> None:
    table = Table(title="Data loaded", title_justify="left")
    for col in ("file", "read", "accepted", "rejected"):
        table.add_column(col, justify="left" if col == "file" else "right")
    for f in dataset.ledger.files.values():
        table.add_row(escape(f.name), f"{f.read:,}", f"{f.accepted:,}", f"[red]{f.rejected:,}[/]" if f.rejected else "0")
    console.print(table)
    for note in dataset.ledger.notes:
        console.print(f"[dim]note: {escape(note)}[/]")
    summary = dataset.ledger.reasons_summary()
    if summary:
        console.print("rejections by reason:")
        for file, kind, n in summary:
            console.print(f"  {escape(file)}: {n:,} × {escape(kind)}")
        console.print("[dim]  (each rejected row, with its line and value, is kept in the audit store and by `cquin load`)[/]")
