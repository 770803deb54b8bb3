"""Several providers side by side: one row per provider, for the terminal (rich) and the combined HTML report."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any

import plotly.graph_objects as go
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.disclosure import applies_to, published_percent
from cquin.report import charts
from cquin.report.data import ReportData


def component_columns(items: list[tuple[str, ReportData]]) -> list[tuple[str, str]]:
    """(component id, name) in the order of the first run's components."""
    seen: dict[str, str] = {}
    for _, d in items:
        for c in d.components:
            seen.setdefault(c["component"], c["name"])
    return list(seen.items())


def years(items: list[tuple[str, ReportData]]) -> list[str]:
    out: list[str] = []
    for _, d in items:
        for c in d.components:
            if c["year"] not in out:
                out.append(c["year"])
    return out


def cell(d: ReportData, component: str, control: bool) -> tuple[str, str]:
    """(percentage or '—', band reached) for one provider's component."""
    c = next((c for c in d.components if c["component"] == component), None)
    if c is None:
        return "—", ""
    if c["numerator"] is None:
        return "—", c["band"]
    control = applies_to(c.get("entity"), control)  # staff counts are never altered
    pct = published_percent(c["numerator"], c["denominator"], control=control)
    return (f"{pct}%" if pct is not None else "*" if control else "—"), c["band"]


def earned_share(d: ReportData, year: str) -> Fraction:
    """The share of the year's value earned (sum of component share x band payment)."""
    return sum((Fraction(c["share"]) * Fraction(c["payment_fraction"]) for c in d.components if c["year"] == year), Fraction(0))


def render_comparison_table(console: Console, items: list[tuple[str, ReportData]], *, control: bool = False) -> None:
    """One column per provider; a row per component (percentage and band), then each year's earnings and the run id."""
    table = Table(title="Providers compared", title_justify="left")
    table.add_column("component")
    for name, _ in items:
        table.add_column(escape(name), justify="right")
    for cid, cname in component_columns(items):
        cells = []
        for _, d in items:
            pct, band = cell(d, cid, control)
            cells.append(f"{pct}\n[dim]{escape(band)}[/]")
        table.add_row(f"{escape(cid)}\n[dim]{escape(cname)}[/]", *cells)
    for y in years(items):
        cells = [
            f"{float(earned_share(d, y)) * 100:.1f}%\n[dim]£{Decimal(d.totals.get(y, '0')):,.2f} of £{Decimal(d.available.get(y, '0')):,.2f}[/]"
            for _, d in items
        ]
        table.add_row(f"[bold]{escape(y)} earned[/]", *cells)
    table.add_row("run id", *[d.run_id for _, d in items])
    console.print(table)
    if control:
        console.print(
            "[dim]published: patient percentages are of counts under disclosure control (* = a count of 1-7 suppressed)[/]"
        )


def comparison_figure(items: list[tuple[str, ReportData]], *, control: bool) -> go.Figure:
    """Each provider's percentage per ratio component, side by side."""
    cols = [(cid, name) for cid, name in component_columns(items) if any(_is_ratio(d, cid) for _, d in items)]
    fig = go.Figure()
    for name, d in items:
        ys = []
        for cid, _ in cols:
            pct, _band = cell(d, cid, control)
            ys.append(float(pct.rstrip("%")) if pct.endswith("%") else None)
        fig.add_bar(x=[cid for cid, _ in cols], y=ys, name=name, text=[f"{y:.1f}%" if y is not None else "*" for y in ys])
    fig.update_yaxes(range=[0, 105], ticksuffix="%", gridcolor="#e5e7eb")
    return charts._layout(
        fig, height=420, barmode="group", title="Component percentages by provider", legend={"orientation": "h", "y": -0.2}
    )


def _is_ratio(d: ReportData, cid: str) -> bool:
    spec: dict[str, Any] = next((c for c in d.ruleset["components"] if c["id"] == cid), {})
    return "denominator" in spec and spec.get("bands_on") != "numerator_count"
