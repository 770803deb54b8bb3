"""The cquin command line: parse arguments, call the library, render the result.

Every error a user can cause arrives here as a :class:`cquin.exceptions.CquinError`
and is shown as one plain message with its exit code; nothing else is caught.

Long because it declares every command's arguments and options (Typer); each command body is one library call and one render.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from cquin import __version__
from cquin.commands.common import err, out, parse_date, parse_money, parse_options
from cquin.exceptions import DATA_QUALITY_EXIT, CquinError, UserError
from cquin.runner import DEFAULT_RULESET
from cquin.store import DEFAULT_STORE

if TYPE_CHECKING:
    from cquin.cycle.signoff import SignoffState
    from cquin.dataset.quality import QualityLimits

app = typer.Typer(
    help="Evaluate NHS England CQUIN indicators from patient-record exports, with an audit trail.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
ruleset_app = typer.Typer(help="Check, show and test rulesets (the policy as data).", no_args_is_help=True)
adapters_app = typer.Typer(help="The adapters that read record exports.", no_args_is_help=True)
runs_app = typer.Typer(help="Runs kept in the audit store.", no_args_is_help=True)
demo_app = typer.Typer(help="Demo and synthetic data.", no_args_is_help=True)
app.add_typer(ruleset_app, name="ruleset")
app.add_typer(adapters_app, name="adapters")
app.add_typer(runs_app, name="runs")
app.add_typer(demo_app, name="demo")

StoreOpt = Annotated[Path, typer.Option("--store", help="The audit store (SQLite file).")]
OrgOpt = Annotated[
    Path | None,
    typer.Option(
        "--org",
        help="Folder of the organisation's own records (provider.csv, staff.csv, training.csv, overrides.csv); "
        "default: beside the export.",
    ),
]
AcceptOpt = Annotated[
    bool,
    typer.Option(
        "--accept-rejections",
        help="Accept a run whose data fail the data-quality check (too many rejected rows): exit 0, marked as accepted.",
    ),
]
ShareOpt = Annotated[
    str | None,
    typer.Option(
        "--max-rejected-share",
        help="For this run, the share of a file's records that may be rejected before the data-quality check fails (default 10%).",
    ),
]


MappingOpt = Annotated[
    Path | None,
    typer.Option("--mapping", help="A mapping YAML for the mapped adapter (implies --adapter mapped); see `cquin mapping`."),
]


def _with_mapping(options: dict[str, str], mapping: Path | None) -> dict[str, str]:
    if mapping is None:
        return options
    if "mapping" in options:
        raise UserError("give the mapping once: --mapping FILE or --option mapping=FILE")
    return {**options, "mapping": str(mapping)}


def _limits(share: str | None) -> QualityLimits:
    """The data-quality limits from the settings, with this run's share if given."""
    from cquin.dataset.quality import load_limits, with_share

    return with_share(load_limits(), share)


def _version(value: bool) -> None:
    if value:
        out.print(f"cquin {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
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
    resolved: Annotated[
        bool, typer.Option("--resolved", help="Print the fully resolved ruleset (after extends) as YAML.")
    ] = False,
) -> None:
    """Render a ruleset for a policy reader (components, bands, interpretations, citations), or as resolved YAML."""
    from cquin.engine.ruleset import load_ruleset
    from cquin.render.policy import resolved_yaml
    from cquin.render.ruleset_text import render_ruleset

    r = load_ruleset(file)
    if resolved:
        sys.stdout.write(resolved_yaml(r))
        return
    render_ruleset(out, r)
    if len(r.lineage) > 1:
        out.print("\nextends: " + " <- ".join(f"{rid} {ver} ({path})" for rid, ver, path in r.lineage))


# ----------------------------------------------------------------------------- evaluate


