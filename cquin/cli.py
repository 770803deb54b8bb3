"""The cquin command line: parse arguments, call the library, render the result.

Every error a user can cause arrives here as a :class:`cquin.exceptions.CquinError`
and is shown as one plain message with its exit code; nothing else is caught.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cquin import __version__
from cquin.exceptions import CquinError

app = typer.Typer(
    help="Evaluate NHS England CQUIN indicators from patient-record exports, with an audit trail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ruleset_app = typer.Typer(help="Check, show and test rulesets (the policy as data).", no_args_is_help=True)
adapters_app = typer.Typer(help="The adapters that read record exports.", no_args_is_help=True)
app.add_typer(ruleset_app, name="ruleset")
app.add_typer(adapters_app, name="adapters")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"cquin {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """cquin: what a provider earned under a CQUIN indicator, and why."""


# ----------------------------------------------------------------------------- ruleset


@ruleset_app.command("validate")
def ruleset_validate(
    files: Annotated[list[str], typer.Argument(help="Ruleset files (or bundled ruleset ids) to check.")],
) -> None:
    """Report every problem in a ruleset at once, each with file:line:column."""
    from cquin.engine.ruleset import check_ruleset
    from cquin.render.ruleset_text import render_validation

    failed = False
    for name in files:
        ruleset, problems = check_ruleset(name)
        failed |= render_validation(out, name, ruleset, problems)
    if failed:
        raise typer.Exit(3)


@ruleset_app.command("show")
def ruleset_show(
    file: Annotated[str, typer.Argument(help="A ruleset file or bundled ruleset id.")] = "cquin_2017_19",
) -> None:
    """Render a ruleset for a policy reader: components, bands, interpretations, citations."""
    from cquin.engine.ruleset import load_ruleset
    from cquin.render.ruleset_text import render_ruleset

    render_ruleset(out, load_ruleset(file))


def main() -> None:
    """Console entry point: run the app, turning our own errors into one-line messages."""
    try:
        app(standalone_mode=False)
    except CquinError as exc:
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()


