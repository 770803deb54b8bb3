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
        from cquin.commands.common import out, parse_date
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
            on=parse_date(on, "--on"),
        )
        render_signoff_recorded(out, saved, state)

    runs = groups["runs"]

    @runs.command("signoff")
    def runs_signoff(run_id: RunArg, store: StoreOpt = DEFAULT_STORE) -> None:
        """Show a run's sign-off state: each party's decisions, cohort agreements, confirmations, supersession."""
        from cquin.commands.common import out
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
        from cquin.commands.common import out
        from cquin.cycle.signoff import delete_run
        from cquin.runner import require_store

        out.print(f"deleted run {delete_run(require_store(store), run_id)}")

    @app.command("compare")
    def compare(
        run_a: Annotated[str, typer.Argument(help="The earlier run (id or unique prefix).")],
        run_b: Annotated[str, typer.Argument(help="The later run.")],
        limit: Annotated[int, typer.Option("--limit", help="Patients listed per reason and figure.")] = 10,
        out_file: Annotated[
            Path | None, typer.Option("--out", help="Also write every move to this CSV file (contains NHS numbers).")
        ] = None,
        fmt: Annotated[str, typer.Option("--format", help="Output: table or json.")] = "table",
        store: StoreOpt = DEFAULT_STORE,
    ) -> None:
        """Compare two runs: whether data, ruleset or both differ; who moved in or out of each figure, and why."""
        import json
        import sys

        from cquin.commands.common import out
        from cquin.cycle.compare import compare_runs
        from cquin.exceptions import UserError
        from cquin.render.cycle import moves_csv, render_comparison
        from cquin.runner import require_store

        if fmt not in ("table", "json"):
            raise UserError(f"--format {fmt!r}: expected table or json")
        cmp = compare_runs(require_store(store), run_a, run_b)
        if out_file is not None:
            from cquin.cycle.files import write_private

            write_private(out_file, moves_csv(cmp))
        if fmt == "json":
            sys.stdout.write(json.dumps(cmp.as_dict(), indent=2) + "\n")
        else:
            render_comparison(out, cmp, limit=max(limit, 0))
            if out_file is not None:
                out.print(f"wrote every move to {out_file} (contains NHS numbers: keep it within the provider and commissioner)")

    @app.command("progress")
    def progress(
        provider: Annotated[
            str | None, typer.Option("--provider", help="The provider's ODS code (needed when the store holds several).")
        ] = None,
        store: StoreOpt = DEFAULT_STORE,
    ) -> None:
        """Quarter-on-quarter progress for one provider: each as-of date's figures, payments and sign-off state."""
        from cquin.commands.common import out
        from cquin.cycle.compare import provider_progress
        from cquin.render.cycle import render_progress
        from cquin.runner import require_store

        code, points = provider_progress(require_store(store), provider)
        render_progress(out, code, points)

    @app.command("reconcile")
    def reconcile(
        run_id: RunArg,
        return_file: Annotated[
            Path,
            typer.Option(
                "--return", help="The provider's return: the CSV `cquin submission` writes, or their own figures in it."
            ),
        ],
        limit: Annotated[int, typer.Option("--limit", help="Patients or staff listed per differing figure.")] = 10,
        fmt: Annotated[str, typer.Option("--format", help="Output: table or json.")] = "table",
        store: StoreOpt = DEFAULT_STORE,
    ) -> None:
        """Reconcile a provider's return with an evaluation, figure by figure (exit 1 when any figure differs)."""
        import json
        import sys

        from cquin.commands.common import out
        from cquin.cycle.reconcile import reconcile as run_reconcile
        from cquin.exceptions import UserError
        from cquin.render.cycle import render_reconciliation
        from cquin.runner import require_store

        if fmt not in ("table", "json"):
            raise UserError(f"--format {fmt!r}: expected table or json")
        rec = run_reconcile(require_store(store), run_id, return_file)
        if fmt == "json":
            sys.stdout.write(json.dumps(rec.as_dict(), indent=2) + "\n")
        else:
            render_reconciliation(out, rec, limit=max(limit, 0))
        if rec.differences:
            raise typer.Exit(1)

    @app.command("sample")
    def sample(
        run_id: RunArg,
        size: Annotated[int, typer.Option("--size", help="How many patients to draw.")],
        seed: Annotated[int, typer.Option("--seed", help="The random seed: the same run, size and seed give the same sample.")],
        out_file: Annotated[
            Path | None,
            typer.Option("--out", help="Also write the sample as CSV (contains NHS numbers: for the case-note audit)."),
        ] = None,
        fmt: Annotated[str, typer.Option("--format", help="Output: table or json.")] = "table",
        store: StoreOpt = DEFAULT_STORE,
    ) -> None:
        """Draw a reproducible audit sample of patients, stratified by component outcome, each with their explanation."""
        import json
        import sys

        from cquin.commands.common import out
        from cquin.cycle.files import write_private
        from cquin.cycle.sample import draw_sample, sample_csv
        from cquin.exceptions import UserError
        from cquin.render.cycle import render_sample
        from cquin.runner import require_store

        if fmt not in ("table", "json"):
            raise UserError(f"--format {fmt!r}: expected table or json")
        drawn = draw_sample(require_store(store), run_id, size=size, seed=seed)
        if out_file is not None:
            write_private(out_file, sample_csv(drawn))
        if fmt == "json":
            sys.stdout.write(json.dumps(drawn.as_dict(), indent=2) + "\n")
            return
        render_sample(out, drawn)
        if out_file is not None:
            out.print(f"wrote the sample to {out_file} (contains NHS numbers: share only for the case-note audit)")