@app.command()
def evaluate(
    source: Annotated[
        Path | None, typer.Argument(help="The records: a folder or file in any installed adapter's format.")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Evaluate the bundled demo dataset instead of SOURCE.")] = False,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="Adapter name (see `cquin adapters list`); detected when unambiguous.")
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="Adapter option NAME=VALUE (repeatable), e.g. dates=uk.")
    ] = None,
    ruleset: Annotated[
        str | None,
        typer.Option("--ruleset", help="A ruleset id or file; default: the published ruleset in effect on --as-of (or today)."),
    ] = None,
    allow_draft: Annotated[bool, typer.Option("--allow-draft", help="Allow evaluating a draft ruleset.")] = False,
    contract_value: Annotated[
        str | None, typer.Option("--contract-value", help="Annual contract value in pounds (applies to both years).")
    ] = None,
    contract_value_year2: Annotated[
        str | None, typer.Option("--contract-value-year2", help="Year 2 contract value, if different.")
    ] = None,
    year: Annotated[str, typer.Option("--year", help="Which year to show: 1, 2 or all.")] = "all",
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Evaluate with only what was known on this date (YYYY-MM-DD).")
    ] = None,
    store: StoreOpt = DEFAULT_STORE,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not keep the run in the audit store.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="Output: table, json or csv.")] = "table",
    verbose: Annotated[bool, typer.Option("--verbose", help="Show the whole load report (every file and reason).")] = False,
    pseudonymise: Annotated[
        Path | None,
        typer.Option(
            "--pseudonymise", help="Key file: store a keyed hash in place of each NHS number, so the audit can be shared."
        ),
    ] = None,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="For publication (with --format json or csv): counts of patients under NHS Digital disclosure control, "
            "each marked; staff counts and money stay exact. Without it every count is exact.",
        ),
    ] = False,
    org: OrgOpt = None,
    accept_rejections: AcceptOpt = False,
    max_rejected_share: ShareOpt = None,
    mapping: MappingOpt = None,
    supersedes: Annotated[
        str | None, typer.Option("--supersedes", help="The stored run this evaluation replaces (it says so in every output).")
    ] = None,
) -> None:
    """Evaluate a provider's records against a ruleset, store the run, and show what was earned.

    A run whose data fail the data-quality check is stored and shown, marked as failing, and the command
    exits with code 8 (unless --accept-rejections).
    """
    from cquin.render.quality import quality_csv_preamble, render_quality_banner
    from cquin.render.results import render_table, result_csv, result_document, selected_years
    from cquin.runner import run_evaluation

    if fmt not in ("table", "json", "csv"):
        raise UserError(f"--format {fmt!r}: expected table, json or csv")
    if publish and fmt == "table":
        raise UserError("--publish is for figures to publish: use it with --format json or --format csv")
    if demo:
        from cquin.demo import DEMO_DIR

        if source is not None:
            raise UserError(f"give either SOURCE ({source}) or --demo, not both")
        source = DEMO_DIR
    if source is None:
        raise UserError("give the SOURCE to evaluate (a folder or file), or --demo for the bundled demo data")
    if year not in ("1", "2", "all"):
        raise UserError(f"--year {year!r}: expected 1, 2 or all")
    values = parse_money(contract_value, "--contract-value"), parse_money(contract_value_year2, "--contract-value-year2")
    key = None
    if pseudonymise is not None:
        from cquin.pseudonymise import load_key

        key = load_key(pseudonymise)
    when = parse_date(as_of, "--as-of")
    if ruleset is None:
        from cquin.engine.selection import select_ruleset

        ruleset = str(select_ruleset(when, allow_draft))
    run = functools.partial(
        run_evaluation,
        source,
        adapter=adapter or ("mapped" if mapping else None),
        adapter_options=_with_mapping(parse_options(option), mapping),
        ruleset=ruleset,
        contract_value=values[0],
        contract_value_year2=values[1],
        as_of=when,
        store=None if no_store else store,
        pseudonymise_key=key,
        allow_draft=allow_draft,
        org=org,
        quality_limits=_limits(max_rejected_share),
        accept_rejections=accept_rejections,
        supersedes=supersedes,
    )
    if fmt == "table":  # a progress display on the terminal; machine formats stay clean
        with err.status("working…") as status:
            ev = run(progress=lambda m: status.update(m + "…"))
    else:
        ev = run()
    years = selected_years(ev.ruleset, year)
    state = _signoff_state(store, ev.run_id)
    if fmt == "json":
        doc = {
            "data_quality_check": ev.quality.as_dict(),
            **result_document(ev.run_id, ev.result, ev.dataset, years, publish=publish),
        }
        doc["signoff"] = state.as_dict() if state else None
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    elif fmt == "csv":
        sys.stdout.write(
            quality_csv_preamble(ev.quality) + result_csv(ev.result, years, publish=publish, pseudonymous=ev.dataset.pseudonymous)
        )
    else:
        render_quality_banner(out, ev.quality)
        render_table(out, ev.run_id, ev.result, ev.dataset, years, ev.ruleset, verbose=verbose)
        if contract_value is None:
            err.print("[yellow]no contract value given: pass --contract-value (the annual contract value) to see pounds[/]")
        if state is not None:
            from cquin.render.cycle import render_signoff_state

            render_signoff_state(out, state)
        if ev.quality.failed:
            err.print(f"[bold red]{escape(ev.quality.headline())}[/] (exit code {DATA_QUALITY_EXIT})")
    if ev.quality.failed:
        raise typer.Exit(DATA_QUALITY_EXIT)


