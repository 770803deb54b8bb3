"""Stored runs and installed adapters, as rich tables."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.render.results import COMPONENT_FIELDS
from cquin.store import StoredRun, evidence_missing


def render_run_list(console: Console, runs: list[dict[str, Any]], signoff: dict[str, str] | None = None) -> None:
    """One run per row with its sign-off state (``signoff``: run id -> status); the run id is always whole."""
    if not runs:
        console.print("no runs in the audit store yet")
        return
    signoff = signoff or {}
    table = Table(title="Runs in the audit store", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("run id / source", overflow="fold", min_width=max(len(r["run_id"]) for r in runs))
    table.add_column("ruleset", no_wrap=True)
    table.add_column("as of", no_wrap=True)
    table.add_column("earned (£)", justify="right", no_wrap=True)
    table.add_column("sign-off", overflow="fold")
    for r in runs:
        totals = json.loads(r["totals"] or "{}")
        given = json.loads(r.get("parameters") or "{}").get("contract_value") is not None
        earned = "\n".join(f"{k} {Decimal(v):,.2f}" for k, v in totals.items()) if given else "no contract value"
        table.add_row(
            f"[bold]{r['run_id']}[/]\n[dim]{escape(r['source'])} ({r['adapter']}), started {r['started_at']}[/]",
            f"{r['ruleset_id']}\n{r['ruleset_version']}",
            r["as_of"] or "—",
            earned,
            escape(signoff.get(r["run_id"], "not signed off")),
        )
    console.print(table)
    console.print("[dim]a run is named by its id, a unique prefix of it, or `latest`[/]")


def run_list_document(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``cquin runs list --format json``: one object per run."""
    out = []
    for r in runs:
        params = json.loads(r.get("parameters") or "{}")
        out.append(
            {
                "run_id": r["run_id"],
                "started_at": r["started_at"],
                "ruleset": {"id": r["ruleset_id"], "version": r["ruleset_version"]},
                "adapter": r["adapter"],
                "source": r["source"],
                "as_of": r["as_of"],
                "contract_value": params.get("contract_value"),
                "totals": json.loads(r["totals"] or "{}"),
            }
        )
    return out


