"""The Excel workbook and the work-list (issue 16 items 3 and 4), read back with an independent reader (openpyxl)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import stat
from pathlib import Path

import openpyxl
import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.exceptions import UserError
from cquin.render.workbook import SHEETS, write_workbook
from cquin.render.worklist import write_worklist

from .conftest import DemoRun


@pytest.fixture(scope="module")
def book(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> openpyxl.Workbook:
    out = tmp_path_factory.mktemp("xlsx") / "run.xlsx"
    write_workbook(demo_run.store, demo_run.run_id, out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600  # it names patients
    return openpyxl.load_workbook(out)


def _table(ws: openpyxl.worksheet.worksheet.Worksheet, header_first: str) -> list[dict[str, object]]:
    rows = list(ws.iter_rows(values_only=True))
    start = next(i for i, r in enumerate(rows) if r and r[0] == header_first)
    head = rows[start]
    return [dict(zip(head, r, strict=False)) for r in rows[start + 1 :] if r and r[0] is not None]


def test_the_workbook_has_every_sheet(book: openpyxl.Workbook) -> None:
    assert book.sheetnames == list(SHEETS)


def test_the_summary_counts_and_money_are_numbers_that_match_the_run(book: openpyxl.Workbook, demo_run: DemoRun) -> None:
    rows = {r["component"]: r for r in _table(book["Summary"], "component")}
    for c in demo_run.evaluation.result.components:
        row = rows[c.id]
        assert (row["numerator"], row["denominator"]) == (c.numerator, c.denominator)
        assert row["earned"] == float(c.payment) and book["Summary"].cell(1, 1).value
    staff = rows["y1.staff_training"]
    assert staff["more needed"] == 2 and staff["next band worth"] == 2700.0
    facts = {r[0]: r[1] for r in book["Summary"].iter_rows(values_only=True) if r and r[0]}
    assert facts["total earned"] == 49800.0 and facts["total available"] == 60000.0
    assert facts["weighting (of the contract value)"] == pytest.approx(0.0025)
    assert str(facts["data quality"]).startswith("9 files")  # the demo has care_plans.csv too


def test_money_has_a_pound_format_and_headers_are_frozen(book: openpyxl.Workbook) -> None:
    ws = book["Summary"]
    cells = [c for row in ws.iter_rows() for c in row if isinstance(c.value, (int, float)) and "£" in c.number_format]
    assert cells
    for name in ("Milestones", "Rejections", "Work-lists", "Year 1 cohort"):
        assert book[name].freeze_panes is not None, name


def test_milestone_due_dates_are_dates(book: openpyxl.Workbook) -> None:
    rows = _table(book["Milestones"], "milestone")
    assert rows and all(isinstance(r["due"], dt.datetime) for r in rows)
    assert {r["milestone"]: r["due"] for r in rows}["y1.q2.plan"] == dt.datetime(2017, 9, 30)


def test_identifiable_sheets_are_marked(book: openpyxl.Workbook, demo_run: DemoRun) -> None:
    for name in ("Year 1 cohort", "Year 2 cohort", "Work-lists", "Rejections"):
        assert str(book[name].cell(1, 1).value).startswith("IDENTIFIABLE"), name
    assert not str(book["Summary"].cell(1, 1).value).startswith("IDENTIFIABLE")
    cohort = _table(book["Year 1 cohort"], "nhs_number")
    assert len(cohort) == demo_run.evaluation.result.cohorts["year1"]
    assert all(isinstance(r["nhs_number"], str) for r in cohort)  # text, never a number Excel would reformat


def test_rejections_give_file_line_column_value_and_reason(book: openpyxl.Workbook, demo_run: DemoRun) -> None:
    rows = _table(book["Rejections"], "file")
    assert len(rows) == demo_run.evaluation.dataset.ledger.rejection_count()
    assert all(isinstance(r["line"], int) and r["reason"] for r in rows)


def test_breakdowns_sheet_holds_counts(book: openpyxl.Workbook) -> None:
    rows = list(book["Breakdowns"].iter_rows(values_only=True))
    assert rows[0][:2] == ("dimension", "value") and len(rows) > 5
    assert all(isinstance(v, int) for v in rows[1][2:])


def test_the_work_list_names_the_people_behind_each_distance(demo_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "worklist.csv"
    written = {step.component: n for step, n in write_worklist(demo_run.store, demo_run.run_id, out)}
    result = demo_run.evaluation.result
    staff = result.component("y1.staff_training")
    assert staff.numerator is not None and staff.denominator is not None
    assert written["y1.staff_training"] == staff.denominator - staff.numerator  # relevant staff not yet trained
    improved = result.component("y2.activation_improvement")
    assert improved.numerator is not None and improved.denominator is not None
    with out.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    mine = [r for r in rows if r["component"] == "y2.activation_improvement"]
    not_counted = [r for r in mine if r["status"] == "not yet counted"]
    no_follow_up = [r for r in mine if r["status"] == "cohort member, not yet in the denominator"]
    assert len(not_counted) == improved.denominator - improved.numerator
    assert len(no_follow_up) == result.cohorts["year2"] - improved.denominator  # Year 2 cohort with no follow-up yet
    assert {r["identifiable"] for r in rows} == {"yes"}
    assert "y2.conversations" not in written  # at its top band: nobody to list
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_export_xlsx_from_the_command_line_and_publish_is_refused(demo_run: DemoRun, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "book.xlsx"
    done = runner.invoke(app, ["export", demo_run.run_id, "--store", str(demo_run.store), "--xlsx", str(out)])
    assert done.exit_code == 0, done.output
    assert openpyxl.load_workbook(out).sheetnames == list(SHEETS)
    refused = runner.invoke(app, ["export", demo_run.run_id, "--store", str(demo_run.store), "--xlsx", str(out), "--publish"])
    assert isinstance(refused.exception, UserError) and "never a publication" in str(refused.exception)