def _signoff_state(store: Path, run_id: str | None) -> SignoffState | None:
    """A stored run's sign-off state (None for a run not kept), shown by every command that shows a run."""
    if run_id is None:
        return None
    from cquin.cycle.signoff import signoff_state
    from cquin.store import open_store

    return signoff_state(open_store(store, read_only=True), run_id)


@app.command()
def explain(
    run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix, or latest) from the audit store.")],
    nhs_number: Annotated[str, typer.Argument(help="The patient's NHS number (or a staff id).")],
    store: StoreOpt = DEFAULT_STORE,
    pseudonymise: Annotated[
        Path | None,
        typer.Option("--pseudonymise", help="Key file of a pseudonymised run: look the NHS number up by its pseudonym."),
    ] = None,
) -> None:
    """Show one patient's path through every rule of a run, with the ruleset's citations."""
    from cquin.pseudonymise import load_key
    from cquin.render.explain import render_explanation
    from cquin.runner import explain_subject, require_store

    key = load_key(pseudonymise) if pseudonymise is not None else None
    explanation = explain_subject(require_store(store), run_id, nhs_number, pseudonymise_key=key)
    render_explanation(out, explanation)
    _show_signoff(store, str(explanation.run["run_id"]))


def _show_signoff(store: Path, run_id: str) -> None:
    from cquin.render.cycle import render_signoff_state

    state = _signoff_state(store, run_id)
    if state is not None:
        render_signoff_state(out, state)


RunFormatOpt = Annotated[str, typer.Option("--format", help="Output: table or json.")]


def _table_or_json(fmt: str) -> None:
    if fmt not in ("table", "json"):
        raise UserError(f"--format {fmt!r}: expected table or json")


@runs_app.command("list")
def runs_list(store: StoreOpt = DEFAULT_STORE, fmt: RunFormatOpt = "table") -> None:
    """List the runs in the audit store (full run ids), each with its sign-off state."""
    from cquin.cycle.signoff import signoff_statuses
    from cquin.render.runs import render_run_list, run_list_document
    from cquin.store import list_runs, open_store

    _table_or_json(fmt)
    db = open_store(store, read_only=True)
    runs = list_runs(db)
    if fmt == "json":
        statuses = signoff_statuses(db)
        doc = [{**r, "signoff": statuses.get(r["run_id"], "not signed off")} for r in run_list_document(runs)]
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render_run_list(out, runs, signoff_statuses(db))


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or latest.")],
    store: StoreOpt = DEFAULT_STORE,
    fmt: RunFormatOpt = "table",
) -> None:
    """Show one stored run: the data-quality verdict, what was evaluated, the money and its basis, components,
    milestones and inputs."""
    from cquin.render.runs import render_run, run_document
    from cquin.store import load_run, open_store, stored_data_quality

    _table_or_json(fmt)
    db = open_store(store, read_only=True)
    stored = load_run(db, run_id)
    quality = stored_data_quality(db, stored.run["run_id"])
    if fmt == "json":
        doc = run_document(stored, quality)
        state = _signoff_state(store, stored.run["run_id"])
        doc["signoff"] = state.as_dict() if state else None
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    else:
        render_run(out, stored, quality)
        _show_signoff(store, stored.run["run_id"])


