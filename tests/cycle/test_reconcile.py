"""Reconciling a provider's return (the submission layout) with the commissioner's evaluation, figure by figure."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.cycle.reconcile import reconcile
from cquin.exceptions import UserError
from cquin.render.files import write_submission
from cquin.runner import run_evaluation

from .conftest import write_records


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    folder = tmp_path_factory.mktemp("reconcile")
    store = folder / "audit.sqlite"
    ev = run_evaluation(write_records(folder / "records"), contract_value=Decimal("1000000"), store=store)
    assert ev.run_id is not None
    exact = folder / "exact.csv"
    write_submission(store, ev.run_id, exact, disclosure_control=False)
    return store, ev.run_id, exact


def test_the_runs_own_return_agrees_figure_by_figure(evaluated):
    store, rid, exact = evaluated
    rec = reconcile(store, rid, exact)
    assert rec.differences == [] and len(rec.figures) > 30
    assert rec.return_run == rid and rec.return_run_stored


def test_a_return_under_disclosure_control_is_compared_as_published(evaluated, tmp_path: Path):
    store, rid, _ = evaluated
    published = tmp_path / "published.csv"
    write_submission(store, rid, published, disclosure_control=True)  # small patient counts shown as *
    rec = reconcile(store, rid, published)
    assert rec.disclosure_control and rec.differences == []
    assert next(f for f in rec.figures if (f.item, f.measure) == ("cohort.year1", "patients")).returned == "*"


def test_a_providers_own_figures_without_a_run_show_differences_but_name_no_patients(evaluated, tmp_path: Path):
    store, rid, exact = evaluated
    own = tmp_path / "own.csv"
    own.write_text(
        "item,measure,value,disclosure\n"
        "y1.staff_training,numerator,2,\n"
        "y1.staff_training,denominator,2,\n"
        "y1.staff_training,payment,£750.00,\n"
        "y1.made_up,numerator,1,\n"
    )
    rec = reconcile(store, rid, own)
    status = {(f.item, f.measure): f.status for f in rec.figures}
    assert status[("y1.staff_training", "numerator")] == "DIFFERS"
    assert status[("y1.staff_training", "denominator")] == "agrees"
    assert status[("y1.staff_training", "payment")] == "DIFFERS"
    assert status[("y1.made_up", "numerator")] == "not a figure cquin reports"
    assert status[("y2.conversations", "numerator")] == "not in the return"
    assert any("names no run" in n for n in rec.notes)
    assert all(not f.moves for f in rec.figures)


def test_a_return_naming_a_run_not_in_the_store_says_the_patients_cannot_be_named(evaluated, tmp_path: Path):
    store, rid, exact = evaluated
    other = tmp_path / "other.csv"
    other.write_text(
        exact.read_text()
        .replace(rid, "20170101T000000-abcdef")
        .replace("y1.staff_training,numerator,1,", "y1.staff_training,numerator,2,")
    )
    rec = reconcile(store, rid, other)
    assert [(f.item, f.measure) for f in rec.differences] == [("y1.staff_training", "numerator")]
    assert any("not in this audit store" in n for n in rec.notes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the return is empty"),
        ("nhs_number,cohort,why\n9990000018,year1,x\n", "line 1: the header is"),
        ("item,measure,value,disclosure\ny1.plan,payment,1,\ny1.plan,payment,2,\n", "line 3: y1.plan payment is given twice"),
        ("item,measure,value,disclosure\nrun_id,,x,\n", "has no figures"),
    ],
)
def test_a_return_that_is_not_in_the_layout_is_refused_with_its_line(evaluated, tmp_path: Path, text: str, message: str):
    store, rid, _ = evaluated
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(UserError, match=message):
        reconcile(store, rid, bad)


def test_the_cli_exits_1_when_a_figure_differs_and_0_when_all_agree(evaluated, tmp_path: Path):
    store, rid, exact = evaluated
    cli = CliRunner()
    same = cli.invoke(app, ["reconcile", rid, "--return", str(exact), "--store", str(store)])
    assert same.exit_code == 0, same.output
    assert "figure(s) agree, 0 differ" in same.output
    changed = tmp_path / "changed.csv"
    changed.write_text(exact.read_text().replace("y1.staff_training,numerator,1,", "y1.staff_training,numerator,2,"))
    got = cli.invoke(app, ["reconcile", rid, "--return", str(changed), "--store", str(store), "--format", "json"])
    assert got.exit_code == 1
    doc = json.loads(got.output)
    assert doc["differ"] == 1
    (diff,) = [f for f in doc["figures"] if f["status"] == "DIFFERS"]
    assert diff["explanation"] == [
        f"the return's figure is not what run {rid} produced (1): it was changed after cquin wrote the return"
    ]
