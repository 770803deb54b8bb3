"""The report as one self-contained HTML page for a contract meeting: sections, tables, bands, funnels and charts.

Bands and funnels are HTML and CSS (labels wrap inside their own boxes, so they never collide); the rate and
quarter charts are Plotly, with plotly.js's *basic* partial bundle (bar and scatter traces, about 1.2 MB instead
of 4.8 MB) inlined from ``cquin/report/vendor`` (npm ``plotly.js-basic-dist-min``, MIT), so the page opens
offline.  A print stylesheet lays it out on A4.  Every text that comes from data (provider names, labels,
reasons) is escaped; chart data is embedded by Plotly, which escapes ``</`` in its JSON.  Counts pass through
exact by default (the parties' figures); with ``control`` (``--publish``) counts of patients pass through
:func:`cquin.disclosure.publish`, staff counts and file row counts never do, and the page says which.

Long because the page has many sections; each is a short function of the report's data.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import plotly.io as pio

from cquin.disclosure import RULE_TEXT, applies_to, publish, published_fraction, published_percent
from cquin.engine.bands import HUNDRED, band_from_spec, to_fraction
from cquin.engine.outcome import NextStep
from cquin.report import careplans, charts
from cquin.report.data import ReportData
from cquin.report.funnel import chains
from cquin.store import evidence_missing

PLOTLY_JS = Path(__file__).with_name("vendor") / "plotly-basic.min.js"

SECTIONS = (
    ("headline", "Headline"),
    ("next", "What to do next"),
    ("components", "Components against their bands"),
    ("funnel", "Cohort funnel"),
    ("breakdowns", "Breakdowns"),
    ("quarters", "Activity by quarter and milestones"),
    ("care-plans", "What care plans say"),
    ("progress", "Progress over the year"),
    ("data-quality", "Data quality"),
    ("trace", "Traceability"),
)

CSS = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui, -apple-system, 'Segoe UI', Roboto, Arial, sans-serif; color:var(--ink); background:#f9fafb; }
header.top { background:#0f172a; color:white; padding:18px 28px; }
header.top h1 { margin:0 0 4px 0; font-size:22px; }
header.top p { margin:2px 0; color:#cbd5e1; font-size:13px; }
nav { padding:8px 28px; background:white; border-bottom:1px solid var(--line); font-size:13px; }
nav a { margin-right:14px; color:var(--accent); text-decoration:none; }
main { padding:8px 28px 40px; max-width:1360px; }
section { background:white; border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin:16px 0; }
section h2 { margin:0 0 10px; font-size:18px; }
section h3 { margin:14px 0 6px; font-size:15px; }
section h4 { margin:10px 0 4px; font-size:13px; }
table { border-collapse:collapse; font-size:13px; margin:6px 0 10px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
td.n, th.n { text-align:right; font-variant-numeric: tabular-nums; }
.muted { color:var(--muted); font-size:12px; }
.banner { padding:8px 12px; border-radius:6px; font-size:13px; margin:10px 0; }
.banner.sdc { background:#ecfdf5; border:1px solid #a7f3d0; }
.banner.internal { background:#fef2f2; border:1px solid #fecaca; font-weight:600; }
.banner.dq-failed { background:#fee2e2; border:2px solid #dc2626; color:#7f1d1d; font-size:14px; }
.banner.dq-accepted { background:#fefce8; border:1px solid #facc15; }
.cards { display:flex; flex-wrap:wrap; gap:14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:12px 16px; min-width:300px; }
.card .big { font-size:28px; font-weight:700; }
.status-met { color:#15803d; font-weight:600; }
.status-missed { color:#b91c1c; font-weight:600; }
.status-not { color:#b45309; font-weight:600; }
code { font-size:12px; word-break:break-all; }
code.id { word-break:normal; white-space:nowrap; }
.card.total { border-color:#0f172a; border-width:2px; }
.basis { margin:8px 0 2px; font-size:13px; }
ol.next { margin:4px 0 6px 20px; padding:0; font-size:14px; }
ol.next li { margin:4px 0; }
.worth { font-weight:700; color:#15803d; white-space:nowrap; }
.comp { margin:10px 0 14px; break-inside:avoid; }
.comp h3 { margin:0 0 2px; }
.bandrow { position:relative; margin-top:22px; }
.bands { display:flex; width:100%; border-radius:4px; overflow:hidden; height:14px; }
.bands > div { border-right:2px solid white; }
.bandlabels { display:flex; width:100%; font-size:11px; line-height:1.25; }
.bandlabels > div { padding:3px 4px 0 2px; overflow-wrap:anywhere; border-left:1px solid var(--line); }
.bandlabels > div.here { font-weight:700; }
.marker { position:absolute; top:-20px; transform:translateX(-50%); font-size:12px; font-weight:700; white-space:nowrap; }
.marker::after { content:""; display:block; width:0; height:0; margin:1px auto 0; border-left:6px solid transparent;
  border-right:6px solid transparent; border-top:7px solid var(--ink); }
.funnels { display:flex; flex-wrap:wrap; gap:10px 28px; }
.funnel { flex:1 1 320px; min-width:300px; break-inside:avoid; }
.funnel h3 { margin:4px 0; }
.step { display:grid; grid-template-columns: 1fr 70px; gap:0 8px; align-items:center; font-size:12px; margin:3px 0; }
.step .bar { grid-column:1 / span 2; height:10px; background:#dbeafe; border-radius:2px; }
.step .bar > span { display:block; height:100%; background:var(--accent); border-radius:2px; }
.step .n { text-align:right; font-variant-numeric:tabular-nums; font-weight:600; }
.rej { display:inline-block; height:9px; background:#dc2626; vertical-align:middle; min-width:2px; }
.gate { padding:10px 14px; border-radius:6px; margin:10px 0; background:#fffbeb; border:1px solid #fcd34d; font-weight:600; }
@page { size: A4; margin: 10mm 9mm; }
.chart { break-inside:avoid; }
.small { background:#fef3c7; border-radius:3px; padding:0 2px; }
.printonly { display:none; }
@media print {
  body { background:white; font-size:11px; zoom:0.82; }
  nav, details, .noprint { display:none !important; }
  .printonly { display:block; }
  header.top { background:white; color:var(--ink); padding:0 0 4px; border-bottom:2px solid var(--ink); }
  header.top p { color:var(--muted); }
  main { padding:0; max-width:none; }
  section { border:none; border-radius:0; padding:0; margin:8px 0 0; }
  section h2 { font-size:15px; margin:6px 0 4px; break-after:avoid; }
  section h3 { font-size:12px; }
  table { font-size:10.5px; margin:3px 0 6px; }
  th, td { padding:2px 6px; }
  .card { padding:6px 10px; min-width:0; flex:1 1 0; }
  .card .big { font-size:20px; }
  .comp { margin:4px 0 8px; }
  .js-plotly-plot, .plotly-graph-div, .funnel, .comp, tr { break-inside:avoid; }
  .banner { margin:4px 0; padding:4px 8px; }
  a { color:inherit; text-decoration:none; }
}
"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def money(text: str | None) -> str:
    return "—" if text is None else f"£{Decimal(text):,.2f}"


def count_rows(n: int | None, control: bool) -> str:
    """A count of file rows: never a count of patients, so never altered by disclosure control."""
    return count(n, False)


def count(n: int | None, control: bool) -> str:
    p = publish(n, control=control)
    return p.text if p.value is None else f"{p.value:,}"


class _Figures:
    """Numbers the page's chart divs so the HTML is the same for the same run."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.n = 0

    def html(self, fig: Any) -> str:
        self.n += 1
        return pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=f"{self.prefix}fig{self.n}",
            config={"displaylogo": False, "displayModeBar": False, "responsive": False},
        )


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    """An HTML table from already-escaped cells."""
    num = set(numeric)
    head = "".join(f'<th class="n">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status(status: str) -> str:
    cls = {"met": "status-met", "missed": "status-missed"}.get(status, "status-not")
    return f'<span class="{cls}">{e(status)}</span>'


# ----------------------------------------------------------------------------- sections


def _pounds(value: Decimal) -> str:
    return f"£{value:,.2f}"


def _basis(d: ReportData) -> str:
    """How the money is worked out: the contract value(s) and the indicator's weighting, from the run and its ruleset."""
    params = json.loads(d.run.get("parameters") or "{}")
    weight = d.ruleset.get("indicator", {}).get("weighting_percent")
    cv, cv2 = params.get("contract_value"), params.get("contract_value_year2")
    if not cv and not cv2:
        return "No contract value given with this run: evaluate with --contract-value to see pounds."
    years = _years(d)
    parts = []
    for i, y in enumerate(years):
        value = cv2 if (i > 0 and cv2) else cv
        if value:
            parts.append(
                f"{d.ruleset['periods'][y]['label']}: contract value {_pounds(Decimal(value))} × {weight}% = {money(d.available.get(y))}"
            )
    return "Basis: " + "; ".join(parts) + ". Each component pays its share of its year's value by the band it reaches."


def headline(d: ReportData, control: bool) -> str:
    cards = []
    params = json.loads(d.run.get("parameters") or "{}")
    given = params.get("contract_value") is not None or params.get("contract_value_year2") is not None
    earned_all, avail_all = Decimal(0), Decimal(0)
    for year in _years(d):
        label = d.ruleset["periods"][year]["label"]
        earned, avail = Decimal(d.totals.get(year, "0")), Decimal(d.available.get(year, "0"))
        earned_all, avail_all = earned_all + earned, avail_all + avail
        share = sum(
            (Fraction(c["share"]) * Fraction(c["payment_fraction"]) for c in d.components if c["year"] == year), Fraction(0)
        )
        shown = _pounds(earned) if given else f"{float(share) * 100:.1f}%"
        of = f"earned of {_pounds(avail)} available" if given else "of the year's value earned (no contract value given)"
        cards.append(
            f'<div class="card"><div class="muted">{e(label)}</div><div class="big">{e(shown)}</div>'
            f"<div>{e(of)}</div><div class='muted'>{float(share) * 100:.1f}% of the year's value</div></div>"
        )
    pct = f"{float(earned_all / avail_all) * 100:.1f}% of what was available" if avail_all else "no contract value given"
    if given:
        cards.append(
            f'<div class="card total"><div class="muted">Both years</div><div class="big">{e(_pounds(earned_all))}</div>'
            f"<div>earned of {e(_pounds(avail_all))} available</div><div class='muted'>{e(pct)}</div></div>"
        )
    rows = []
    for c in d.components:
        rows.append(
            [
                f"<b>{e(c['component'])}</b> <span class='muted'>{e(c['name'])}</span>",
                e(d.ruleset["periods"][c["year"]]["label"].split(" (")[0]),
                e(c["band"]),
                f"{float(Fraction(c['payment_fraction'])) * 100:g}%",
                f"{float(Fraction(c['share'])) * 100:g}%",
                e(money(c["payment"]) if given else "no contract value given"),
                e(money(c["available"]) if given else "—"),
            ]
        )
    return f'<div class="cards">{"".join(cards)}</div><p class="basis">{e(_basis(d))}</p>' + table(
        ["component", "year", "band reached", "pays", "share", "earned", "available"], rows, numeric=(3, 4, 5, 6)
    )


def next_steps(d: ReportData, control: bool) -> list[dict[str, Any]]:
    """Each component below its top band: how many more would reach the next band, and what that is worth.

    Worth = the component's available value x (the next band's payment - the payment reached), in pounds, rounded
    half-up to the penny as the ruleset rounds every payment.  Ordered by worth, largest first.
    """
    from decimal import ROUND_HALF_UP

    specs = {s["id"]: s for s in d.ruleset["components"]}
    out = []
    for c in d.components:
        nb = charts.next_band(c)
        if not nb:
            continue
        worth = (
            Decimal(c["available"])
            * (
                Decimal(nb["pays"])
                - Decimal(str(Fraction(c["payment_fraction"]).numerator)) / Decimal(Fraction(c["payment_fraction"]).denominator)
            )
        ).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        spec = specs.get(c["component"], {})
        num_label = d.ruleset["populations"].get(spec.get("numerator", ""), {}).get("label")
        out.append({"component": c, "next": nb, "worth": worth, "numerator_label": num_label})
    return sorted(out, key=lambda x: (-x["worth"], x["component"]["ordinal"]))


def what_next(d: ReportData, control: bool) -> str:
    steps = next_steps(d, control)
    if not steps:
        return "<p>Every component is at its top band: nothing more to earn.</p>"
    items = []
    for s in steps:
        c, nb = s["component"], s["next"]
        pays = f"{float(Decimal(nb['pays'])) * 100:g}%"
        if nb.get("more_needed") is not None:
            who = (s["numerator_label"] or "subjects in the numerator").lower()
            action = f"{e(count(nb['more_needed'], applies_to(c.get('entity'), control)))} more {e(who)}"
        else:
            action = "the next band is out of reach with the present denominator"
        stored = NextStep.from_stored(c)
        if stored is not None and stored.worth is None and stored.component:  # the run was given no contract value
            worth = "<span class='muted'>worth: no contract value given</span>"
        else:
            worth = f"<span class='worth'>worth {e(_pounds(s['worth']))} more</span>" if s["worth"] > 0 else ""
        items.append(
            f"<li><b>{e(c['name'])}</b> ({e(c['component'])}): {action} to reach <b>{e(nb['band'])}</b> (pays {e(pays)}), {worth}</li>"
        )
    total = sum((s["worth"] for s in steps), Decimal(0))
    return (
        f"<ol class='next'>{''.join(items)}</ol>"
        f"<p class='muted'>Reaching every next band would add {e(_pounds(total))}. Distances are counted on the exact figures"
        + (" and published under disclosure control" if control else "")
        + "; the patients concerned are in <code>cquin cohort</code> and <code>cquin serve</code>.</p>"
    )


def band_strip(c: dict[str, Any], spec: dict[str, Any], control: bool) -> str:
    """A component's bands as coloured segments with their labels under them, and a marker above where it stands."""
    segments: list[tuple[float, str, str, bool]] = []  # width %, colour, label, reached
    marker: tuple[float, str] | None = None
    if "attainment" in spec:
        levels = list(reversed(spec["attainment"]))  # worst to best, left to right
        w = 100 / len(levels)
        for i, lv in enumerate(levels):
            pays = to_fraction(lv["pays_percent"]) / HUNDRED
            here = lv["label"] == c["band"]
            segments.append((w, charts.pay_colour(pays), f"{lv['label']}: pays {float(pays) * 100:g}%", here))
            if here:
                marker = (w * (i + 0.5), "reached")
    else:
        on_count = spec.get("bands_on") == "numerator_count"
        bands = [band_from_spec(b, upper_limit=None if on_count else HUNDRED) for b in spec["bands"]]
        num = publish(c["numerator"], control=control)
        if on_count:
            edges = [b.lower for b in bands] + [b.upper for b in bands if b.upper is not None]
            pos = None if num.value is None else Fraction(num.value)
            top = max([Fraction(1), *edges]) * 2
            unit, shown_pos = "", (None if pos is None else min(pos, top))
            label = None if num.value is None else f"{num.value:,}"
        else:
            frac = published_fraction(c["numerator"], c["denominator"], control=control)
            top, unit = HUNDRED, "%"
            shown_pos = None if frac is None else frac * HUNDRED
            label = None if frac is None else f"{published_percent(c['numerator'], c['denominator'], control=control)}%"
        for b in bands:
            upper = b.upper if b.upper is not None else top
            here = b.describe(unit) == c["band"] or (b.label and b.label in (c["band"] or ""))
            segments.append(
                (
                    float((upper - b.lower) / top * 100),
                    charts.pay_colour(b.pays),
                    f"{b.describe(unit)}: pays {float(b.pays) * 100:g}%",
                    bool(here),
                )
            )
        if shown_pos is not None and label is not None:
            marker = (float(shown_pos / top * 100), label)
    bars = "".join(f'<div style="width:{w:.3f}%;background:{col}" title="{e(lab)}"></div>' for w, col, lab, _ in segments)
    labels = "".join(
        f'<div class="{"here" if here else ""}" style="width:{w:.3f}%">{e(lab)}</div>' for w, _, lab, here in segments
    )
    mk = ""
    if marker is not None:
        left = min(max(marker[0], 3.0), 97.0)  # keep the marker's text on the strip at the ends
        mk = f'<div class="marker" style="left:{left:.3f}%">{e(marker[1])}</div>'
    return f'<div class="bandrow">{mk}<div class="bands">{bars}</div><div class="bandlabels">{labels}</div></div>'


def components(d: ReportData, control: bool, figs: _Figures) -> str:
    specs = {c["id"]: c for c in d.ruleset["components"]}
    parts = [
        "<p class='muted'>Each strip is a component's payment bands, coloured from pays nothing (red) to pays in full (green); "
        "the pointer is where the provider stands"
        + (" (from the published, rounded counts)" if control else "")
        + ". Bands are decided on the exact counts.</p>"
    ]
    for c in d.components:
        spec = specs.get(c["component"])
        if spec is None:
            continue
        nb = charts.next_band(c)
        ratio = ""
        if c["numerator"] is not None:
            patients = applies_to(c.get("entity"), control)  # staff counts are never altered
            pct = published_percent(c["numerator"], c["denominator"], control=patients)
            ratio = f"{count(c['numerator'], patients)} of {count(c['denominator'], patients)}" + (
                f" ({pct}%)" if pct is not None else " (percentage not shown: a count is suppressed)" if patients else ""
            )
        more = ""
        if nb and nb.get("more_needed") is not None:
            more = f" — {e(count(nb['more_needed'], applies_to(c.get('entity'), control)))} more to reach {e(nb['band'])} (pays {float(Decimal(nb['pays'])) * 100:g}%)"
        elif c["numerator"] is not None and nb is None and c["denominator"]:
            more = " — top band reached"
        parts.append(
            f"<div class='comp'><h3>{e(c['component'])}: {e(c['name'])}</h3>"
            f"<div>{e(ratio)} {('— ' if ratio else '')}band reached: <b>{e(c['band'])}</b>{more}</div>"
            + (f"<div class='muted'>{e(c['note'])}</div>" if c.get("note") else "")
            + band_strip(c, spec, applies_to(c.get("entity"), control))
            + "</div>"
        )
    return "".join(parts)


def _funnel_html(d: ReportData, chain: list[str], control: bool, title: str) -> str:
    pops = d.ruleset["populations"]
    first = publish(d.populations.get(chain[0], 0), control=control).value or 0
    steps = []
    prev: int | None = None
    for pid in chain:
        p = publish(d.populations.get(pid, 0), control=control)
        width = 0.0 if not first or p.value is None else 100 * p.value / first
        of_prev = ""
        if prev and p.value is not None:
            of_prev = f" <span class='muted'>({100 * p.value / prev:.0f}% of the step above)</span>"
        steps.append(
            f"<div class='step' title='{e(pid)}'><div>{e(pops[pid]['label'])}{of_prev}</div><div class='n'>{e(count(d.populations.get(pid, 0), control))}</div>"
            f"<div class='bar'><span style='width:{width:.2f}%'></span></div></div>"
        )
        prev = p.value
    return f"<div class='funnel'><h3>{e(title)}</h3>{''.join(steps)}</div>"


def funnel(d: ReportData, control: bool, figs: _Figures) -> str:
    present = set(d.populations)
    out = []
    for entity, noun in (("patient", "Patients"), ("staff", "Staff")):
        for i, chain in enumerate(chains(d.ruleset, entity, present)):
            if len(chain) < 2:
                continue
            title = noun if i == 0 else f"{noun}: {d.ruleset['populations'][chain[1]]['label']}"
            out.append(_funnel_html(d, chain, control and entity == "patient", title))  # staff counts: exact
    return (
        "<p class='muted'>Each funnel is a chain of populations in which every step is inside the one above it (as the "
        "ruleset defines them), so counts only fall. A population that is not inside the one before it, such as a cohort "
        "that agreed overrides may widen, starts its own funnel beside the first.</p>"
        f"<div class='funnels'>{''.join(out)}</div>"
    )


def _rate_components(d: ReportData) -> list[tuple[str, str, str]]:
    b = d.breakdowns or {}
    pops = set(b.get("populations", []))
    out = []
    for s in d.ruleset["components"]:
        # A component paid on a count (not a rate) is left out: its rate decides nothing.
        if s.get("denominator") in pops and s.get("numerator") in pops and s.get("bands_on") != "numerator_count":
            out.append((s["name"], s["denominator"], s["numerator"]))
    return out


def breakdowns(d: ReportData, control: bool, figs: _Figures) -> str:
    b = d.breakdowns
    if not b:
        return "<p>These breakdowns were not recorded with this run (runs record them from cquin's breakdowns aggregate).</p>"
    comps = _rate_components(d)
    parts = [
        f"<p class='muted'>Each component's rate (numerator ÷ denominator) for each group of patients; hover over a bar for "
        f"the counts. A group with no one in a component's denominator has no bar. Ages are on {e(b.get('age_reference_date'))}.</p>"
    ]
    for dim in b["dimensions"].values():
        parts.append(
            f"<div class='chart'><h3>{e(dim['label'])}</h3>"
            + figs.html(charts.rates_figure(dim, comps, control=control))
            + "</div>"
        )
        rows = []
        for v in dim["values"]:
            cells = [e(v["label"])]
            for _, den_pop, num_pop in comps:
                num = dim["counts"].get(num_pop, {}).get(v["id"], 0)
                den = dim["counts"].get(den_pop, {}).get(v["id"], 0)
                cells.append(f"{count(num, control)} of {count(den, control)}")
            rows.append(cells)
        parts.append(
            "<details><summary>counts</summary>"
            + table([e(dim["label"])] + [e(t) for t, _, _ in comps], rows, numeric=range(1, len(comps) + 1))
            + "</details>"
        )
    return "".join(parts)


def quarters(d: ReportData, control: bool, figs: _Figures) -> str:
    out = ""
    if d.breakdowns and d.breakdowns.get("quarters"):
        out += figs.html(charts.quarters_figure(d, control=control))
    else:
        out += "<p>Quarterly counts were not recorded with this run.</p>"
    rows = [
        [e(m["milestone"]), e(m["due"]), e(_description(d, m["milestone"])), _status(m["status"])]
        + ([] if control else [e(m["detail"])])
        for m in d.milestones
    ]
    head = ["milestone", "due", "what", "status"] + ([] if control else ["detail"])
    note = (
        "<p class='muted'>Milestone details (which hold counts) are shown only without disclosure control.</p>" if control else ""
    )
    return out + table(head, rows) + note


SMALL_MARK = "†"
CP_PRINTED = frozenset({"needs"})  # the care-plan tables on paper (the report prints to four A4 pages)


def _cp_cell(cell: careplans.Cell, control: bool) -> str:
    """One cell of a care-plan table: a count published under control, else exact and marked when it is 1 to 7."""
    if cell is None or isinstance(cell, str):
        return e(cell)
    mark = not control and cell.small
    if isinstance(cell, careplans.Count):
        text = e(count(cell.n, control))
    else:
        pct = published_percent(cell.num, cell.den, control=control) if cell.den else None
        if pct is not None:
            text = f"{pct}%"
        elif cell.den and control:
            text = "<span class='muted' title='a count is suppressed'>not shown</span>"
        else:
            text = "—"
            mark = False
    if mark:
        return f'<span class="small" title="{e(careplans.SMALL_NOTE)}">{text}{SMALL_MARK}</span>'
    return text


def care_plans(d: ReportData, control: bool, figs: _Figures) -> str:
    """What care plans say (the commissioner's views, handbook 4.3.2-4.6): needs met and unmet, referrals, goals and
    actions over time, activation change by referral, and the conversation's elements."""
    views = careplans.views_of(d.breakdowns)
    if isinstance(views, str) or views is None:
        return f"<p>{e(views or careplans.NO_VIEWS)}</p>"
    v = careplans.build(views, d.ruleset)
    shared = _cp_cell(v.shared_percent, control)
    parts = [
        f"<p>{_cp_cell(v.plans, control)} care plans for {_cp_cell(v.patients, control)} patients, "
        f"{_cp_cell(v.plans_shared, control)} of them shared with the patient ({shared}), "
        f"from entries dated {e(v.within[0])} to {e(v.within[1])}.</p>",
        "<p class='muted'>"
        + (
            "Counts of patients, and of their plans and referrals, are under disclosure control; a percentage whose "
            "count is suppressed is not shown."
            if control
            else f"Counts marked <span class='small'>{SMALL_MARK}</span> are {e(careplans.SMALL_NOTE)} "
            "(--publish applies disclosure control to every count here: of patients, and of their plans and referrals)."
        )
        + " These views pay nothing; they are for planning services.</p>",
    ]
    for t in v.tables:
        numeric = [i for i, c in enumerate(t.rows[0]) if not isinstance(c, str) and c is not None] if t.rows else []
        screen = "" if t.id in CP_PRINTED else " noprint"
        if t.id == "mix-goals":
            parts.append(
                "<div class='noprint'><h3>Goals and actions over time</h3><p class='muted'>Patients with a goal, and with "
                "an action, in each category by the quarter of its date.</p>"
                + figs.html(charts.care_mix_figure(v.mix, v.labels, control=control))
                + "</div>"
            )
        parts.append(
            f"<div class='cp{screen}' data-view='{e(t.id)}'>"
            + (f"<h4>{e(t.title)}</h4>" if t.id.startswith("mix-") else f"<h3>{e(t.title)}</h3>")
            + (f"<p class='muted'>{e(t.note)}</p>" if t.note else "")
            + (
                f"<div class='noprint'>{figs.html(charts.care_needs_figure(v.needs, control=control))}</div>"
                if t.id == "needs"
                else ""
            )
            + table([e(c) for c in t.columns], [[_cp_cell(c, control) for c in r] for r in t.rows], numeric=numeric)
            + "</div>"
        )
    parts.append(
        "<p class='muted printonly'>Printed: the support needs only. The referrals, goals and actions over time, "
        "activation change and the conversation's elements are on screen and in the workbook's Care plans sheet.</p>"
    )
    return "".join(parts)


def progress(d: ReportData, control: bool, figs: _Figures) -> str:
    """The provider's runs at each as-of date (quarter on quarter), from the audit store."""
    from cquin.report.progress import progress_figure, progress_table

    if len(d.progress) < 2:
        return "<p>Only one as-of date has been evaluated for this provider: progress shows once there are more.</p>"
    return figs.html(progress_figure(d.progress, control=control)) + progress_table(d.progress, d.run_id, control=control)


def data_quality(d: ReportData, control: bool, figs: _Figures) -> str:
    most = max((i["rejected"] or 0 for i in d.inputs), default=0)
    rows = []
    for i in d.inputs:
        rej = i["rejected"] or 0
        share = f"{100 * rej / i['read']:.1f}%" if i["read"] else "—"
        bar = f"<span class='rej' style='width:{(80 * rej / most) if most else 0:.1f}px'></span>" if rej else ""
        rows.append(
            [
                e(i["name"]),
                count_rows(i["read"], control),
                count_rows(i["accepted"], control),
                f"{bar} {count_rows(rej, control)}",
                e(share),
            ]
        )
    rej_rows = [[e(f), e(k), count_rows(n, control)] for f, k, n in d.rejections]
    total_rej = sum(i["rejected"] or 0 for i in d.inputs)
    total_read = sum(i["read"] or 0 for i in d.inputs)
    summary = (
        f"<p>{count_rows(total_rej, control)} of {count_rows(total_read, control)} rows were rejected "
        f"({100 * total_rej / total_read:.2f}%), in {len(d.rejections)} kinds of problem.</p>"
        if total_read
        else "<p>No rows were read.</p>"
    )
    return (
        summary
        + table(["file", "read", "accepted", "rejected", "share rejected"], rows, numeric=(1, 2, 3, 4))
        + "<h3>Rejected rows by reason</h3>"
        + (table(["file", "reason", "rows"], rej_rows, numeric=(2,)) if rej_rows else "<p>No rows were rejected.</p>")
        + "<p class='muted'>Reasons are grouped with their values and line numbers taken out (every exact duplicate in a file "
        "is one reason). Each rejected row, with its line and value, is kept in the audit store.</p>"
    )


def trace(d: ReportData, control: bool) -> str:
    r = d.run
    rows = [
        ["run id", f"<code class='id'>{e(r['run_id'])}</code>"],
        ["ruleset", f"{e(r['ruleset_id'])} version {e(r['ruleset_version'])}"],
        ["ruleset SHA-256", f"<code>{e(r['ruleset_sha256'])}</code>"],
        ["results SHA-256", f"<code>{e(r['results_sha256'])}</code>"],
        ["evaluated", f"{e(r['started_at'])} to {e(r['finished_at'])} by cquin {e(r['engine_version'])}"],
        ["as of", e(r["as_of"] or "all records (no cut-off date)")],
        ["adapter", e(r["adapter"])],
        ["counts", e(f"published: patient counts under disclosure control ({RULE_TEXT})" if control else "exact")],
    ]
    return (
        table(["", ""], rows)
        + f"<p class='muted'>Check this page against the audit store: <code>cquin runs show {e(r['run_id'])}</code></p>"
    )


def _description(d: ReportData, mid: str) -> str:
    return next((m.get("description", "") for m in d.ruleset.get("milestones") or [] if m["id"] == mid), "")


def _years(d: ReportData) -> list[str]:
    seen: list[str] = []
    for c in d.components:
        if c["year"] not in seen:
            seen.append(c["year"])
    return seen


# ----------------------------------------------------------------------------- pages


def provider_sections(d: ReportData, control: bool, prefix: str = "") -> str:
    """Every section of one run's report, with ids ``{prefix}{section}``."""
    figs = _Figures(prefix)
    body = {
        "headline": headline(d, control),
        "next": what_next(d, control),
        "components": components(d, control, figs),
        "funnel": funnel(d, control, figs),
        "breakdowns": breakdowns(d, control, figs),
        "quarters": quarters(d, control, figs),
        "care-plans": care_plans(d, control, figs),
        "progress": progress(d, control, figs),
        "data-quality": data_quality(d, control, figs),
        "trace": trace(d, control),
    }
    return "".join(f'<section id="{prefix}{sid}"><h2>{e(title)}</h2>{body[sid]}</section>' for sid, title in SECTIONS)


def banner(control: bool) -> str:
    if control:
        return (
            f'<div class="banner sdc">Published figures: counts of patients are under disclosure control ({e(RULE_TEXT)}); '
            "each altered count is marked * (suppressed) or rounded; staff counts, file row counts and money are exact. "
            "Percentages are of the published counts, none where a count is suppressed; every band was decided on the "
            "exact counts.</div>"
        )
    return (
        '<div class="banner internal">Exact figures, for the parties to the contract: the bands and payments are decided on '
        "them. Before publishing, write the report with --publish (disclosure control on counts of patients).</div>"
    )


def quality_banner(d: ReportData) -> str:
    """The data-quality verdict, at the very top, when the run's data did not pass."""
    q = d.data_quality or {}
    if q.get("status") not in ("failed", "accepted"):
        return ""
    items = "".join(
        f"<li><b>{e(f['file'])}</b>: {e(f['rule'])}"
        + "".join(f"<br>{r['count']:,} × {e(r['reason'])}" for r in f.get("top_reasons", []))
        + f"<br><i>fix: {e(f['fix'])}</i></li>"
        for f in q.get("failures", [])
    )
    return f'<div class="banner dq-{e(q["status"])}"><b>{e(q.get("message", ""))}</b><ul>{items}</ul></div>'


@functools.cache
def plotly_js() -> str:
    """plotly.js's basic partial bundle (bar and scatter), shipped with cquin so the page needs no network."""
    return PLOTLY_JS.read_text(encoding="utf-8")


def document(title: str, subtitle: list[str], nav: list[tuple[str, str]], body: str) -> str:
    links = "".join(f'<a href="#{e(i)}">{e(t)}</a>' for i, t in nav)
    subs = "".join(f"<p>{e(s)}</p>" for s in subtitle)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{plotly_js()}</script></head>"
        f"<body><header class='top'><h1>{e(title)}</h1>{subs}</header><nav>{links}</nav><main>{body}</main></body></html>\n"
    )


