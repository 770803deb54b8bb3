"""The commissioning cycle on the terminal: sign-off state, run comparisons, reconciliations and audit samples."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cquin.cycle.compare import Move, ProgressPoint, RunComparison
from cquin.cycle.sample import AuditSample
from cquin.cycle.signoff import Signoff, SignoffState

if TYPE_CHECKING:  # a use case's result, rendered here; the use case sits above the outputs
    from cquin.cycle.reconcile import Reconciliation


def render_signoff_state(console: Console, state: SignoffState) -> None:
    colour = "green" if state.signed_off else ("red" if "disputed" in state.status else "yellow")
    lines = state.lines()
    console.print(f"[{colour}]{escape(lines[0])}[/]")
    for line in lines[1:]:
        console.print(f"  {escape(line)}")


def render_signoff_recorded(console: Console, saved: Signoff, state: SignoffState) -> None:
    what = "results" if saved.subject == "results" else saved.subject
    console.print(
        f"recorded sign-off #{saved.signoff_id}: the {saved.party} ({escape(saved.signed_by)}) {saved.decision}s "
        f"run {saved.run_id}'s {escape(what)} on {saved.decided_on} (digest {saved.digest[:12]})"
    )
    render_signoff_state(console, state)
    console.print("[dim]the run is now kept exactly as it is: it cannot be changed or deleted[/]")


def render_comparison(console: Console, cmp: RunComparison, limit: int = 10) -> None:
    """Two runs side by side: what differs, each component's figures, and who moved in or out of each figure."""
    a, b = cmp.run_a, cmp.run_b
    for label, r, state in (("A", a, cmp.signoff[0]), ("B", b, cmp.signoff[1])):
        console.print(
            f"run {label}: [bold]{r['run_id']}[/] — {r['ruleset_id']} {r['ruleset_version']}, "
            f"{'as of ' + r['as_of'] if r['as_of'] else 'all records'}; {escape(state)}"
        )
    console.print(
        "the runs differ in: " + (", ".join(cmp.differs_in) if cmp.differs_in else "nothing (same data, ruleset and settings)")
    )
    for change in cmp.input_changes:
        console.print(f"  {escape(change)}")
    for note in cmp.notes:
        console.print(f"[yellow]note: {escape(note)}[/]")
    table = Table(title="Components", title_justify="left")
    for col in ("component", "run A", "run B", "change"):
        table.add_column(col, justify="left" if col == "component" else "right")
    for c in cmp.components:
        table.add_row(
            escape(c.component),
            _figure(c.before),
            _figure(c.after),
            "[bold]changed[/]" if c.changed else "same",
        )
    console.print(table)
    for f in cmp.figures:
        if f.before == f.after and not f.moves:
            continue
        delta = "" if f.before is None or f.after is None else f" ({f.after - f.before:+,})"
        console.print(
            f"[bold]{escape(f.item)} {f.measure}[/]: {_n(f.before)} -> {_n(f.after)}{delta}; "
            f"{len(f.moved_in):,} moved in, {len(f.moved_out):,} moved out"
        )
        for why, moves in _by_reason(f.moves).items():
            console.print(f"  {len(moves):,} × {escape(why)}")
            for m in moves[:limit]:
                arrow = "in " if m.direction == "in" else "out"
                console.print(f"    {arrow} {escape(m.subject_id)}: was {escape(m.before)}; now {escape(m.after)}")
            if len(moves) > limit:
                console.print(f"    [dim]… and {len(moves) - limit:,} more (--limit, or --out FILE for all)[/]")


def _by_reason(moves: list[Move]) -> dict[str, list[Move]]:
    out: dict[str, list[Move]] = {}
    for m in moves:
        out.setdefault(f"{'in' if m.direction == 'in' else 'out'}: {m.why}", []).append(m)
    return out


def _n(v: int | None) -> str:
    return "—" if v is None else f"{v:,}"


def _figure(row: dict[str, Any] | None) -> str:
    if row is None:
        return "not in this run"
    ratio = "" if row["numerator"] is None else f"{row['numerator']:,}/{row['denominator']:,} "
    return f"{ratio}{escape(str(row['band']))}\n{_money(row['payment'])}"


def _money(text: str | None) -> str:
    from decimal import Decimal

    return "—" if text is None else f"£{Decimal(text):,.2f}"


