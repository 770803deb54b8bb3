"""The provider's "what next" command: the people behind each component's distance to its next band."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cquin.store import DEFAULT_STORE


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("worklist")
    def worklist(
        run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or latest.")],
        out_file: Annotated[
            Path, typer.Option("--out", help="CSV file to write (UTF-8 with BOM, for Excel; owner-only).")
        ] = Path("worklist.csv"),
        store: Annotated[Path, typer.Option("--store", help="The audit store (SQLite file).")] = DEFAULT_STORE,
    ) -> None:
        """Write who is behind each distance to the next band: patients to see or follow up, staff to train."""
        from rich.markup import escape

        from cquin.commands.common import out
        from cquin.outfile import check_out
        from cquin.render.worklist import IDENTIFIABLE, write_worklist
        from cquin.runner import require_store

        check_out(out_file)
        written = write_worklist(require_store(store), run_id, out_file)
        for step, n in written:
            out.print(f"{escape(step.component)}: {escape(step.text())} — {n:,} people listed")
        if not written:
            out.print("every component is at its top band (or cannot move): nobody to list")
        out.print(f"wrote {sum(n for _, n in written):,} rows to {escape(str(out_file))} ({IDENTIFIABLE})")
