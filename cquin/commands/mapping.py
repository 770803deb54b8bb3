"""`cquin mapping check` and `cquin mapping draft`: write and check the YAML mapping the mapped adapter reads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    mapping_app = typer.Typer(help="Mappings: read any export by configuration (the mapped adapter).", no_args_is_help=True)
    app.add_typer(mapping_app, name="mapping")

    @mapping_app.command("check")
    def check(files: Annotated[list[Path], typer.Argument(help="Mapping YAML files to check.")]) -> None:
        """Report every problem in a mapping at once, each at file:line:column."""
        from rich.markup import escape

        from cquin.commands.common import out
        from cquin.exceptions import ConfigError
        from cquin.mapping import check_mapping

        failed = False
        for f in files:
            if not f.is_file():
                raise ConfigError(f"{f}: no such mapping file")
            mapping, problems = check_mapping(f)
            if problems or mapping is None:
                failed = True
                out.print(f"[red]{escape(str(f))}: {len(problems)} problem(s)[/]")
                for p in problems:
                    out.print(f"  {escape(p)}")
            else:
                tables = ", ".join(f"{t.name} <- {t.file}" + (f"!{t.sheet}" if t.sheet else "") for t in mapping.tables.values())
                out.print(f"[green]{escape(str(f))}: valid[/] ({escape(mapping.name)}; {escape(tables)})")
        if failed:
            raise typer.Exit(2)

    @mapping_app.command("draft")
    def draft(
        export: Annotated[Path, typer.Argument(help="The export folder whose files' headers the draft is made from.")],
        out_file: Annotated[Path | None, typer.Option("--out", help="Write the draft here (default: print it).")] = None,
    ) -> None:
        """Propose a mapping from the headers seen in an export, for a person to finish (every guess marked)."""
        import sys

        from cquin.commands.common import err
        from cquin.exceptions import UserError
        from cquin.mapping import draft_mapping

        text = draft_mapping(export)
        if out_file is None:
            sys.stdout.write(text)
            return
        if out_file.exists():
            raise UserError(
                f"{out_file}: already exists; cquin does not overwrite a file it did not write (choose another --out)"
            )
        try:
            out_file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{out_file}: cannot write the draft ({exc.strerror})") from None
        err.print(f"wrote a draft mapping to {out_file}; finish every TODO, then run `cquin mapping check {out_file}`")
