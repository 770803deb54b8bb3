"""Ruleset validation reports and the policy reader's view of a ruleset."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.engine.bands import to_fraction
from cquin.engine.ruleset import Problem, Ruleset
from cquin.policytest import FileResult


def render_validation(console: Console, name: str, ruleset: Ruleset | None, problems: list[Problem]) -> bool:
    """Print each problem; return True when there was an error."""
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for p in errors:
        console.print(f"[red]{escape(str(p.location))}: error:[/] {escape(p.message)}")
    for p in warnings:
        console.print(f"[yellow]{escape(str(p.location))}: warning:[/] {escape(p.message)}")
    if errors:
        console.print(f"[bold red]{escape(name)}: {len(errors)} error(s), {len(warnings)} warning(s)[/]")
        return True
    assert ruleset is not None
    console.print(
        f"[bold green]{escape(name)}: valid[/] — {escape(ruleset.id)} {escape(ruleset.version)} ({ruleset.status}), "
        f"{len(ruleset.components)} components, {len(ruleset.code_lists)} code lists, "
        f"{len(warnings)} warning(s); sha256 {ruleset.sha256}"
    )
    return False


def _pct(value: Any) -> str:
    f = to_fraction(value)
    return f"{f.numerator}%" if f.denominator == 1 else f"{float(f):g}%"


def render_ruleset(console: Console, r: Ruleset) -> None:
    d = r.doc
    console.print(f"[bold]{escape(r.title)}[/]")
    console.print(f"{r.id} version {r.version} ({r.status}); effective {d['effective']['from']} to {d['effective']['to']}")
    console.print(f"sha256 {r.sha256}")
    ind = d["indicator"]
    console.print(
        f"\n[bold]Indicator {escape(str(ind['id']))}: {escape(ind['name'])}[/] — worth {_pct(ind['weighting_percent'])} of the contract value"
    )
    render_citation(console, ind)
    console.print("\n[bold]Periods[/]")
    for pid, p in d["periods"].items():
        quarters = ", ".join(f"{q['id']} to {q['to']}" for q in p.get("quarters", []))
        console.print(f"  {pid}: {escape(p['label'])}, {p['from']} to {p['to']} ({quarters})")
    for year in r.years():
        console.print(f"\n[bold]{escape(d['periods'][year]['label'])}: components[/]")
        for comp in [c for c in d["components"] if c["year"] == year]:
            table = Table(
                title=f"{comp['id']} — {comp['name']} ({_pct(comp['share_percent'])} of the year's value)",
                title_justify="left",
                show_edge=False,
            )
            table.add_column("when")
            table.add_column("pays", justify="right")
            if "attainment" in comp:
                for level in comp["attainment"]:
                    req = ", ".join(f"{k} on or before {v}" for k, v in level["requires"].items()) or "otherwise"
                    table.add_row(f"{escape(level['label'])} ({escape(req)})", _pct(level["pays_percent"]))
            else:
                unit = "" if comp.get("bands_on") == "numerator_count" else "%"
                what = "patients/staff counted" if unit == "" else "of the denominator"
                for band, spec in zip(r.bands(comp), comp["bands"], strict=True):
                    label = f" — {spec['label']}" if spec.get("label") else ""
                    table.add_row(f"{band.describe(unit)} {what}{escape(label)}", _pct(spec["pays_percent"]))
            console.print(table)
            if "numerator" in comp:
                pops = d["populations"]
                console.print(
                    f"    numerator: {escape(pops[comp['numerator']]['label'])}; denominator: {escape(pops[comp['denominator']]['label'])}"
                )
            render_citation(console, comp, indent="    ")
    console.print("\n[bold]Populations[/]")
    for pid, pop in d["populations"].items():
        console.print(f"  [bold]{pid}[/]: {escape(pop['label'])}")
        render_citation(console, pop, indent="    ")
    console.print("\n[bold]Activation[/]")
    pam = d["instruments"]["pam"]
    levels = ", ".join(f"level {lv['level']} up to {lv['score_at_most']}" for lv in pam["levels"])
    console.print(f"  PAM: {levels}; low activation = level {' or '.join(map(str, pam['low_activation_levels']))}")
    render_citation(console, pam, indent="    ")
    gpps = d["instruments"]["gpps"]
    for q in gpps["questions"]:
        opts = "; ".join(f"{o['answer']} = {o['points']}" for o in q["options"])
        console.print(f"  GPPS {q['id']}: {escape(opts)}")
    console.print(f"  GPPS low activation: total at most {gpps['low_activation_points_at_most']} points")
    render_citation(console, gpps, indent="    ")
    console.print("\n[bold]Long-term-condition categories[/]")
    for cat in d["ltc"]["categories"]:
        sizes = ", ".join(f"{ref} ({len(r.code_lists[ref].codes)} codes)" for ref in cat["code_lists"])
        window = f"; within {cat['lookback_years']} years" if cat.get("lookback_years") else ""
        console.print(f"  {cat['id']}: {escape(cat['label'])} — {sizes}{window}")
    if d.get("milestones"):
        console.print("\n[bold]Milestones[/]")
        for ms in d["milestones"]:
            console.print(f"  {ms['id']} (due {ms['due']}): {escape(ms['description'])}")
    if d.get("recorded_evidence"):
        console.print("\n[bold]Recorded evidence[/] (decisions recorded with `cquin signoff --subject ...`)")
        for eid, ev in d["recorded_evidence"].items():
            unrecorded = "provisional" if ev["when_not_recorded"] == "provisional" else "not met"
            console.print(
                f"  {eid}: {escape(ev['label'])} — recorded by the {ev['party']} as --subject {ev['subject']}; "
                f"until recorded: {unrecorded}"
            )
            render_citation(console, ev, indent="    ")


def render_citation(console: Console, node: dict[str, Any], indent: str = "  ") -> None:
    """A rule's citation (source, section, quote) and its interpretation, if it records one."""
    c = node.get("citation")
    if c:
        console.print(f"{indent}[dim]source: {escape(c['source'])}, {escape(c['section'])}: “{escape(c['quote'])}”[/]")
    i = node.get("interpretation")
    if i:
        console.print(f"{indent}[italic]interpretation:[/] {escape(i['decision'])} [dim](why: {escape(i['why'])})[/]")


def render_test_results(console: Console, results: list[FileResult]) -> bool:
    """Print each case as PASS/FAIL with expected-vs-actual; True when all passed."""
    total = failed = 0
    for fr in results:
        console.print(f"[bold]{escape(str(fr.path))}[/] ({escape(fr.ruleset)})")
        for case in fr.cases:
            total += 1
            if case.passed:
                console.print(f"  [green]PASS[/] {escape(case.name)}")
            else:
                failed += 1
                console.print(f"  [red]FAIL[/] {escape(case.name)}  [dim]{escape(case.location)}[/]")
                for f in case.failures:
                    console.print(f"       {escape(f)}")
    colour = "green" if not failed else "red"
    console.print(f"[{colour}]{total - failed} passed, {failed} failed[/]")
    return failed == 0
