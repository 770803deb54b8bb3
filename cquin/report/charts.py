"""The report's charts, drawn with Plotly from a stored run's figures (published counts only).

Each function returns a :class:`plotly.graph_objects.Figure`; the page embeds
them with one inlined copy of plotly.js, so the report opens offline.
"""

from __future__ import annotations

import json
from fractions import Fraction
from typing import Any

import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from cquin.disclosure import publish, published_fraction
from cquin.engine.bands import HUNDRED, band_from_spec, to_fraction
from cquin.report.data import ReportData

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif"
MARKER_COLOUR = "#111827"


def _pay_colour(pays: Fraction) -> str:
    """Red for a band that pays nothing, through amber, to green for one that pays in full."""
    return sample_colorscale("RdYlGn", [float(pays)])[0]


def _layout(fig: go.Figure, *, height: int, title: str | None = None, **extra: Any) -> go.Figure:
    fig.update_layout(
        height=height,
        title={"text": title, "x": 0, "font": {"size": 15}} if title else None,
        margin={"l": 10, "r": 20, "t": 40 if title else 10, "b": 30},
        font={"family": FONT, "size": 12},
        plot_bgcolor="white",
        paper_bgcolor="white",
        **extra,
    )
    return fig


def component_figure(row: dict[str, Any], spec: dict[str, Any], *, control: bool) -> go.Figure:
    """One component's bands as coloured segments, with a marker where the provider stands."""
    fig = go.Figure()
    if "attainment" in spec:
        levels = list(reversed(spec["attainment"]))  # worst to best, left to right
        for i, level in enumerate(levels):
            pays = to_fraction(level["pays_percent"]) / HUNDRED
            fig.add_bar(
                orientation="h",
                y=[""],
                x=[1],
                base=[i],
                marker_color=_pay_colour(pays),
                text=[f"{level['label']} — pays {float(pays) * 100:g}%"],
                textposition="inside",
                insidetextanchor="middle",
                hoverinfo="text",
                showlegend=False,
            )
        reached = next((i for i, lv in enumerate(levels) if lv["label"] == row["band"]), None)
        if reached is not None:
            fig.add_scatter(x=[reached + 0.5], y=[""], mode="markers", marker=_marker(), name="reached", showlegend=False)
        fig.update_xaxes(visible=False, range=[0, len(levels)])
        return _layout(fig, height=110, barmode="stack")
    on_count = spec.get("bands_on") == "numerator_count"
    bands = [band_from_spec(b, upper_limit=None if on_count else HUNDRED) for b in spec["bands"]]
    num = publish(row["numerator"], control=control)
    if on_count:
        position = None if num.value is None else Fraction(num.value)
        edges = [b.lower for b in bands] + [b.upper for b in bands if b.upper is not None]
        top = max([Fraction(1), *edges, position or 0]) * Fraction(6, 5)
        unit = ""
    else:
        frac = published_fraction(row["numerator"], row["denominator"], control=control)
        position = None if frac is None else frac * HUNDRED
        top, unit = HUNDRED, "%"
    for band in bands:
        upper = band.upper if band.upper is not None else top
        fig.add_bar(
            orientation="h",
            y=[""],
            x=[float(upper - band.lower)],
            base=[float(band.lower)],
            marker_color=_pay_colour(band.pays),
            marker_line={"color": "white", "width": 2},
            text=[f"{band.describe(unit)}: pays {float(band.pays) * 100:g}%"],
            textposition="inside",
            insidetextanchor="middle",
            hoverinfo="text",
            showlegend=False,
        )
    if position is not None:
        label = f"{float(position):.1f}%" if not on_count else f"{num.value:,}"
        fig.add_scatter(
            x=[float(position)],
            y=[""],
            mode="markers+text",
            marker=_marker(),
            text=[label],
            textposition="top center",
            textfont={"size": 13, "color": MARKER_COLOUR},
            name="provider",
            showlegend=False,
        )
    fig.update_xaxes(range=[0, float(top)], ticksuffix=unit, showgrid=False)
    return _layout(fig, height=120, barmode="overlay")


def _marker() -> dict[str, Any]:
    return {"symbol": "diamond", "size": 18, "color": MARKER_COLOUR, "line": {"color": "white", "width": 2}}


