"""Evaluation results as a rich table, one JSON document, or CSV."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.dataset import CanonicalDataset
from cquin.engine.evaluation import RunResult
from cquin.engine.evidence import pseudonymous_notice
from cquin.engine.evidence import summary as evidence_summary
from cquin.engine.ruleset import Ruleset

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def selected_years(ruleset: Ruleset, year: str) -> list[str]:
    """The period ids for ``--year 1|2|all``."""
    years = ruleset.years()
    if year == "all":
        return years
    return [years[int(year) - 1]]


def result_document(run_id: str | None, result: RunResult, dataset: CanonicalDataset, years: list[str]) -> dict[str, Any]:
    """The JSON document ``cquin evaluate --format json`` prints (missing evidence first)."""
    gaps = [g for g in result.evidence_gaps if g.year in years]
    return {
        "identifiers": {"pseudonymous": dataset.pseudonymous is not None, "notice": pseudonymous_notice(dataset.pseudonymous)},
        "evidence_missing": {"summary": evidence_summary(gaps), "components": [g.as_dict() for g in gaps]},
        "run_id": run_id,
        "ruleset": {"id": result.ruleset_id, "version": result.ruleset_version, "sha256": result.ruleset_sha256},
        "as_of": result.as_of.isoformat() if result.as_of else None,
        "contract_values": {k: f"{v:.2f}" for k, v in result.contract_values.items() if k in years},
        "components": [c.as_dict() for c in result.components if c.year in years],
        "cohorts": dict(result.cohorts),
        "populations": dict(result.populations),
        "totals": {k: f"{v:.2f}" for k, v in result.totals.items() if k in years},
        "available": {k: f"{v:.2f}" for k, v in result.available.items() if k in years},
        "milestones": [
            {"id": m.id, "year": m.year, "due": m.due.isoformat(), "status": m.status, "detail": m.detail}
            for m in result.milestones
            if m.year in years
        ],
        "data_quality": {name: f.as_dict() for name, f in dataset.ledger.files.items()},
        "notes": list(dataset.ledger.notes),
        "overrides": result.override_notes,
        "carer_assessments": result.carer_assessments,
        "unmatched_codes": [{"code_system": s, "code": c, "count": n} for s, c, n in result.unmatched_codes[:50]],
    }


def result_csv(result: RunResult, years: list[str], *, disclosure_control: bool = True, pseudonymous: str | None = None) -> str:
    """One row per component, for spreadsheets (cells that could run as formulas are neutralised).

    With ``disclosure_control`` (the default: a CSV is made to be shared) counts are
    published as NHS Digital does (see :mod:`cquin.disclosure`), the percentage is
    that of the published counts, and the ``disclosure`` column says what was done.
    """
    from cquin.disclosure import publish, published_percent

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        [
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
            "disclosure",
            "evidence_missing",
            "identifiers",
        ]
    )
    identifiers = "pseudonymous: " + pseudonymous if pseudonymous else "NHS number"
    missing = {g.component: g.message for g in result.evidence_gaps}
    for c in result.components:
        if c.year in years:
            d = c.as_dict()
            num = publish(c.numerator, control=disclosure_control)
            den = publish(c.denominator, control=disclosure_control)
            pct = published_percent(c.numerator, c.denominator, control=disclosure_control)
            w.writerow(
                [
                    safe_cell(x)
                    for x in (
                        c.id,
                        c.year,
                        c.name,
                        num.text,
                        den.text,
                        pct,
                        c.band,
                        d["payment_fraction"],
                        d["share"],
                        d["available"],
                        d["payment"],
                        disclosure_marker({"numerator": num.marker, "denominator": den.marker}, disclosure_control),
                        missing.get(c.id, ""),
                        identifiers,
                    )
                ]
            )
    return buf.getvalue()


def disclosure_marker(markers: dict[str, str], control: bool) -> str:
    """The marker cell for a row: which counts were suppressed or rounded, or that control is off."""
    if not control:
        return "not applied (internal use)"
    done = [f"{name} {what}" for name, what in markers.items() if what]
    return "; ".join(done)


# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"), with their
# full-width forms, which some spreadsheets fold to the ASCII ones.
_FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_CONTROL_STARTS = frozenset("\t\r\n")


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will show as text, never run as a formula.

    A cell is neutralised (prefixed with ``'``) when it starts with a formula
    character, a tab, CR or LF, or when one follows leading white space (some
    spreadsheets trim it on import). Plain numbers such as ``-5`` are left alone.
    """
    if value is None:
        return ""
    text = str(value)
    if not text:
        return text
    first = text.lstrip()[:1]
    risky = text[0] in _CONTROL_STARTS or first in _FORMULA_STARTS
    if risky and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    """A plain decimal number (what a spreadsheet shows as a number, never a formula)."""
    return _NUMBER.fullmatch(text) is not None


