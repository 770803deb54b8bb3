"""The report as one self-contained HTML page: sections, tables, and Plotly charts with plotly.js inlined.

Every text that comes from data (provider names, labels, reasons) is escaped;
chart data is embedded by Plotly, which escapes ``</`` in its JSON.  Counts
pass through :func:`cquin.disclosure.publish` unless disclosure control is
switched off for internal use, and the page says which.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from cquin.disclosure import RULE_TEXT, applies_to, publish, published_percent
from cquin.engine.breakdowns import population_order
from cquin.report import charts
from cquin.report.data import ReportData

SECTIONS = (
    ("headline", "Headline"),
    ("components", "Components against their bands"),
    ("funnel", "Cohort funnel"),
    ("breakdowns", "Breakdowns"),
    ("quarters", "Activity by quarter and milestones"),
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
table { border-collapse:collapse; font-size:13px; margin:6px 0 10px; }
th, td { border-bottom:1px solid var(--line); padding:4px 10px; text-align:left; vertical-align:top; }
td.n, th.n { text-align:right; font-variant-numeric: tabular-nums; }
.muted { color:var(--muted); font-size:12px; }
.banner { padding:8px 12px; border-radius:6px; font-size:13px; margin:10px 0; }
.banner.sdc { background:#ecfdf5; border:1px solid #a7f3d0; }
.banner.internal { background:#fef2f2; border:1px solid #fecaca; font-weight:600; }
.cards { display:flex; flex-wrap:wrap; gap:14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:12px 16px; min-width:300px; }
.card .big { font-size:28px; font-weight:700; }
.status-met { color:#15803d; font-weight:600; }
.status-missed { color:#b91c1c; font-weight:600; }
.status-not { color:#b45309; font-weight:600; }
code { font-size:12px; word-break:break-all; }
"""


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def money(text: str | None) -> str:
    return "—" if text is None else f"£{Decimal(text):,.2f}"


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
            config={"displaylogo": False, "displayModeBar": False, "responsive": True},
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


def headline(d: ReportData, control: bool) -> str:
    cards = []
    for year in _years(d):
        label = d.ruleset["periods"][year]["label"]
        share = sum(
            (Fraction(c["share"]) * Fraction(c["payment_fraction"]) for c in d.components if c["year"] == year), Fraction(0)
        )
        avail = Decimal(d.available.get(year, "0"))
        value_line = (
            f"{money(d.totals.get(year))} earned of {money(d.available.get(year))} available"
            if avail
            else "no contract value given"
        )
        cards.append(
            f'<div class="card"><div class="muted">{e(label)}</div><div class="big">{float(share) * 100:.1f}%</div>'
            f"<div>of the year's value earned</div><div>{e(value_line)}</div></div>"
        )
    rows = []
    for c in d.components:
        rows.append(
            [
                f"<b>{e(c['component'])}</b><br><span class='muted'>{e(c['name'])}</span>",
                e(d.ruleset["periods"][c["year"]]["label"]),
                e(c["band"]),
                f"{float(Fraction(c['payment_fraction'])) * 100:g}%",
                f"{float(Fraction(c['share'])) * 100:g}%",
                e(money(c["payment"])),
                e(money(c["available"])),
            ]
        )
    return f'<div class="cards">{"".join(cards)}</div>' + table(
        ["component", "year", "band reached", "pays", "share", "earned", "available"], rows, numeric=(3, 4, 5, 6)
    )


def components(d: ReportData, control: bool, figs: _Figures) -> str:
    specs = {c["id"]: c for c in d.ruleset["components"]}
    parts = [
        "<p class='muted'>Each bar is a component's payment bands, coloured from pays nothing (red) to pays in full (green); "
        "the diamond is where the provider stands"
        + (" (from the published, rounded counts)" if control else "")
        + ". Bands are decided on the exact counts.</p>"
    ]
    for c in d.components:
        spec = specs.get(c["component"])
        if spec is None:
            continue
        nb = charts.next_band(c)
        ratio = ""
        patients = applies_to(c.get("entity"), control)  # staff counts are never altered
        if c["numerator"] is not None:
            pct = published_percent(c["numerator"], c["denominator"], control=patients)
            ratio = f"{count(c['numerator'], patients)} of {count(c['denominator'], patients)}" + (
                f" ({pct}%)" if pct is not None else " (percentage not shown: a count is suppressed)" if patients else ""
            )
        more = ""
        if nb and nb.get("more_needed") is not None:
            worth = f": +{money(nb['worth'])}" if nb.get("worth") is not None else ""
            more = f" — {e(count(nb['more_needed'], patients))} more to reach {e(nb['band'])} (pays {float(nb['pays']) * 100:g}%){e(worth)}"
        elif c["numerator"] is not None and nb is None and c["denominator"]:
            more = " — top band reached"
        parts.append(
            f"<h3>{e(c['component'])}: {e(c['name'])}</h3>"
            f"<div>{e(ratio)} {('— ' if ratio else '')}band reached: <b>{e(c['band'])}</b>{more}</div>"
            + (f"<div class='muted'>{e(c['note'])}</div>" if c.get("note") else "")
            + figs.html(charts.component_figure(c, spec, control=patients))
        )
    return "".join(parts)


