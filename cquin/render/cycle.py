"""The commissioning cycle on the terminal: sign-off state, run comparisons, reconciliations and audit samples."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from cquin.cycle.signoff import Signoff, SignoffState


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
