"""What care plans say (issue 19 item 5): the report's section and the workbook's Care plans sheet."""

from __future__ import annotations

import html
import json
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from cquin.render.workbook import SMALL_COLUMN, write_workbook
from cquin.report import careplans
from cquin.report.data import ReportData, load_report_data
from cquin.report.page import SMALL_MARK, _Figures, care_plans, render_report
from cquin.store import open_store

from .conftest import DemoRun


def small_views() -> dict[str, Any]:
    """A hand-built views dict: two categories, one with small counts."""
    return {
        "schema": 1,
        "within": {"from": "2017-04-01", "to": "2019-03-31"},
        "categories": [
            {"id": "befriending", "label": "Befriending", "more_than_medicine": True},
            {"id": "physical_health", "label": "Physical health and medicines", "more_than_medicine": False},
        ],
        "entries": 90,
        "patients": 40,
        "plans": 44,
        "plans_shared": 30,
        "needs": [
            {"category": "befriending", "patients_with_need": 12, "met": 5, "unmet": 7},
            {"category": "physical_health", "patients_with_need": 33, "met": 21, "unmet": 12},
        ],
        "referrals": [
            {"category": "befriending", "patients": 5, "referrals": 6},
            {"category": "physical_health", "patients": 0, "referrals": 0},
        ],
        "mix": [
            {
                "period": "year1",
                "quarter": "Q1",
                "from": "2017-04-01",
                "to": "2017-06-30",
                "goals": {"befriending": 9},
                "actions": {},
            },
        ],
        "elements": [{"id": "setting_goals", "label": "Setting goals", "plans": 22}],
        "activation": {
            "measured_population": "followed_up",
            "improved_population": "improved",
            "measured": 30,
            "rows": [
                {
                    "category": "befriending",
                    "referred": 10,
                    "referred_improved": 6,
                    "not_referred": 20,
                    "not_referred_improved": 8,
                },
                {
                    "category": "physical_health",
                    "referred": 0,
                    "referred_improved": 0,
                    "not_referred": 30,
                    "not_referred_improved": 14,
                },
                {"category": "any", "referred": 10, "referred_improved": 6, "not_referred": 20, "not_referred_improved": 8},
            ],
        },
    }


def with_views(demo_run: DemoRun, views: Any, *, drop: bool = False) -> ReportData:
    b = {k: v for k, v in demo_run.breakdowns.items() if k != "care_plans"}
    if not drop:
        b["care_plans"] = views
    return load_report_data(demo_run.store, demo_run.run_id, breakdowns=b)


def section(d: ReportData, control: bool = False) -> str:
    return care_plans(d, control, _Figures(""))


def html_table(page: str, view: str) -> list[list[str]]:
    """The rows of a care-plan table (header first) as plain text."""
    block = page.split(f"data-view='{view}'>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", block, flags=re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", r, flags=re.S)] for r in rows
    ]


def test_the_report_shows_each_categorys_unmet_needs_from_the_runs_stored_views(demo_run: DemoRun) -> None:
    d = load_report_data(demo_run.store, demo_run.run_id)  # the breakdowns the store kept with the run
    assert d.breakdowns is not None
    views = d.breakdowns["care_plans"]
    assert views["entries"] > 0
    rows = {r[0]: r for r in html_table(render_report(d), "needs")[1:]}
    labels = {c["id"]: c["label"] for c in views["categories"]}
    assert len(rows) == len(views["needs"])
    for need in views["needs"]:
        row = rows[labels[need["category"]]]
        assert row[4].rstrip(SMALL_MARK) == f"{need['unmet']:,}"


def test_a_small_count_is_marked_in_exact_figures(demo_run: DemoRun) -> None:
    page = section(with_views(demo_run, small_views()))
    assert careplans.SMALL_NOTE in page
    needs = page.split("data-view='needs'>", 1)[1].split("</table>", 1)[0]
    assert f'<span class="small" title="{careplans.SMALL_NOTE}">5†</span>' in needs  # met: 5 patients
    assert '<td class="n">12</td>' in needs  # 12 is not small
    assert html_table(page, "needs")[1] == ["Befriending", "yes", "12", "5†", "7†", "41.67%†"]


def test_under_disclosure_control_small_counts_are_suppressed_and_their_percentages_not_shown(demo_run: DemoRun) -> None:
    page = section(with_views(demo_run, small_views()), control=True)
    assert "†" not in page and careplans.SMALL_NOTE not in page
    assert html_table(page, "needs")[1:] == [
        ["Befriending", "yes", "10", "*", "*", "not shown"],
        ["Physical health and medicines", "", "35", "20", "10", "57.14%"],
    ]
    assert html_table(page, "referrals")[1] == ["Befriending", "yes", "*", "*"]  # referrals made: 6, also suppressed
    assert "45 care plans for 40 patients, 30 of them shared with the patient (66.67%)" in page


