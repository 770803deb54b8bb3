"""Stored runs and installed adapters, as rich tables."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.store import StoredRun, evidence_missing


def render_run_list(console: Console, runs: list[dict[str, Any]], signoff: dict[str, str] | None = None) -> None:
    """The stored runs, each with its sign-off state (``signoff``: run id -> status)."""
    if not runs:
        console.print("no runs in the audit store yet")
        return
    signoff = signoff or {}
    table = Table(title="Runs in the audit store", title_justify="left")
    for col in ("run id", "started", "ruleset", "adapter", "source", "as of", "totals (£)", "sign-off"):
        table.add_column(col)
    for r in runs:
        totals = ", ".join(f"{k} {v}" for k, v in json.loads(r["totals"]).items())
        table.add_row(
            r["run_id"],
            r["started_at"],
            f"{r['ruleset_id']} {r['ruleset_version']}",
            r["adapter"],
            escape(r["source"]),
            r["as_of"] or "",
            totals,
            escape(signoff.get(r["run_id"], "not signed off")),
        )
    console.print(table)


def render_run(console: Console, stored: StoredRun, data_quality: dict[str, Any] | None = None) -> None:
    r = stored.run
    if data_quality and data_quality.get("status") != "passed":
        style = "bold red" if data_quality["status"] == "failed" else "yellow"
        console.print(f"[{style}]{escape(data_quality['message'])}[/]")
        for f in data_quality.get("failures", []):
            console.print(f"  {escape(f['file'])}: {escape(f['rule'])}; fix: {escape(f['fix'])}")
    console.print(f"[bold]run {r['run_id']}[/]  {r['started_at']} → {r['finished_at']}  cquin {r['engine_version']}")
    console.print(f"ruleset {r['ruleset_id']} {r['ruleset_version']} sha256 {r['ruleset_sha256']}")
    console.print(f"source {escape(r['source'])} (adapter {r['adapter']}); parameters {escape(r['parameters'])}")
    for notice in evidence_missing(r):
        console.print(f"[red]{escape(notice)}[/]")
    inputs = Table(title="Inputs", title_justify="left")
    for col in ("file", "sha256", "read", "accepted", "rejected"):
        inputs.add_column(col)
    for i in stored.inputs:
        inputs.add_row(escape(i["name"]), (i["sha256"] or "")[:16], str(i["read"]), str(i["accepted"]), str(i["rejected"]))
    console.print(inputs)
    comps = Table(title="Components", title_justify="left")
    for col in ("component", "num/den", "%", "band", "pays", "share", "£"):
        comps.add_column(col)
    for c in stored.components:
        ratio = "—" if c["numerator"] is None else f"{c['numerator']}/{c['denominator']}"
        comps.add_row(
            c["component"], ratio, c["percent"] or "—", escape(c["band"]), c["payment_fraction"], c["share"], c["payment"]
        )
    console.print(comps)
    console.print(f"totals: {r['totals']}; cohorts: {r['cohorts']}")
    for m in stored.milestones:
        console.print(f"milestone {m['milestone']} (due {m['due']}): {m['status']} — {escape(m['detail'])}")


def render_adapters(console: Console, adapters: dict[str, Any], broken: list[str]) -> None:
    table = Table(title="Adapters", title_justify="left")
    for col in ("name", "package", "version", "tables", "description"):
        table.add_column(col)
    for name, reg in sorted(adapters.items()):
        table.add_row(name, reg.plugin, reg.version, ", ".join(reg.cls.tables), escape(reg.cls.description))
    console.print(table)
    for b in broken:
        console.print(f"[red]broken plugin:[/] {escape(b)}")