def render_progress(console: Console, provider: str | None, points: list[ProgressPoint]) -> None:
    """Quarter on quarter: each as-of date's figures for one provider, with the change since the one before."""
    table = Table(title=f"Progress for {escape(provider or 'the provider')}", title_justify="left")
    table.add_column("component")
    for p in points:
        table.add_column(f"{p.as_of or 'all records'}\n[dim]{p.run_id}[/]", justify="right")
    comps = list(dict.fromkeys(cid for p in points for cid in p.components))
    for cid in comps:
        cells = []
        prev = None
        for p in points:
            row = p.components.get(cid)
            if row is None:
                cells.append("—")
                continue
            text = row["percent"] + "%" if row["percent"] is not None else escape(str(row["band"]))
            if row["numerator"] is not None:
                text = f"{row['numerator']:,}/{row['denominator']:,}\n{text}"
            if prev is not None and prev.get("payment") != row["payment"]:
                text += f"\n{_money(row['payment'])} (was {_money(prev['payment'])})"
            else:
                text += f"\n{_money(row['payment'])}"
            cells.append(text)
            prev = row
        table.add_row(escape(cid), *cells)
    years = list(dict.fromkeys(y for p in points for y in p.totals))
    for y in years:
        table.add_row(f"[bold]total {escape(y)}[/]", *(_money(p.totals.get(y)) for p in points))
    cohorts = list(dict.fromkeys(c for p in points for c in p.cohorts))
    for c in cohorts:
        table.add_row(f"cohort {escape(c)}", *(_n(p.cohorts.get(c)) for p in points))
    table.add_row("sign-off", *(escape(p.signoff) for p in points))
    console.print(table)


def moves_csv(cmp: RunComparison) -> str:
    """Every move as CSV (one row per subject and figure), formula-safe."""
    import csv
    import io

    from cquin.outfile import safe_cell

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["item", "measure", "subject_id", "entity", "direction", "why", "run_a", "run_b"])
    for f in cmp.figures:
        for m in f.moves:
            w.writerow([safe_cell(x) for x in (f.item, f.measure, m.subject_id, m.entity, m.direction, m.why, m.before, m.after)])
    return buf.getvalue()


def render_reconciliation(console: Console, rec: Reconciliation, limit: int = 10) -> None:
    """The return beside the evaluation, figure by figure; each difference with who is behind it."""
    console.print(f"reconciling {escape(rec.return_file)} with run [bold]{rec.run_id}[/]; {escape(rec.signoff)}")
    for note in rec.notes:
        console.print(f"[dim]{escape(note)}[/]")
    table = Table(title="Figures", title_justify="left")
    for col in ("item", "measure", "return", "evaluation", ""):
        table.add_column(col, justify="right" if col in ("return", "evaluation") else "left")
    for f in rec.figures:
        mark = "[green]agrees[/]" if f.agrees else f"[red]{escape(f.status)}[/]"
        table.add_row(escape(f.item), escape(f.measure), escape(f.returned or "—"), escape(f.evaluated or "—"), mark)
    console.print(table)
    diffs = rec.differences
    agree = len(rec.figures) - len(diffs)
    console.print(f"{agree:,} figure(s) agree, {len(diffs):,} differ")
    for f in diffs:
        where = f" (return line {f.line})" if f.line else ""
        console.print(
            f"[bold]{escape(f.item)} {escape(f.measure)}[/]{where}: return {escape(f.returned or '—')}, evaluation {escape(f.evaluated or '—')}"
        )
        for text in f.explanation:
            console.print(f"  {escape(text)}")
        for m in f.moves[:limit]:
            side = "evaluation only" if m.direction == "in" else "return only"
            console.print(
                f"    {escape(m.subject_id)} ({m.entity}, {side}): return's run {escape(m.before)}; evaluation {escape(m.after)}"
            )
        if len(f.moves) > limit:
            console.print(f"    [dim]… and {len(f.moves) - limit:,} more (--limit, or --format json)[/]")


def render_sample(console: Console, sample: AuditSample) -> None:
    """The strata and the sampled patients, each with their path through every component."""
    console.print(
        f"audit sample of run [bold]{sample.run_id}[/]: {len(sample.patients):,} of {sample.population:,} patients, "
        f"seed {sample.seed} (draw {sample.digest[:12]}: the same run, --size and --seed give the same patients)"
    )
    table = Table(title="Strata (outcome in each patient component)", title_justify="left")
    for col in ("stratum", *sample.components, "patients", "drawn"):
        table.add_column(col, justify="right" if col in ("stratum", "patients", "drawn") else "left")
    for i, s in enumerate(sample.strata):
        table.add_row(str(i + 1), *(escape(o) for o in s.key), f"{s.size:,}", f"{s.drawn:,}")
    console.print(table)
    for p in sample.patients:
        console.print(f"[bold]{escape(p.subject_id)}[/] (stratum {p.stratum + 1})")
        for d in p.decisions:
            where = "numerator" if d["in_numerator"] else ("denominator only" if d["in_denominator"] else "outside")
            console.print(f"  {escape(str(d['component']))}: {where} — {escape(str(d['rule']))}: {escape(str(d['reason']))}")
        for c in p.cohorts:
            console.print(f"  cohort {escape(str(c['cohort']))}: {escape(str(c['reason']))}")
