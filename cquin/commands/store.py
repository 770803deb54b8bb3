"""The audit store's own commands: check it for damage, and migrate an older format explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cquin.store import DEFAULT_STORE

StoreOpt = Annotated[Path, typer.Option("--store", help="The audit store (SQLite file).")]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    store_app = typer.Typer(help="The audit store itself: check it, migrate it.", no_args_is_help=True)
    app.add_typer(store_app, name="store")

    @store_app.command("check")
    def check(store: StoreOpt = DEFAULT_STORE) -> None:
        """Read every page of the store and say whether it is intact (read-only: the store is not changed)."""
        from cquin.commands.common import out
        from cquin.store import check_store

        report = check_store(store)
        if report.problems:
            out.print(f"[red]{store}: damaged[/]")
            for p in report.problems:
                out.print(f"  {p}", markup=False)
            out.print("restore the store from a backup; cquin leaves the damaged file as it is", markup=False)
            raise typer.Exit(1)
        out.print(f"{store}: intact (format {report.schema_version}, {report.runs} runs)", markup=False)

    @store_app.command("migrate")
    def migrate(store: StoreOpt = DEFAULT_STORE) -> None:
        """Bring a store written by an older cquin to this version's format (writing commands do it too)."""
        from cquin.commands.common import out
        from cquin.store import migrate_store

        before, after = migrate_store(store)
        if before == after:
            out.print(f"{store}: already format {after}; nothing to do", markup=False)
        else:
            out.print(f"{store}: migrated from format {before} to {after}", markup=False)