@runs_app.command("verify")
def runs_verify(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or latest.")],
    store: StoreOpt = DEFAULT_STORE,
    inputs: Annotated[
        Path | None,
        typer.Option("--inputs", help="A folder holding a copy of the run's input files (matched by name and SHA-256)."),
    ] = None,
) -> None:
    """Re-evaluate a stored run from its input files and say whether the results are identical."""
    from cquin.runner import require_store, verify_run

    v = verify_run(require_store(store), run_id, inputs=inputs)
    if v.identical:
        out.print(f"[green]run {v.run_id}: identical[/] — the inputs are unchanged and re-evaluating gives the same results")
        return
    out.print(f"[red]run {v.run_id}: NOT verified[/]")
    for p in v.problems:
        out.print(f"  {escape(p)}")
    raise typer.Exit(1)


@app.command()
def cohort(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or latest.")],
    year: Annotated[str, typer.Option("--year", help="Cohort: 1 or 2.")] = "1",
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write (UTF-8 with BOM, for Excel).")] = Path("cohort.csv"),
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Write the cohort list (NHS numbers, with why each is in) for the care teams."""
    from cquin.outfile import check_out
    from cquin.render.files import write_cohort
    from cquin.runner import require_store

    if year not in ("1", "2"):
        raise UserError(f"--year {year!r}: expected 1 or 2")
    check_out(out_file)
    n = write_cohort(require_store(store), run_id, int(year), out_file)
    out.print(f"wrote {n:,} patients to {out_file} (contains NHS numbers: share only with the care teams)")


@app.command()
def submission(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or latest.")],
    out_file: Annotated[Path, typer.Option("--out", help="CSV file to write (UTF-8 with BOM, for Excel).")] = Path(
        "submission.csv"
    ),
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """Write the aggregate return for payment: exact counts, bands, money and basis; no patient identifiers."""
    from cquin.outfile import check_out
    from cquin.render.files import write_submission
    from cquin.runner import require_store

    check_out(out_file)
    n = write_submission(require_store(store), run_id, out_file)
    out.print(f"wrote {n} rows to {out_file} (exact figures, no patient identifiers)")


@app.command()
def load(
    source: Annotated[Path, typer.Argument(help="The records to read.")],
    adapter: Annotated[str | None, typer.Option("--adapter", help="Adapter name; detected when unambiguous.")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", help="Adapter option NAME=VALUE (repeatable).")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the canonical CSV files and the load report.")] = Path(
        "canonical"
    ),
    ruleset: Annotated[
        str, typer.Option("--ruleset", help="Ruleset whose vocabulary (GPPS answers, categories) checks the data.")
    ] = DEFAULT_RULESET,
    accept_rejections: AcceptOpt = False,
    max_rejected_share: ShareOpt = None,
    mapping: MappingOpt = None,
    org: OrgOpt = None,
) -> None:
    """Read a source through an adapter and write the canonical dataset (organisational files included) plus a load report.

    Exits with code 8 when the data fail the data-quality check (unless --accept-rejections).
    """
    from cquin.render.quality import render_quality_banner
    from cquin.render.results import render_data_quality, render_unmatched
    from cquin.runner import load_to_folder

    dataset, report, unmatched, quality = load_to_folder(
        source,
        out_dir,
        adapter=adapter or ("mapped" if mapping else None),
        adapter_options=_with_mapping(parse_options(option), mapping),
        ruleset=ruleset,
        quality_limits=_limits(max_rejected_share),
        accept_rejections=accept_rejections,
        org=org,
    )
    render_quality_banner(out, quality)
    render_data_quality(out, dataset)
    render_unmatched(out, unmatched)
    out.print(f"wrote the canonical dataset to {out_dir}/ and the load report to {report}")
    if quality.failed:
        raise typer.Exit(DATA_QUALITY_EXIT)


@adapters_app.command("list")
def adapters_list() -> None:
    """List every installed adapter with the package that provides it."""
    from cquin import plugins
    from cquin.render.runs import render_adapters

    render_adapters(out, plugins.adapters(), plugins.broken_plugins())


@demo_app.command("generate")
def demo_generate(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the canonical CSV files to.")],
    patients: Annotated[int, typer.Option("--patients", help="How many patients.")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same files.")] = 2017,
    clean: Annotated[bool, typer.Option("--clean", help="Leave out the deliberately bad rows.")] = False,
) -> None:
    """Write a reproducible synthetic canonical dataset of any size."""
    from cquin.demo.generate import generate

    if patients < 1:
        raise UserError("--patients must be at least 1")
    counts = generate(out_dir, patients, seed, bad_rows=not clean)
    out.print(f"wrote {out_dir}/: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


@ruleset_app.command("test")
def ruleset_test(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Test files (*.tests.yaml) or folders; default: the bundled rulesets' tests.")
    ] = None,
) -> None:
    """Run the YAML test cases written beside rulesets; report each failure as expected-vs-actual."""
    from cquin.engine.ruleset import BUNDLED_DIR
    from cquin.policytest import run_test_file
    from cquin.render.ruleset_text import render_test_results

    files: list[Path] = []
    for p in paths or [BUNDLED_DIR]:
        files.extend(sorted(p.glob("*.tests.yaml")) if p.is_dir() else [p])
    if not files:
        raise UserError("no ruleset test files (*.tests.yaml) found")
    results = [run_test_file(f) for f in files]
    if not render_test_results(out, results):
        raise typer.Exit(1)


def _register_extra_commands() -> None:
    from cquin.commands import register_all

    register_all(app, {"ruleset": ruleset_app, "runs": runs_app, "adapters": adapters_app, "demo": demo_app})


_register_extra_commands()


def _plain_type(param: object) -> str:
    """A parameter's type as a user reads it (TEXT, PATH, INTEGER), not the Python annotation (<list[str]>)."""
    if getattr(param, "is_flag", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    annotation = getattr(desc, "annotation", None)
    if getattr(desc, "is_path", False) or annotation is Path:
        name = "PATH"
    elif annotation is int:
        name = "INTEGER"
    else:
        name = "TEXT"
    return name + (" (repeatable)" if getattr(param, "multiple", False) or getattr(desc, "is_list", False) else "")


def _shown(text: str, ctx: object) -> str:
    return text


def _plain_help(command: object) -> None:
    """Give every option and argument a plain type for the help screens (typer shows annotations otherwise)."""
    from typer.core import TyperArgument, TyperOption

    for param in getattr(command, "params", []):
        shown = _plain_type(param)
        if isinstance(param, TyperOption) and param.metavar is None:
            param.metavar = shown
        elif isinstance(param, TyperArgument):
            param.display_type_rich = functools.partial(_shown, shown)  # type: ignore[method-assign]
    original = getattr(command, "get_help_option", None)
    if original is not None:
        command.get_help_option = functools.partial(_plain_help_option, original)  # type: ignore[attr-defined]
    for sub in getattr(command, "commands", {}).values():
        _plain_help(sub)


def _plain_help_option(original: Any, ctx: object) -> Any:
    option = original(ctx)
    if option is not None:
        option.metavar = ""  # --help is a flag: no type to show
    return option


def main() -> None:
    """Console entry point: run the app, turning our own errors into one-line messages.

    Ctrl-C and SIGTERM at any moment end with "interrupted" (exit 130) or "terminated" (143): the store's
    open transaction has rolled back by then, and the temporary workspace goes as the process exits.
    """
    from cquin import signals, workspace

    signals.install()
    workspace.sweep_stale()  # what a killed cquin could not remove (its temporary copies of patient data)
    try:
        command = typer.main.get_command(app)
        _plain_help(command)
        code = command(standalone_mode=False)
    except CquinError as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt, signals.Terminated) as exc:
        _stopped(exc)
    except typer.exceptions.TyperException as exc:  # usage errors: show the usage line and the problem
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            err.print(f"error: {escape(str(exc))}")
        sys.exit(getattr(exc, "exit_code", 2))
    except Exception as exc:
        if signals.is_interrupt(exc):  # the data engine's own report of Ctrl-C
            _stopped(exc)
        raise
    # In standalone_mode=False, click returns a command's exit code instead of exiting (and typer turns
    # Ctrl-C into a silent 130).
    if code == 130 and signals.interrupted():
        _stopped(KeyboardInterrupt())
    if isinstance(code, int) and code:
        sys.exit(code)


def _stopped(exc: BaseException) -> None:
    """End after Ctrl-C or a termination signal, saying which (a second signal cannot interrupt this)."""
    from cquin import signals, workspace

    signals.shutting_down()
    stop = signals.as_interrupt(exc.__context__ if isinstance(exc, typer.Abort) and exc.__context__ else exc)
    workspace.cleanup()
    if isinstance(stop, signals.Terminated):
        err.print("terminated")
        sys.exit(stop.exit_code)
    err.print("interrupted")
    sys.exit(130)


if __name__ == "__main__":
    main()