def run_document(stored: StoredRun, data_quality: dict[str, Any] | None = None) -> dict[str, Any]:
    """``cquin runs show --format json``: the data-quality verdict and missing evidence first, then the stored run,
    its inputs, components, milestones and basis."""
    from cquin.engine.outcome import NextStep, basis_from_stored

    r = stored.run
    return {
        "data_quality_check": data_quality,
        "evidence_missing": evidence_missing(r),
        "run_id": r["run_id"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
        "engine_version": r["engine_version"],
        "ruleset": {
            "id": r["ruleset_id"],
            "version": r["ruleset_version"],
            "sha256": r["ruleset_sha256"],
            "source": r["ruleset_source"],
        },
        "results_sha256": r["results_sha256"],
        "source": r["source"],
        "adapter": r["adapter"],
        "as_of": r["as_of"],
        "parameters": json.loads(r["parameters"] or "{}"),
        "basis": basis_from_stored(r, stored.components).as_dict(),
        "cohorts": json.loads(r["cohorts"]),
        "inputs": [{k: i[k] for k in ("name", "path", "sha256", "read", "accepted", "rejected")} for i in stored.inputs],
        "components": [
            {
                **{k: c[k] for k in COMPONENT_FIELDS},
                "next_step": (lambda s: s.as_dict() if s else None)(NextStep.from_stored(c)),
            }
            for c in stored.components
        ],
        "milestones": [{k: m[k] for k in ("milestone", "year", "due", "status", "detail")} for m in stored.milestones],
    }


def _pct(fraction_text: str) -> str:
    """'0.7' -> '70%' (a stored payment fraction or share, in words a reader expects)."""
    return f"{float(Fraction(fraction_text)) * 100:g}%"


def render_run(console: Console, stored: StoredRun, data_quality: dict[str, Any] | None = None) -> None:
    """A stored run for a reader: the data-quality verdict and missing evidence first, then what was run on what,
    the money and its basis, each component, the milestones."""
    from cquin.engine.outcome import NextStep, basis_from_stored

    r = stored.run
    if data_quality and data_quality.get("status") != "passed":
        style = "bold red" if data_quality["status"] == "failed" else "yellow"
        console.print(f"[{style}]{escape(data_quality['message'])}[/]")
        for f in data_quality.get("failures", []):
            console.print(f"  {escape(f['file'])}: {escape(f['rule'])}; fix: {escape(f['fix'])}")
    for notice in evidence_missing(r):
        console.print(f"[red]{escape(notice)}[/]")
    params = json.loads(r["parameters"] or "{}")
    console.print(f"[bold]run {r['run_id']}[/]")
    console.print(f"  evaluated   {r['started_at']} to {r['finished_at']} by cquin {r['engine_version']}")
    console.print(f"  ruleset     {r['ruleset_id']} {r['ruleset_version']} (sha256 {r['ruleset_sha256']})")
    console.print(f"  source      {escape(r['source'])} (adapter {r['adapter']})")
    console.print(f"  as of       {r['as_of'] or 'all records (no cut-off date)'}")
    options = params.get("adapter_options") or {}
    if options:
        console.print("  options     " + ", ".join(f"{escape(k)}={escape(str(v))}" for k, v in options.items()))
    if params.get("pseudonymised"):
        console.print(f"  pseudonymised with the key whose fingerprint is {params['pseudonymised']}")
    console.print(f"  results     sha256 {r['results_sha256']}")
    basis = basis_from_stored(r, stored.components)
    console.print()
    for line in basis.lines():
        console.print(f"[bold]{escape(line)}[/]")
    comps = Table(
        title="Components", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True
    )
    comps.add_column("component", overflow="fold", min_width=max([len(c["component"]) for c in stored.components] + [9]))
    comps.add_column("£ earned", justify="right", no_wrap=True)
    comps.add_column("band reached", overflow="fold")
    comps.add_column("counted", justify="right", no_wrap=True)
    comps.add_column("%", justify="right", no_wrap=True)
    for c in stored.components:
        given = basis.year(c["year"]).contract_value is not None
        ratio = "—" if c["numerator"] is None else f"{c['numerator']:,}\nof {c['denominator']:,}"
        band = escape(c["band"]) + f"\n[dim]pays {_pct(c['payment_fraction'])} of a {_pct(c['share'])} share[/]"
        step = NextStep.from_stored(c)
        if step is not None:
            band += f"\n[cyan]next: {escape(step.text())}[/]"
        comps.add_row(
            f"{escape(c['component'])}\n[dim]{escape(c['name'])}[/]",
            f"{Decimal(c['payment']):,.2f}" if given else "—",
            band,
            ratio,
            c["percent"] or "—",
        )
    console.print(comps)
    cohorts = json.loads(r["cohorts"])
    if cohorts:
        console.print("cohorts: " + ", ".join(f"{k} {v:,}" for k, v in cohorts.items()))
    for m in stored.milestones:
        console.print(f"milestone {m['milestone']} (due {m['due']}): {m['status']} — {escape(m['detail'])}")
    inputs = Table(title="Inputs", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    inputs.add_column("file", overflow="fold")
    inputs.add_column("read", justify="right", no_wrap=True)
    inputs.add_column("accepted", justify="right", no_wrap=True)
    inputs.add_column("rejected", justify="right", no_wrap=True)
    inputs.add_column("sha256", no_wrap=True)
    for i in stored.inputs:
        inputs.add_row(
            escape(i["name"]), f"{i['read']:,}", f"{i['accepted']:,}", f"{i['rejected']:,}", (i["sha256"] or "")[:16] + "…"
        )
    console.print(inputs)


def render_adapters(console: Console, adapters: dict[str, Any], broken: list[str]) -> None:
    table = Table(title="Adapters", title_justify="left")
    for col in ("name", "package", "version", "tables", "description"):
        table.add_column(col)
    for name, reg in sorted(adapters.items()):
        table.add_row(name, reg.plugin, reg.version, ", ".join(reg.cls.tables), escape(reg.cls.description))
    console.print(table)
    for b in broken:
        console.print(f"[red]broken plugin:[/] {escape(b)}")