def test_activation_change_names_the_populations_and_keeps_the_categories_with_a_referral(demo_run: DemoRun) -> None:
    d = with_views(demo_run, small_views())
    page = section(d)
    pops = d.ruleset["populations"]
    assert html.escape(pops["followed_up"]["label"]) in page and html.escape(pops["improved"]["label"]) in page
    rows = html_table(page, "activation")
    assert rows[0][1:4] == ["referred: measured", "referred: improved", "referred: % improved"]
    assert [r[0] for r in rows[1:]] == ["Befriending", "Any referral"]  # physical health: no one referred
    assert rows[1][1:] == ["10", "6†", "60.00%†", "20", "8", "40.00%"]


@pytest.mark.parametrize("views", ["no key", None, {"entries": 0}])
def test_a_run_without_care_plan_views_says_so(demo_run: DemoRun, views: Any) -> None:
    d = with_views(demo_run, views, drop=views == "no key")
    page = section(d)
    expected = careplans.NO_SECTION if views is None else careplans.NO_VIEWS
    assert html.escape(expected) in page and "<table" not in page


@pytest.fixture(scope="module")
def care_sheet(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[Any, ...]]:
    out = tmp_path_factory.mktemp("xlsx") / "run.xlsx"
    write_workbook(demo_run.store, demo_run.run_id, out)
    return list(openpyxl.load_workbook(out)["Care plans"].iter_rows(values_only=True))


def sheet_table(rows: list[tuple[Any, ...]], title: str) -> list[tuple[Any, ...]]:
    """A titled table of the Care plans sheet: its header row and data rows."""
    start = next(i for i, r in enumerate(rows) if r[0] == title)
    head = next(i for i in range(start + 1, len(rows)) if SMALL_COLUMN in rows[i])
    end = next((i for i in range(head + 1, len(rows)) if rows[i][0] is None), len(rows))
    return rows[head:end]


def test_the_workbooks_care_plans_sheet_holds_the_reports_figures(demo_run: DemoRun, care_sheet: list[tuple[Any, ...]]) -> None:
    d = load_report_data(demo_run.store, demo_run.run_id)
    page = render_report(d)
    assert d.breakdowns is not None
    v = careplans.build(d.breakdowns["care_plans"], d.ruleset)
    for t in v.tables:
        shown = html_table(page, t.id)
        sheet = sheet_table(care_sheet, t.title)
        assert list(sheet[0][: len(t.columns)]) == shown[0] == t.columns
        assert len(sheet) == len(shown) > 1, t.id
        for html_row, xl_row in zip(shown[1:], sheet[1:], strict=True):
            marked = []
            for col, text, value in zip(t.columns, html_row, xl_row, strict=False):
                if text.endswith("†"):
                    marked.append(col)
                    text = text[:-1]
                if text.endswith("%"):
                    assert abs(Decimal(str(value)) * 100 - Decimal(text[:-1])) <= Decimal("0.005"), (t.id, col)
                elif isinstance(value, int):
                    assert text == f"{value:,}", (t.id, col)
                else:
                    assert text == (value or ""), (t.id, col)
            assert (xl_row[len(t.columns)] or "") == ", ".join(marked), t.id  # the same counts are marked
    facts = {r[0]: r[1] for r in care_sheet[:8]}
    assert facts["care plans"] == v.plans.n and facts["patients"] == v.patients.n


def test_a_workbook_of_a_run_without_care_plans_says_so(demo_run: DemoRun, tmp_path: Path) -> None:
    store = tmp_path / "copy.sqlite"
    shutil.copy(demo_run.store, store)
    db = open_store(store)
    (row,) = db.query("SELECT breakdowns FROM run_breakdowns WHERE run_id = ?", [demo_run.run_id])
    b = json.loads(row["breakdowns"])
    del b["care_plans"]  # as a run stored before care plans were kept
    db.execute("UPDATE run_breakdowns SET breakdowns = ? WHERE run_id = ?", [json.dumps(b), demo_run.run_id])
    db.conn.commit()
    out = tmp_path / "run.xlsx"
    assert write_workbook(store, demo_run.run_id, out)["Care plans"] == 0
    assert openpyxl.load_workbook(out)["Care plans"].cell(1, 1).value == careplans.NO_VIEWS
