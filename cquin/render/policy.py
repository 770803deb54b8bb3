"""The policy team's views: ruleset diffs and their impact, the catalogue, and a resolved ruleset as YAML."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.engine.catalogue import Entry
from cquin.engine.diff import RulesetDiff
from cquin.engine.impact import Impact
from cquin.engine.ruleset import Ruleset

# --------------------------------------------------------------------------- diff


def render_diff(console: Console, diff: RulesetDiff) -> None:
    (oid, over, osha), (nid, nver, nsha) = diff.old, diff.new
    console.print(f"[bold]{escape(oid)} {escape(over)} → {escape(nid)} {escape(nver)}[/]")
    console.print(f"[dim]old sha256 {osha}\nnew sha256 {nsha}[/]")
    if not diff.changes:
        console.print("no differences: the two rulesets say the same thing")
        return
    for section, changes in diff.by_section().items():
        console.print(f"\n[bold underline]{escape(section)}[/]")
        for c in changes:
            console.print(f"  • {escape(c.summary)}")
            if (
                isinstance(c.old, list)
                and isinstance(c.new, list)
                and section in ("Bands", "Activation instruments", "Populations and cohort rules")
            ):
                _side_by_side(console, c.old, c.new)
            for line in c.details:
                console.print(f"      {escape(line)}")
    need = diff.required_bump
    console.print(f"\n{len(diff.changes)} change(s); by semantic versioning they need a [bold]{need}[/] version change.")
    problem = diff.version_problem
    if problem:
        console.print(f"[yellow]warning: {escape(problem)}[/]")


def _side_by_side(console: Console, old: list[str], new: list[str]) -> None:
    table = Table(show_edge=False, box=None, padding=(0, 2, 0, 6), show_header=True, header_style="dim")
    table.add_column("old")
    table.add_column("new")
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else ""
        b = new[i] if i < len(new) else ""
        table.add_row(escape(a), escape(b) if a == b else f"[bold]{escape(b)}[/]")
    console.print(table)


def render_impact(console: Console, imp: Impact, list_subjects: bool = False) -> None:
    console.print(f"\n[bold underline]Impact on {escape(str(imp.source))}[/]")
    console.print("[bold]Component results[/] (old, then new)")
    for r in imp.results:
        if not r.changed:
            console.print(f"  {escape(r.id)}: [dim]same[/] — {escape(_result(r.new))}")
            continue
        console.print(f"  {escape(r.id)}: [bold]changed[/]")
        console.print(f"      was  {escape(_result(r.old))}")
        console.print(f"      now  {escape(_result(r.new))}")
    if not imp.movements:
        console.print("nobody moves in or out of any numerator, denominator or cohort")
        return
    console.print("\n[bold]Who moves[/]")
    for m in imp.movements:
        who = "patients" if m.entity == "patient" else "staff"
        what = f"cohort {m.owner}" if m.group == "cohort" else f"{m.owner} {m.group}"
        console.print(f"  {escape(what)}: {len(m.moved_in):,} {who} move in, {len(m.moved_out):,} move out")
        if list_subjects:
            if m.moved_in:
                console.print(f"      in:  {', '.join(m.moved_in)}")
            if m.moved_out:
                console.print(f"      out: {', '.join(m.moved_out)}")
    if not list_subjects:
        console.print("[dim](add --list to list the NHS numbers and staff ids that move)[/]")


def _result(result: dict[str, Any] | None) -> str:
    """One component result in words: '898 of 1016 (88.39%), above 50%, pays 100%'."""
    if result is None:
        return "(no such component)"
    pays = (
        ""
        if result.get("payment_fraction") is None
        else f", pays {(Decimal(str(result['payment_fraction'])) * 100).normalize():f}%"
    )
    if result.get("denominator") is None:
        return f"{result.get('band')}{pays}"
    percent = "not computable" if result.get("percent") is None else f"{result['percent']}%"
    return f"{result['numerator']} of {result['denominator']} ({percent}), {result.get('band')}{pays}"


# --------------------------------------------------------------------------- catalogue


def render_catalogue(console: Console, entries: list[Entry]) -> None:
    if not entries:
        console.print("no rulesets found")
        return
    table = Table(show_edge=False)
    for col in ("id", "version", "effective", "status", "extends"):
        table.add_column(col, no_wrap=True)
    table.add_column("file", overflow="fold")
    for e in entries:
        status = e.status if e.status == "published" else f"[yellow]{escape(e.status)}[/]"
        file = escape(_shown_path(e.path)) + (f"\n[red]{escape(e.problem)}[/]" if e.problem else "")
        table.add_row(escape(e.id), escape(e.version), e.effective, status, escape(e.extends or "—"), file)
    console.print(table)


def _shown_path(path: Path) -> str:
    """A path relative to the working folder when it is inside it (shorter to read), else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- a resolved ruleset as YAML


class _Dumper(yaml.SafeDumper):
    pass


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:float", str(value))


_Dumper.add_representer(Decimal, _decimal)


def resolved_yaml(r: Ruleset) -> str:
    """The fully resolved ruleset as YAML; code list paths are rewritten relative to the ruleset's own folder."""
    doc: dict[str, Any] = {k: v for k, v in r.doc.items()}
    lists = {}
    for cid, spec in doc.get("code_lists", {}).items():
        spec = dict(spec)
        if cid in r.code_lists:
            spec["file"] = Path(os.path.relpath(r.code_lists[cid].path, r.path.resolve().parent)).as_posix()
        lists[cid] = spec
    doc["code_lists"] = lists
    chain = " <- ".join(f"{rid} {ver} ({path})" for rid, ver, path in r.lineage) or f"{r.id} {r.version}"
    header = (
        f"# {r.id} {r.version} ({r.status}), fully resolved: {chain}\n"
        f"# sha256 {r.sha256} (the resolved ruleset and its code lists)\n"
        "# Code list paths are relative to the folder of the ruleset that was resolved.\n"
    )
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120, default_flow_style=False)