def render_report(d: ReportData, *, control: bool = False) -> str:
    """One run's report as a complete, self-contained HTML page."""
    who = d.provider_name or "provider"
    subtitle = [
        f"{who} — {d.ruleset.get('title', d.run['ruleset_id'])}",
        f"run {d.run_id} · ruleset {d.run['ruleset_id']} {d.run['ruleset_version']} · "
        + (f"as of {d.run['as_of']}" if d.run["as_of"] else "all records")
        + f" · generated {dt.date.today().isoformat()}",
        *d.signoff,
    ]
    missing = "".join(f'<div class="banner internal">{e(m)}</div>' for m in evidence_missing(d.run))
    body = quality_banner(d) + missing + banner(control) + provider_sections(d, control)
    return document(f"CQUIN report: {who}", subtitle, list(SECTIONS), body)


def render_combined(items: list[tuple[str, ReportData]], *, control: bool = False) -> str:
    """Several providers' reports in one page, led by a comparison of all of them."""
    from cquin.report import compare

    figs = _Figures("cmp-")
    cols = compare.component_columns(items)
    ys = compare.years(items)
    rows = []
    for name, d in items:
        row = [f"<b>{e(name)}</b>"]
        for cid, _ in cols:
            pct, band = compare.cell(d, cid, control)
            row.append(f"{e(pct)}<br><span class='muted'>{e(band)}</span>")
        for y in ys:
            row.append(
                f"{float(compare.earned_share(d, y)) * 100:.1f}%<br><span class='muted'>{e(money(d.totals.get(y)))} of {e(money(d.available.get(y)))}</span>"
            )
        row.append(f"<code class='id'>{e(d.run_id)}</code>")
        rows.append(row)
    head = ["provider"] + [e(cid) for cid, _ in cols] + [e(f"{y} earned") for y in ys] + ["run id"]
    comparison = (
        '<section id="comparison"><h2>Providers compared</h2>'
        + table(head, rows, numeric=range(1, len(cols) + len(ys) + 1))
        + figs.html(compare.comparison_figure(items, control=control))
        + "</section>"
    )
    body = banner(control) + comparison
    nav = [("comparison", "Comparison")]
    for i, (name, d) in enumerate(items, start=1):
        prefix = f"p{i}-"
        nav.append((f"{prefix}headline", name))
        body += (
            f'<h2 class="provider" id="{prefix}provider">{e(name)}</h2>'
            + quality_banner(d)
            + provider_sections(d, control, prefix)
        )
    ruleset = items[0][1].ruleset.get("title", "") if items else ""
    return document(f"CQUIN comparison: {len(items)} providers", [ruleset, f"generated {dt.date.today().isoformat()}"], nav, body)
