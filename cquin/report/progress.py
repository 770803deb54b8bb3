"""The report's "progress over the year" section: one provider's runs at each as-of date, as a chart and a table.

The points are the provider's stored runs (the latest for each as-of date, superseded runs left out; see
:func:`cquin.cycle.compare.provider_progress`), so a report made after the Q4 run shows Q2, Q3 and Q4 side
by side.  Counts are published under disclosure control like every other count on the page.
"""

from __future__ import annotations

import html
from decimal import Decimal
from typing import Any

import plotly.graph_objects as go

from cquin.cycle.compare import ProgressPoint
from cquin.disclosure import publish, published_percent


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _label(p: ProgressPoint) -> str:
    return p.as_of or "all records"


def progress_figure(points: list[ProgressPoint], *, control: bool) -> go.Figure:
    """Each ratio component's percentage (of the published counts) at each as-of date."""
    fig = go.Figure()
    xs = [_label(p) for p in points]
    comps = list(dict.fromkeys(cid for p in points for cid, row in p.components.items() if row["numerator"] is not None))
    for cid in comps:
        ys = []
        for p in points:
            row = p.components.get(cid)
            pct = published_percent(row["numerator"], row["denominator"], control=control) if row else None
            ys.append(float(pct) if pct is not None else None)
        fig.add_scatter(x=xs, y=ys, mode="lines+markers", name=cid, connectgaps=False)
    fig.update_yaxes(title="% of the denominator", range=[0, 100], gridcolor="#e5e7eb")
    fig.update_layout(
        height=380,
        margin={"l": 10, "r": 20, "t": 10, "b": 30},
        plot_bgcolor="white",
        paper_bgcolor="white",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def progress_table(points: list[ProgressPoint], current: str, *, control: bool) -> str:
    """Component by as-of date: published counts, percentage and payment; the report's own run marked."""
    head = "".join(
        f'<th class="n">{_e(_label(p))}{" (this run)" if p.run_id == current else ""}<br>'
        f'<span class="muted">{_e(p.run_id)}</span></th>'
        for p in points
    )
    comps = list(dict.fromkeys(cid for p in points for cid in p.components))
    rows = []
    for cid in comps:
        cells = []
        for p in points:
            row = p.components.get(cid)
            if row is None:
                cells.append('<td class="n">—</td>')
                continue
            if row["numerator"] is None:
                text = _e(row["band"])
            else:
                num, den = publish(row["numerator"], control=control), publish(row["denominator"], control=control)
                pct = published_percent(row["numerator"], row["denominator"], control=control)
                text = f"{_e(num.text)} / {_e(den.text)}" + (f" ({_e(pct)}%)" if pct else "")
            cells.append(f'<td class="n">{text}<br><span class="muted">£{Decimal(row["payment"]):,.2f}</span></td>')
        rows.append(f"<tr><td>{_e(cid)}</td>{''.join(cells)}</tr>")
    signoff = "".join(f'<td class="n">{_e(p.signoff)}</td>' for p in points)
    rows.append(f"<tr><td>sign-off</td>{signoff}</tr>")
    return f"<table><thead><tr><th>component</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
