"""Issue 16: one run shows the same exact counts in every output for the parties.

The terminal once said activation improvement 102/234 and staff training 4/6 while the CSV,
submission and report said 100/235 and * of *: disclosure control was applied to what the
parties exchange.  Here each output of one run is read back and its counts compared.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from rich.console import Console
from typer.testing import CliRunner

from cquin.cli import app
from cquin.render.files import write_submission
from cquin.render.measurereport import measure_report
from cquin.render.results import render_table, result_csv, result_document
from cquin.report.data import load_report_data
from cquin.report.page import render_report

from .conftest import DemoRun

Counts = dict[str, tuple[int, int]]


def _exact(demo_run: DemoRun) -> Counts:
    return {
        c.id: (c.numerator, c.denominator)
        for c in demo_run.evaluation.result.components
        if c.numerator is not None and c.denominator is not None
    }


def terminal_counts(text: str, ids: list[str]) -> Counts:
    """Counts read off the 80-column table: the row's first line ends 'NUMERATOR PERCENT', its second 'of DENOMINATOR'."""
    lines = text.splitlines()
    out = {}
    for cid in ids:
        i = next(n for n, line in enumerate(lines) if line.strip().startswith(cid))
        num = re.search(r"([\d,]+)\s+\d+\.\d\d\s*$", lines[i])
        den = re.search(r"of ([\d,]+)\s*$", lines[i + 1].rstrip())
        assert num and den, (lines[i], lines[i + 1])
        out[cid] = (int(num.group(1).replace(",", "")), int(den.group(1).replace(",", "")))
    return out


def test_every_output_of_one_run_shows_the_same_exact_counts(demo_run: DemoRun, tmp_path: Path) -> None:
    ev = demo_run.evaluation
    exact = _exact(demo_run)
    assert exact["y2.activation_improvement"] == (102, 234) and exact["y1.staff_training"] == (4, 6)
    years = list(ev.result.available)

    console = Console(width=80, record=True, color_system=None)
    render_table(console, demo_run.run_id, ev.result, ev.dataset, years, ev.ruleset)
    assert terminal_counts(console.export_text(), list(exact)) == exact

    doc = json.loads(json.dumps(result_document(demo_run.run_id, ev.result, ev.dataset, years)))
    assert {c["id"]: (c["numerator"], c["denominator"]) for c in doc["components"] if c["id"] in exact} == exact

    rows = list(csv.DictReader(io.StringIO(result_csv(ev.result, years))))
    assert {r["component"]: (int(r["numerator"]), int(r["denominator"])) for r in rows if r["component"] in exact} == exact

    write_submission(demo_run.store, demo_run.run_id, tmp_path / "submission.csv")
    with (tmp_path / "submission.csv").open(encoding="utf-8-sig", newline="") as fh:
        sub = {(r["item"], r["measure"]): r["value"] for r in csv.DictReader(fh)}
    assert {cid: (int(sub[(cid, "numerator")]), int(sub[(cid, "denominator")])) for cid in exact} == exact

    data = load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns)
    html = render_report(data)
    for num, den in exact.values():
        assert f"{num:,} of {den:,} (" in html

    import openpyxl

    from cquin.render.workbook import write_workbook

    write_workbook(demo_run.store, demo_run.run_id, tmp_path / "run.xlsx")
    rows = list(openpyxl.load_workbook(tmp_path / "run.xlsx")["Summary"].iter_rows(values_only=True))
    head = next(i for i, r in enumerate(rows) if r and r[0] == "component")
    book = {r[0]: (r[3], r[4]) for r in rows[head + 1 :] if r and r[0] in exact}
    assert book == exact

    resource = measure_report(data)
    fhir = {
        g["code"]["coding"][0]["code"]: {p["code"]["coding"][0]["code"]: p["count"] for p in g["population"]}
        for g in resource["group"]
        if "population" in g
    }
    assert {cid: (fhir[cid]["numerator"], fhir[cid]["denominator"]) for cid in exact} == exact


def test_the_money_agrees_across_outputs(demo_run: DemoRun, tmp_path: Path) -> None:
    ev = demo_run.evaluation
    years = list(ev.result.available)
    rows = {r["component"] + r["year"]: r for r in csv.DictReader(io.StringIO(result_csv(ev.result, years)))}
    write_submission(demo_run.store, demo_run.run_id, tmp_path / "submission.csv")
    with (tmp_path / "submission.csv").open(encoding="utf-8-sig", newline="") as fh:
        sub = {(r["item"], r["measure"]): r["value"] for r in csv.DictReader(fh)}
    basis = ev.result.basis
    assert basis is not None and basis.earned is not None
    assert rows["totalall"]["payment"] == sub[("total", "earned")] == f"{basis.earned:.2f}" == "49800.00"
    assert sub[("total", "available")] == "60000.00" and sub[("weighting", "percent_of_contract_value")] == "0.25"
    for c in ev.result.components:
        assert sub[(c.id, "payment")] == rows[c.id + c.year]["payment"] == f"{c.payment:.2f}"


def test_publish_on_the_command_line_marks_what_it_changed(demo_run: DemoRun) -> None:
    result = CliRunner().invoke(
        app, ["evaluate", "--demo", "--no-store", "--format", "json", "--publish", "--contract-value", "12000000"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by = {c["id"]: c for c in doc["components"]}
    assert (by["y2.activation_improvement"]["numerator"], by["y2.activation_improvement"]["denominator"]) == (100, 235)
    assert by["y2.activation_improvement"]["disclosure"] == "numerator rounded; denominator rounded"
    assert (by["y1.staff_training"]["numerator"], by["y1.staff_training"]["denominator"]) == (4, 6)
    assert by["y2.activation_improvement"]["payment"] == "7500.00"


def test_at_80_columns_the_20000_patient_table_shows_every_count_whole(tmp_path_factory) -> None:
    # Issue 16 item 5: at 80 columns the table once cut "10,336/17,…"; money and bands come first, figures whole.
    from cquin.demo.generate import generate
    from cquin.runner import run_evaluation

    from .conftest import CONTRACT_VALUE

    folder = tmp_path_factory.mktemp("gen20k") / "data"
    generate(folder, 20_000, 2017, bad_rows=True)
    ev = run_evaluation(folder, contract_value=CONTRACT_VALUE)
    exact = {c.id: (c.numerator, c.denominator) for c in ev.result.components if c.numerator is not None}
    assert max(d for _, d in exact.values() if d is not None) >= 10_000  # five-digit counts, the ones once cut
    console = Console(width=80, record=True, color_system=None)
    render_table(console, None, ev.result, ev.dataset, list(ev.result.available), ev.ruleset)
    text = console.export_text()
    table_lines = text.split("Total:")[0].splitlines()
    assert all(len(line) <= 80 for line in table_lines)
    assert "…" not in "\n".join(table_lines)
    assert terminal_counts(text, list(exact)) == exact
    for c in ev.result.components:
        assert f"{c.payment:,.2f}" in text
