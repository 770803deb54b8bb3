"""`cquin serve`: the audit store in Datasette on 127.0.0.1 (optional extra: pip install 'cquin[serve]')."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cquin.store import DEFAULT_STORE


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("serve")
    def serve(
        store: Annotated[Path, typer.Option("--store", help="The audit store (SQLite file).")] = DEFAULT_STORE,
        port: Annotated[int, typer.Option("--port", help="Port on 127.0.0.1 to listen on.")] = 8001,
        show_identifiers: Annotated[
            bool, typer.Option("--show-identifiers", help="Show NHS numbers (hidden by default): for a user allowed to see them.")
        ] = False,
    ) -> None:
        """Browse the audit store in Datasette on 127.0.0.1: runs, inputs, rejections, components, decisions, canned queries."""
        from cquin.commands.common import err, out
        from cquin.runner import require_store
        from cquin.serve import HOST, datasette_app
        from cquin.store import open_store

        require_store(store)
        # Identify and check the store read-only (a file not cquin's is refused, an older one asks for
        # `cquin store migrate`): serving it never writes it.
        open_store(store, read_only=True).conn.close()
        ds = datasette_app(store, show_identifiers=show_identifiers)
        out.print(f"serving the audit store {store} on http://{HOST}:{port}/ (Ctrl+C to stop)")
        if show_identifiers:
            err.print("[yellow]NHS numbers are shown: anyone who can reach this port on this machine can see them[/]")
        import uvicorn

        uvicorn.run(ds.app(), host=HOST, port=port, log_level="warning")
