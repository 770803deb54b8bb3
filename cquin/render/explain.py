"""A patient's path through every rule of a run, with the ruleset's citations."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from cquin.render.ruleset_text import render_citation as _cite
from cquin.store import Explanation


def render_explanation(console: Console, ex: Explanation) -> None:
    rs = ex.ruleset
    run = ex.run
    console.print(
        f"[bold]{escape(ex.subject_id)}[/] in run {run['run_id']} ({run['ruleset_id']} {run['ruleset_version']}, sha256 {str(run['ruleset_sha256'])[:12]}…)"
    )
    if ex.cohorts:
        for c in ex.cohorts:
            console.print(f"  member of the [bold]{c['cohort']}[/] cohort: {escape(str(c['reason']))}")
    elif ex.decisions and ex.decisions[0]["entity"] == "patient":
        console.print("  not a member of any cohort")
    if ex.rejections:
        console.print(f"\n[bold]rejected at load[/] ({len(ex.rejections):,} rows naming {escape(ex.subject_id)}):")
        for r in ex.rejections:
            console.print(
                f"  {escape(str(r['file']))} line {r['line']}, column {escape(str(r['column_name']))}: {escape(str(r['reason']))}"
            )
        if not ex.decisions:
            console.print("  no accepted record of this subject, so no rule decided about them in this run")
    components: dict[str, Any] = {c["id"]: c for c in rs.get("components", [])}
    pops: dict[str, Any] = dict(rs.get("populations", {}))
    cited: set[str] = set()  # each citation is printed once, then referred to

    def cite(key: str, node: dict[str, Any]) -> None:
        if not node.get("citation") and not node.get("interpretation"):
            return
        if key in cited:
            console.print(f"  [dim](citation for {escape(key)}: above)[/]")
            return
        cited.add(key)
        _cite(console, node, "  ")

    for d in ex.decisions:
        comp = components.get(str(d["component"]), {})
        if d["in_numerator"]:
            verdict = "[green]counted in the numerator[/]"
        elif d["in_denominator"]:
            verdict = "[yellow]in the denominator only[/]"
        else:
            verdict = "[dim]not in the denominator[/]"
        console.print(f"\n[bold]{d['component']}[/] — {escape(str(comp.get('name', '')))}: {verdict}")
        console.print(f"  rule [bold]{d['rule']}[/]: {escape(str(d['reason']))}")
        cite(str(d["rule"]), pops.get(str(d["rule"]), {}))
        cite(str(d["component"]), comp)