def funnel_figure(data: ReportData, pops: list[str], *, control: bool, title: str) -> go.Figure:
    """Populations as a funnel, in dependency order, with published counts."""
    labels = [data.ruleset["populations"][p]["label"] for p in pops]
    shown = [publish(data.populations.get(p, 0), control=control) for p in pops]
    fig = go.Figure(
        go.Funnel(
            y=labels,
            x=[p.value or 0 for p in shown],
            text=[_fmt(p) for p in shown],
            textinfo="text",
            marker={"color": "#2563eb"},
            connector={"fillcolor": "#dbeafe"},
            hoverinfo="y+text",
        )
    )
    return _layout(fig, height=70 + 48 * len(pops), title=title)


def breakdown_figure(
    dimension: dict[str, Any], pops: list[str], labels: dict[str, str], emphasised: set[str], *, control: bool
) -> go.Figure:
    """A dimension's values (x) by population (one bar per population); secondary populations start hidden."""
    fig = go.Figure()
    xs = [v["label"] for v in dimension["values"]]
    for pid in pops:
        counts = dimension["counts"].get(pid, {})
        shown = [publish(counts.get(v["id"], 0), control=control) for v in dimension["values"]]
        fig.add_bar(
            x=xs,
            y=[p.value for p in shown],
            name=labels[pid],
            hovertext=[f"{labels[pid]}: {_fmt(p)}" for p in shown],
            hoverinfo="x+text",
            visible=True if pid in emphasised else "legendonly",
        )
    fig.update_yaxes(gridcolor="#e5e7eb", rangemode="tozero")
    return _layout(
        fig,
        height=380,
        title=dimension["label"],
        barmode="group",
        legend={"orientation": "h", "y": -0.25},
    )


def quarters_figure(data: ReportData, *, control: bool) -> go.Figure:
    """Conversations and assessments by quarter, with a line at each milestone's due date and its status."""
    quarters = (data.breakdowns or {}).get("quarters") or []
    periods = data.ruleset["periods"]
    xs = [f"{periods[q['period']]['label'].split(' (')[0]} {q['quarter']}" for q in quarters]
    fig = go.Figure()
    for key, name, colour in (
        ("conversations", "Care and support planning conversations", "#2563eb"),
        ("assessments", "Activation assessments (patient's own)", "#9333ea"),
    ):
        shown = [publish(q[key], control=control) for q in quarters]
        fig.add_bar(x=xs, y=[p.value for p in shown], name=name, marker_color=colour, text=[_fmt(p) for p in shown])
    due: dict[str, list[str]] = {}
    for m in data.milestones:
        due.setdefault(m["due"], []).append(f"{m['milestone']}: {m['status']}")
    for i, q in enumerate(quarters):
        if q["to"] in due:
            fig.add_vline(x=i + 0.5, line_dash="dash", line_color="#374151")
            fig.add_annotation(
                x=i + 0.5,
                y=1.0,
                yref="paper",
                text="<br>".join(due[q["to"]]),
                showarrow=False,
                xanchor="right",
                yanchor="top",
                bgcolor="rgba(255,255,255,0.85)",
                font={"size": 11},
            )
    fig.update_yaxes(gridcolor="#e5e7eb", rangemode="tozero")
    return _layout(fig, height=420, barmode="group", legend={"orientation": "h", "y": -0.15})


def inputs_figure(data: ReportData, *, control: bool) -> go.Figure:
    """Rows accepted and rejected per input file."""
    names = [i["name"] for i in data.inputs]
    fig = go.Figure()
    for key, colour in (("accepted", "#16a34a"), ("rejected", "#dc2626")):
        shown = [publish(i[key], control=control) for i in data.inputs]
        fig.add_bar(
            y=names, x=[p.value for p in shown], name=key, orientation="h", marker_color=colour, text=[_fmt(p) for p in shown]
        )
    fig.update_xaxes(gridcolor="#e5e7eb")
    return _layout(fig, height=80 + 34 * len(names), barmode="stack", legend={"orientation": "h", "y": -0.2})


def next_band(row: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(row["next_band"]) if row.get("next_band") else None


def _fmt(p: Any) -> str:
    return p.text if p.value is None else f"{p.value:,}"
