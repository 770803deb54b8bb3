"""The report's charts, drawn with Plotly from a stored run's figures (published counts only).

Each function returns a :class:`plotly.graph_objects.Figure`; the page embeds them with one inlined copy of
plotly.js's *basic* bundle (bar and scatter traces only: see :mod:`cquin.report.page`), so the report opens
offline.  Bands and funnels are drawn in HTML and CSS instead (:mod:`cquin.report.page`): their labels then
wrap inside their own boxes and can never overlap, on screen or on paper.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from cquin.disclosure import publish, published_fraction
from cquin.report.data import ReportData

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
WIDTH = 700  # px: fits an A4 page's printable width (190 mm) at 96 dpi, so printed charts are never cut
# Colour-blind-safe series colours (Okabe-Ito).
SERIES = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")


def pay_colour(pays: Fraction) -> str:
    """Red for a band that pays nothing, through amber, to green for one that pays in full."""
    return str(sample_colorscale("RdYlGn", [float(pays)])[0])


def _layout(fig: go.Figure, *, height: int, width: int | None = None, title: str | None = None, **extra: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        width=width,
        autosize=width is None,
        title={"text": title, "x": 0, "font": {"size": 15}} if title else None,
        margin={"l": 10, "r": 20, "t": 40 if title else 10, "b": 30},
        font={"family": FONT, "size": 12},
        plot_bgcolor="white",
        paper_bgcolor="white",
        **extra,
    )
    return fig


def rates_figure(dimension: dict[str, Any], comps: list[tuple[str, str, str]], *, control: bool, width: int = WIDTH) -> go.Figure:
    """One dimension's values (rows) with each component's rate (numerator/denominator) as a bar, side by side.

    ``comps`` is (title, denominator population, numerator population).  The bar's label is the rate; hovering
    shows the counts.  Under disclosure control the rate is of the published counts, and no bar is drawn where
    a count is suppressed.
    """
    from plotly.subplots import make_subplots

    values = dimension["values"]
    labels = [v["label"] for v in values]
    fig = make_subplots(
        rows=1, cols=len(comps), shared_yaxes=True, horizontal_spacing=0.03, subplot_titles=[_wrap(t, 30) for t, _, _ in comps]
    )
    for k, (_, den_pop, num_pop) in enumerate(comps, start=1):
        xs, texts, hovers = [], [], []
        for v in values:
            den = dimension["counts"].get(den_pop, {}).get(v["id"], 0)
            num = dimension["counts"].get(num_pop, {}).get(v["id"], 0)
            frac = published_fraction(num, den, control=control)
            pn, pd = publish(num, control=control), publish(den, control=control)
            xs.append(None if frac is None else float(frac * 100))
            texts.append("" if frac is None else f"{float(frac * 100):.0f}%")
            hovers.append(f"{v['label']}: {_fmt(pn)} of {_fmt(pd)}" + ("" if frac is None else f" ({float(frac * 100):.1f}%)"))
        fig.add_bar(
            row=1,
            col=k,
            orientation="h",
            x=xs,
            y=labels,
            text=texts,
            textposition="outside",
            cliponaxis=False,
            hovertext=hovers,
            hoverinfo="text",
            marker_color=SERIES[(k - 1) % len(SERIES)],
            showlegend=False,
        )
        fig.update_xaxes(
            row=1, col=k, range=[0, 125], showticklabels=False, showgrid=False, zeroline=True, zerolinecolor="#9ca3af"
        )
    fig.update_yaxes(autorange="reversed", automargin=True, tickfont={"size": 11})
    fig.update_annotations(font={"size": 11}, yshift=4)
    fig = _layout(fig, height=48 + 17 * len(values), width=width, bargap=0.2)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 4})
    return fig


def _wrap(text: str, at: int) -> str:
    """Break a label into lines of at most ``at`` characters at spaces (Plotly wraps only at <br>)."""
    words, lines, line = text.split(), [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > at:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append(line)
    return "<br>".join(lines)


def quarters_figure(data: ReportData, *, control: bool, width: int = WIDTH) -> go.Figure:
    """Conversations and assessments by quarter (milestones are listed in the table beside it)."""
    quarters = (data.breakdowns or {}).get("quarters") or []
    periods = data.ruleset["periods"]
    xs = [f"{q['quarter']}<br>{periods[q['period']]['label'].split(' (')[-1].rstrip(')')}" for q in quarters]
    fig = go.Figure()
    for key, name, colour in (
        ("conversations", "Care and support planning conversations", SERIES[0]),
        ("assessments", "Activation assessments (patient's own)", SERIES[1]),
    ):
        shown = [publish(q[key], control=control) for q in quarters]
        fig.add_bar(
            x=xs,
            y=[p.value for p in shown],
            name=name,
            marker_color=colour,
            hovertext=[f"{name}: {_fmt(p)}" for p in shown],
            hoverinfo="x+text",
        )
    fig.update_yaxes(gridcolor="#e5e7eb", rangemode="tozero")
    return _layout(fig, height=220, width=width, barmode="group", legend={"orientation": "h", "y": 1.15, "x": 0})


def next_band(row: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(row["next_band"]) if row.get("next_band") else None


def _fmt(p: Any) -> str:
    return p.text if p.value is None else f"{p.value:,}"


def care_needs_figure(needs: list[dict[str, Any]], *, control: bool, width: int = WIDTH) -> go.Figure:
    """Each category's patients with a support need, split into met (a referral or action followed) and unmet.

    ``needs`` is (label, met, unmet) per category, as :func:`cquin.report.careplans.build` gives them; under
    disclosure control the bars are the published counts, and a suppressed count draws no bar.
    """
    labels = [r["label"] for r in needs]
    fig = go.Figure()
    for key, name, colour in (("met", "met", SERIES[2]), ("unmet", "unmet", SERIES[5])):
        shown = [publish(r[key], control=control) for r in needs]
        fig.add_bar(
            orientation="h",
            x=[p.value for p in shown],
            y=labels,
            name=name,
            marker_color=colour,
            hovertext=[f"{lab}: {_fmt(p)} {name}" for lab, p in zip(labels, shown, strict=True)],
            hoverinfo="text",
        )
    fig.update_yaxes(autorange="reversed", automargin=True, tickfont={"size": 11})
    fig.update_xaxes(gridcolor="#e5e7eb", rangemode="tozero", title_text="patients with the need")
    return _layout(
        fig,
        height=70 + 22 * len(needs),
        width=width,
        barmode="stack",
        legend={"orientation": "h", "y": 1.08, "x": 0, "traceorder": "normal"},
    )


def care_mix_figure(mix: list[dict[str, Any]], labels: dict[str, str], *, control: bool, width: int = WIDTH) -> go.Figure:
    """Patients with a goal (left) and with an action (right) in each category, quarter by quarter, stacked by category."""
    from plotly.colors import qualitative
    from plotly.subplots import make_subplots

    colours = list(qualitative.Safe) + list(qualitative.Bold)
    xs = [m["label"].replace(" 20", "<br>", 1) for m in mix]  # "Q1 2017/18" -> "Q1<br>17/18"
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=["Goals", "Actions"])
    for k, key in enumerate(("goals", "actions"), start=1):
        for i, (cid, label) in enumerate(labels.items()):
            shown = [publish(int(m[key].get(cid, 0)), control=control) for m in mix]
            fig.add_bar(
                row=1,
                col=k,
                x=xs,
                y=[p.value for p in shown],
                name=label,
                legendgroup=cid,
                showlegend=k == 1,
                marker_color=colours[i % len(colours)],
                hovertext=[f"{label}: {_fmt(p)}" for p in shown],
                hoverinfo="x+text",
            )
    fig.update_yaxes(gridcolor="#e5e7eb", rangemode="tozero")
    fig.update_xaxes(tickangle=0, tickfont={"size": 10})
    fig.update_annotations(font={"size": 12})
    fig = _layout(
        fig,
        height=420,
        width=width,
        barmode="stack",
        legend={"orientation": "h", "y": -0.18, "x": 0, "font": {"size": 10}, "traceorder": "normal"},
    )
    fig.update_layout(margin={"l": 10, "r": 20, "t": 30, "b": 30})  # room for the subplot titles
    return fig
