"""The commissioning cycle's commands: sign off a run, delete an unsigned one (compare, reconcile and sample follow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cquin.store import DEFAULT_STORE

StoreOpt = Annotated[Path, typer.Option("--store", help="The audit store (SQLite file).")]
RunArg = Annotated[str, typer.Argument(help="A run id (or a unique prefix) from the audit store.")]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("signoff")
    def signoff(
        run_id: RunArg,
        party: Annotated[str, typer.Option("--as", help="Who is signing: provider or commissioner.")],
        by: Annotated[str, typer.Option("--by", help="The name of the person signing.")],
        decision: Annotated[str, typer.Option("--decision", help="agree or dispute (yes or no for a confirmation).")],
        subject: Annotated[
            str,
            typer.Option(
                "--subject",
                help="What is signed off: results (default), cohort.year1, cohort.year2, or a confirmation the ruleset "
                "reads (e.g. plan: the commissioner's 'plan received and accepted').",
            ),
        ] = "results",
        note: Annotated[str | None, typer.Option("--note", help="Why (recorded with the decision).")] = None,
        on: Annotated[
            str | None, typer.Option("--on", help="The date the decision was made (YYYY-MM-DD); default today.")
        ] = None,
        store: StoreOpt = DEFAULT_STORE,
    ) -> None:
        """Record who agreed (or disputed) a run's results, a cohort or a confirmation, against the run's hash."""
        from cquin.cli import _date, out
        from cquin.cycle.signoff import record_signoff
        from cquin.render.cycle import render_signoff_recorded
        from cquin.runner import require_store

        saved, state = record_signoff(
            require_store(store),
            run_id,
            party=party,
            by=by,
            decision=decision,
            subject=subject,
            note=note,
            on=_date(on, "--on"),
        )
        render_signoff_recorded(out, saved, state)

    runs = groups["runs"]

    @runs.command("signoff")
    def runs_signoff(run_id: RunArg, store: StoreOpt = DEFAULT_STORE) -> None:
        """Show a run's sign-off state: each party's decisions, cohort agreements, confirmations, supersession."""
        from cquin.cli import out
        from cquin.cycle.signoff import signoff_state
        from cquin.render.cycle import render_signoff_state
        from cquin.runner import require_store
        from cquin.store import load_run, open_store

        db = open_store(require_store(store))
        state = signoff_state(db, load_run(db, run_id).run["run_id"])
        render_signoff_state(out, state)
        for s in state.decisions:
            out.print(f"  #{s.signoff_id} {s.subject}: {s.describe()} (recorded {s.recorded_at}, digest {s.digest[:12]})")

    @runs.command("delete")
    def runs_delete(run_id: RunArg, store: StoreOpt = DEFAULT_STORE) -> None:
        """Delete a run nobody has signed off; a signed-off run is refused (it is kept exactly as it was)."""
        from cquin.cli import out
        from cquin.cycle.signoff import delete_run
        from cquin.runner import require_store

        out.print(f"deleted run {delete_run(require_store(store), run_id)}")