def funnel(d: ReportData, control: bool, figs: _Figures) -> str:
    patients = [p for p in population_order(d.ruleset, "patient") if p in d.populations]
    staff = [p for p in population_order(d.ruleset, "staff") if p in d.populations]
    out = figs.html(charts.funnel_figure(d, patients, control=control, title="Patients"))
    rows = [
        [e(p), e(d.ruleset["populations"][p]["label"]), count(d.populations[p], control and p in patients)]
        for p in patients + staff
    ]
    if staff:  # staff counts are not patient counts: never altered by disclosure control
        out += figs.html(charts.funnel_figure(d, staff, control=False, title="Staff"))
    return (
        "<p class='muted'>Each population in the order the ruleset builds them (each after those it draws on).</p>"
        + out
        + table(["population", "label", "count"], rows, numeric=(2,))
    )


def breakdowns(d: ReportData, control: bool, figs: _Figures) -> str:
    b = d.breakdowns
    if not b:
        return "<p>These breakdowns were not recorded with this run (runs record them from cquin's breakdowns aggregate).</p>"
    pops = [p for p in b["populations"] if p in d.ruleset["populations"]]
    labels = {p: d.ruleset["populations"][p]["label"] for p in pops}
    emphasised = {c[k] for c in d.ruleset["components"] for k in ("denominator", "numerator") if k in c}
    parts = [
        f"<p class='muted'>Patients in each population, by dimension. Populations not used as a component's "
        f"numerator or denominator start hidden: click the legend to show them. Ages are on {e(b.get('age_reference_date'))}.</p>"
    ]
    for dim in b["dimensions"].values():
        parts.append(figs.html(charts.breakdown_figure(dim, pops, labels, emphasised, control=control)))
        rows = [[e(v["label"])] + [count(dim["counts"].get(p, {}).get(v["id"], 0), control) for p in pops] for v in dim["values"]]
        parts.append(
            "<details><summary>table</summary>"
            + table([e(dim["label"])] + [e(labels[p]) for p in pops], rows, numeric=range(1, len(pops) + 1))
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


def data_quality(d: ReportData, control: bool, figs: _Figures) -> str:
    # File row counts are not counts of patients: always exact.
    rows = [[e(i["name"]), count(i["read"], False), count(i["accepted"], False), count(i["rejected"], False)] for i in d.inputs]
    rej = [[e(f), e(k), count(n, False)] for f, k, n in d.rejections]
    return (
        figs.html(charts.inputs_figure(d, control=False))
        + table(["file", "read", "accepted", "rejected"], rows, numeric=(1, 2, 3))
        + "<h3>Rejected rows by reason</h3>"
        + (table(["file", "reason", "rows"], rej, numeric=(2,)) if rej else "<p>No rows were rejected.</p>")
        + "<p class='muted'>Each rejected row, with its line and value, is kept in the audit store.</p>"
    )


def trace(d: ReportData, control: bool) -> str:
    r = d.run
    rows = [
        ["run id", f"<code>{e(r['run_id'])}</code>"],
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
        "components": components(d, control, figs),
        "funnel": funnel(d, control, figs),
        "breakdowns": breakdowns(d, control, figs),
        "quarters": quarters(d, control, figs),
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


def document(title: str, subtitle: list[str], nav: list[tuple[str, str]], body: str) -> str:
    links = "".join(f'<a href="#{e(i)}">{e(t)}</a>' for i, t in nav)
    subs = "".join(f"<p>{e(s)}</p>" for s in subtitle)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{e(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head>"
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
    ]
    return document(f"CQUIN report: {who}", subtitle, list(SECTIONS), banner(control) + provider_sections(d, control))


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
        row.append(f"<code>{e(d.run_id)}</code>")
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
        body += f'<h2 class="provider" id="{prefix}provider">{e(name)}</h2>' + provider_sections(d, control, prefix)
    ruleset = items[0][1].ruleset.get("title", "") if items else ""
    return document(f"CQUIN comparison: {len(items)} providers", [ruleset, f"generated {dt.date.today().isoformat()}"], nav, body)