def render_unmatched(console: Console, unmatched: list[tuple[str, str, int]], top: int = 10) -> None:
    """Codes in the data no code list knows: what the code lists may be missing."""
    if not unmatched:
        return
    total = sum(n for _, _, n in unmatched)
    shown = "; ".join(f"{escape(s)} {escape(c)} × {n:,}" for s, c, n in unmatched[:top])
    more = f" and {len(unmatched) - top:,} more" if len(unmatched) > top else ""
    console.print(f"codes no LTC code list knows: {len(unmatched):,} distinct, {total:,} rows — {shown}{more}")


def render_table(
    console: Console, run_id: str | None, result: RunResult, dataset: CanonicalDataset, years: list[str], ruleset: Ruleset
) -> None:
    if (notice := pseudonymous_notice(dataset.pseudonymous)) is not None:
        console.print(f"[bold yellow]{escape(notice)}[/]")
    render_evidence_missing(
        console,
        [g.message for g in result.evidence_gaps if g.year in years],
        evidence_summary([g for g in result.evidence_gaps if g.year in years]),
    )
    render_data_quality(console, dataset)
    render_unmatched(console, result.unmatched_codes)
    title = f"{escape(ruleset.title)} — {result.ruleset_id} {result.ruleset_version}"
    if result.as_of:
        title += f" — as of {result.as_of}"
    for year in years:
        label = ruleset.doc["periods"][year]["label"]
        table = Table(title=f"{title}\n{escape(label)}: value £{result.available[year]:,.2f}", title_justify="left")
        for col, just in (
            ("component", "left"),
            ("numerator/denominator", "right"),
            ("%", "right"),
            ("band reached", "left"),
            ("pays", "right"),
            ("share", "right"),
            ("£ earned", "right"),
        ):
            table.add_column(col, justify=just)  # type: ignore[arg-type]
        for c in result.components:
            if c.year != year:
                continue
            d = c.as_dict()
            ratio = "—" if c.numerator is None else f"{c.numerator:,}/{c.denominator:,}"
            pct = "—" if d["percent"] is None else d["percent"]
            band = escape(c.band)
            if c.next_band and c.next_band.get("more_needed") is not None:
                band += f"\n[dim]{c.next_band['more_needed']:,} more to reach {escape(c.next_band['band'])} (pays {float(c.next_band['pays']) * 100:g}%)[/]"
            table.add_row(
                f"{c.id}\n[dim]{escape(c.name)}[/]",
                ratio,
                pct,
                band,
                f"{float(c.payment_fraction) * 100:g}%",
                f"{float(c.share) * 100:g}%",
                f"{c.payment:,.2f}",
            )
        table.add_row("[bold]total[/]", "", "", "", "", "", f"[bold]{result.totals[year]:,.2f}[/]")
        console.print(table)
    cohorts = ", ".join(f"{k}: {v:,}" for k, v in result.cohorts.items())
    console.print(f"cohorts — {cohorts}; carer assessments counted separately: {result.carer_assessments:,}")
    for m in result.milestones:
        if m.year in years:
            colour = {"met": "green", "missed": "red"}.get(m.status, "yellow")
            console.print(f"milestone {m.id} (due {m.due}): [{colour}]{m.status}[/] — {escape(m.detail)}")
    for n in result.override_notes:
        console.print(f"[yellow]override {n['kind']}[/] ({escape(str(n['file']))} line {n['line']}): {escape(n['message'])}")
    if run_id:
        console.print(f"run [bold]{run_id}[/] stored; explain a patient with: cquin explain {run_id} NHS_NUMBER")


def render_evidence_missing(console: Console, messages: list[str], summary: list[str] | None = None) -> None:
    """Components with no evidence at all, first and in red: what is missing, what it costs, how to supply it."""
    for line in summary or []:
        console.print(f"[bold red]{escape(line)}[/]")
    for m in messages:
        console.print(f"[red]{escape(m)}[/]")


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
        for file, kind, n in summary[:15]:
            console.print(f"  {escape(file)}: {n:,} × {escape(kind)}")
        console.print("[dim]  (each rejected row, with its line and value, is kept in the audit store and by `cquin load`)[/]")
