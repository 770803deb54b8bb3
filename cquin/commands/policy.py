"""The policy team's commands: diff two rulesets, list the catalogue, import a code list, show a resolved ruleset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    ruleset = groups["ruleset"]

    @ruleset.command("diff")
    def ruleset_diff(
        old: Annotated[str, typer.Argument(help="The old ruleset: a file, a bundled id, or id@version.")],
        new: Annotated[str, typer.Argument(help="The new ruleset.")],
        impact: Annotated[
            Path | None, typer.Option("--impact", help="Also evaluate both rulesets on these records and show who moves.")
        ] = None,
        list_subjects: Annotated[
            bool, typer.Option("--list", help="With --impact: list the NHS numbers (and staff ids) that move.")
        ] = False,
        adapter: Annotated[str | None, typer.Option("--adapter", help="Adapter for --impact; detected when unambiguous.")] = None,
        option: Annotated[list[str] | None, typer.Option("--option", help="Adapter option NAME=VALUE (repeatable).")] = None,
    ) -> None:
        """Say in policy language what changed between two rulesets (and, with --impact, what it does to a dataset)."""
        from cquin.commands.common import err, out, parse_options
        from cquin.engine import diff
        from cquin.engine.ruleset import load_ruleset
        from cquin.exceptions import UserError
        from cquin.render.policy import render_diff, render_impact
        from cquin.runner import ruleset_impact

        if list_subjects and impact is None:
            raise UserError("--list needs --impact DATA: the patients who move are found by evaluating both rulesets")
        a, b = load_ruleset(old), load_ruleset(new)
        render_diff(out, diff.diff_rulesets(a, b))
        if impact is not None:
            with err.status("evaluating both rulesets…"):
                result = ruleset_impact(a, b, impact, adapter, parse_options(option))
            render_impact(out, result, list_subjects)

    @ruleset.command("list")
    def ruleset_list(
        path: Annotated[
            list[Path] | None,
            typer.Option("--path", help="A folder of user rulesets (repeatable); ./rulesets and $CQUIN_RULESETS are also read."),
        ] = None,
    ) -> None:
        """List the bundled and user rulesets: id, version, effective period, status and file."""
        from cquin.commands.common import out
        from cquin.engine.catalogue import user_dirs
        from cquin.engine.selection import resolved_catalogue
        from cquin.render.policy import render_catalogue

        render_catalogue(out, resolved_catalogue(user_dirs(path or [])))

    @ruleset.command("import-codelist")
    def ruleset_import_codelist(
        csv_file: Annotated[Path, typer.Argument(help="A CSV downloaded from OpenCodelists.")],
        system: Annotated[str, typer.Option("--system", help="The code system: snomed, icd10 or local.")],
        out_file: Annotated[Path, typer.Option("--out", help="The code list file to write (code,term,source).")],
        source: Annotated[
            str | None, typer.Option("--source", help="The OpenCodelists id, org/codelist/version (recorded on every row).")
        ] = None,
        list_id: Annotated[str | None, typer.Option("--id", help="The code list id for the YAML entry.")] = None,
        title: Annotated[str | None, typer.Option("--title", help="The code list title for the YAML entry.")] = None,
        code_column: Annotated[str | None, typer.Option("--code-column", help="The column holding the codes.")] = None,
        term_column: Annotated[str | None, typer.Option("--term-column", help="The column holding the terms.")] = None,
        skip_invalid: Annotated[
            bool, typer.Option("--skip-invalid", help="Leave out codes that fail their check instead of refusing the file.")
        ] = False,
        for_ruleset: Annotated[
            Path | None,
            typer.Option("--ruleset", help="The ruleset file the list is for: the printed path is made relative to it."),
        ] = None,
    ) -> None:
        """Import an OpenCodelists CSV download as a ruleset code list, checking every code; print the YAML entry."""
        import os

        from rich.markup import escape

        from cquin.commands.common import err, out
        from cquin.engine import codelist_import as ci
        from cquin.exceptions import UserError

        got = ci.read_download(csv_file, system, code_column, term_column)
        if got.problems and not skip_invalid:
            raise UserError(
                f"{csv_file}: {len(got.problems)} code(s) fail their check; nothing written "
                f"(fix the download, or pass --skip-invalid to leave them out):\n  " + "\n  ".join(got.problems)
            )
        src = source or csv_file.stem
        ci.write_code_list(got, out_file, src)
        for note in got.problems:
            err.print(f"[yellow]left out: {escape(note)}[/]")
        for note in got.duplicates:
            err.print(f"[yellow]duplicate dropped: {escape(note)}[/]")
        if source is None:
            err.print("[yellow]no --source given: the file name is recorded; pass --source org/codelist/version[/]")
        out.print(
            f"wrote {len(got.rows):,} codes to {escape(str(out_file))} (code column {got.code_column!r}"
            + (f", term column {got.term_column!r}" if got.term_column else ", no term column")
            + ")"
        )
        if for_ruleset is not None:
            shown = Path(os.path.relpath(out_file.resolve(), for_ruleset.resolve().parent)).as_posix()
            out.print(f"Paste into {escape(str(for_ruleset))}:\n")
        else:
            shown = out_file.as_posix()
            out.print("Paste into the ruleset (make the file path relative to the ruleset file, or pass --ruleset):\n")
        lid = list_id or ci.list_id_for(out_file, system)
        entry = ci.yaml_entry(lid, system, shown, title or lid, src, ci.version_of(src), len(got.rows))
        out.print(escape(entry), end="")
