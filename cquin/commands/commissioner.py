"""The commissioner's commands: the HTML report, the FHIR MeasureReport export, and several providers at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cquin.exceptions import DATA_QUALITY_EXIT
from cquin.store import DEFAULT_STORE

StoreOpt = Annotated[Path, typer.Option("--store", help="The audit store (SQLite file).")]
PublishOpt = Annotated[
    bool,
    typer.Option(
        "--publish",
        help="For publication: counts of patients under NHS Digital disclosure control (1-7 shown as *, others rounded "
        "to 5), each marked; staff counts, file row counts and money stay exact. Without it every count is exact.",
    ),
]


AcceptOpt = Annotated[
    bool,
    typer.Option("--accept-rejections", help="Accept runs whose data fail the data-quality check (exit 0, marked as accepted)."),
]


def register(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    @app.command("report")
    def report(
        run_id: Annotated[str, typer.Argument(help="A run id (or a unique prefix, or latest) from the audit store.")],
        out_file: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
        store: StoreOpt = DEFAULT_STORE,
        publish: PublishOpt = False,
    ) -> None:
        """Write a run's report as one self-contained HTML page (opens offline) for a contract meeting."""
        from cquin.commands.common import err, out
        from cquin.outfile import check_out
        from cquin.report import write_report
        from cquin.runner import require_store

        check_out(out_file)
        data = write_report(require_store(store), run_id, out_file, disclosure_control=publish)
        out.print(
            f"wrote the report for run {data.run_id} to {out_file} "
            + ("(published: patient counts under disclosure control)" if publish else "(exact figures)")
        )
        if data.breakdowns is None:
            err.print("[yellow]this run did not record its breakdowns: the report says so in those sections[/]")

    @app.command("export")
    def export(
        run_id: Annotated[
            str | None,
            typer.Argument(help="A run id (or a unique prefix, or latest) from the audit store; not needed for --fhir-measure."),
        ] = None,
        fhir_measure_report: Annotated[
            Path | None, typer.Option("--fhir-measure-report", help="Write the run as an HL7 FHIR R4 MeasureReport (JSON) here.")
        ] = None,
        fhir_measure: Annotated[
            Path | None,
            typer.Option(
                "--fhir-measure",
                help="Write the indicator as a FHIR R4 Measure, with its CodeSystem and Library, in a transaction Bundle "
                "(POST it to the server's base). From the run's ruleset, or --ruleset.",
            ),
        ] = None,
        tables: Annotated[
            Path | None,
            typer.Option("--tables", help="Write the run's long-format tables (Parquet and CSV) into this folder, for BI tools."),
        ] = None,
        ruleset: Annotated[
            str | None, typer.Option("--ruleset", help="With --fhir-measure and no RUN_ID: the ruleset (id or file).")
        ] = None,
        canonical_base: Annotated[
            str | None,
            typer.Option(
                "--canonical-base",
                help="FHIR server base the Measure is published on (default: the ruleset's fhir.canonical_base).",
            ),
        ] = None,
        xlsx: Annotated[
            Path | None,
            typer.Option(
                "--xlsx",
                help="Write an Excel workbook here: summary, milestones, cohorts, work-lists, rejections, breakdowns "
                "(names patients: identifiable).",
            ),
        ] = None,
        store: StoreOpt = DEFAULT_STORE,
        publish: PublishOpt = False,
    ) -> None:
        """Export a stored run (or its indicator) in a standard format, validated before it is written."""
        from cquin.commands.common import err, out
        from cquin.exceptions import UserError
        from cquin.runner import require_store

        if fhir_measure_report is None and fhir_measure is None and tables is None and xlsx is None:
            raise UserError(
                "choose an export: --fhir-measure-report OUT.json, --fhir-measure OUT.json, --tables DIR or --xlsx OUT.xlsx"
            )
        if run_id is None and (fhir_measure_report is not None or tables is not None or xlsx is not None):
            raise UserError("give the RUN_ID to export (see `cquin runs list`, or use latest)")
        if xlsx is not None and publish:
            raise UserError("--publish does not apply to --xlsx: the workbook names patients, so it is never a publication")
        if xlsx is not None:
            from cquin.outfile import check_out
            from cquin.render.workbook import write_workbook

            check_out(xlsx, "--xlsx")
            sheets = write_workbook(require_store(store), str(run_id), xlsx)
            out.print(
                f"wrote an Excel workbook ({len(sheets)} sheets) to {xlsx} "
                "(IDENTIFIABLE: its cohort, work-list and rejection sheets name patients; share only with the care teams)"
            )
        if fhir_measure is not None:
            from cquin.measure import write_measure

            if run_id is not None and ruleset is None:
                from cquin.report.data import stored_ruleset

                doc = stored_ruleset(require_store(store), run_id)
            else:
                from cquin.engine.ruleset import load_ruleset

                doc = load_ruleset(ruleset or "cquin_2017_19").doc
            bundle = write_measure(doc, fhir_measure, base=canonical_base)
            m = bundle["entry"][0]["resource"]
            out.print(
                f"wrote the FHIR Measure {m['url']}|{m['version']} ({len(m['group'])} groups), its CodeSystem and Library (valid) to {fhir_measure}"
            )
        if fhir_measure_report is not None:
            from cquin.render.measurereport import write_measure_report

            resource = write_measure_report(
                require_store(store),
                str(run_id),
                fhir_measure_report,
                disclosure_control=publish,
                base=canonical_base,
            )
            out.print(f"wrote a FHIR MeasureReport ({len(resource['group'])} groups, valid) to {fhir_measure_report}")
        if tables is not None:
            from cquin.render.tables import write_tables

            written = write_tables(require_store(store), str(run_id), tables)
            out.print(f"wrote {len(written)} tables to {tables}/: " + ", ".join(f"{t.name} ({t.rows:,} rows)" for t in written))
            if any(t.identifiers for t in written):
                err.print("[yellow]the decisions table holds NHS numbers: share it only as you would the audit store[/]")

    @app.command("evaluate-many")
    def evaluate_many(
        manifest: Annotated[
            Path, typer.Argument(help="YAML manifest listing the providers (name, source, adapter, contract_value).")
        ],
        out_file: Annotated[Path | None, typer.Option("--out", help="Also write one combined HTML report here.")] = None,
        store: StoreOpt = DEFAULT_STORE,
        publish: PublishOpt = False,
        accept_rejections: AcceptOpt = False,
        allow_draft: Annotated[bool, typer.Option("--allow-draft", help="Allow evaluating a draft ruleset.")] = False,
    ) -> None:
        """Evaluate several providers, store each run, and compare them in one table (and one report).

        The manifest format is documented in the README and examples/evaluate-many/manifest.yaml.
        Exits with code 8 when any provider's data fail the data-quality check (unless --accept-rejections).
        """
        from rich.markup import escape

        from cquin.commands.common import err, out
        from cquin.many import evaluate_many as run_all
        from cquin.many import read_manifest
        from cquin.outfile import check_out, write_text
        from cquin.report.compare import render_comparison_table
        from cquin.report.data import load_report_data

        control = publish
        if out_file is not None:
            check_out(out_file)  # before any run is evaluated or stored
        spec = read_manifest(manifest)
        with err.status("working…") as status:
            runs = run_all(
                spec,
                store=store,
                progress=lambda m: status.update(m + "…"),
                accept_rejections=accept_rejections,
                allow_draft=allow_draft,
            )
        failing = [r for r in runs if r.quality is not None and r.quality.failed]
        for r in failing:
            assert r.quality is not None
            out.print(f"[bold red]{escape(r.entry.name)}: {escape(r.quality.headline())}[/]")
        items = [(r.entry.name, load_report_data(store, r.run_id, breakdowns=r.breakdowns)) for r in runs]
        render_comparison_table(out, items, control=control)
        if out_file is not None:
            from cquin.report.page import render_combined

            write_text(out_file, render_combined(items, control=control))
            out.print(f"wrote the combined report for {len(items)} providers to {out_file}")
        if failing:
            raise typer.Exit(DATA_QUALITY_EXIT)
