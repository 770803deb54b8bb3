"""Excel in: wherever a canonical CSV file is accepted, an .xlsx workbook is too, with the same results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import xlsxwriter

from cquin.adapters.canonical import CanonicalAdapter
from cquin.dataset import TABLE_NAMES, CanonicalDataset, table
from cquin.dataset.xlsxread import cell_text, column_letter, serial_date
from cquin.demo.generate import generate
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from cquin.testing import assert_conforms
from tests.adapters.workbooks import one_workbook, workbook_per_table

RULESET = load_ruleset("cquin_2017_19")


def load(path: Path, **options: str) -> CanonicalDataset:
    """The dataset as a run loads it: the canonical adapter, then the organisation's tables beside it."""
    return load_dataset(path, RULESET.vocabulary(), "canonical", options)[0]


@pytest.fixture(scope="module")
def population(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A canonical folder of 300 patients, with the generator's deliberately bad rows."""
    folder = tmp_path_factory.mktemp("csv")
    generate(folder, 300, 5, bad_rows=True)
    return folder


@pytest.fixture
def from_csv(population: Path) -> CanonicalDataset:
    """The same records from CSV, loaded afresh for each test (evaluating a dataset adds the overrides it refuses)."""
    return load(population)


def rows(ds: CanonicalDataset, name: str) -> list[tuple]:
    return ds.con.execute(f"SELECT * EXCLUDE (_file, _line, _ref) FROM {name} ORDER BY ALL").fetchall()


def rejections(ds: CanonicalDataset) -> list[tuple]:
    """Each rejection's table, line, column and reason, with file names taken out of the reasons."""
    tables = {name: stats.table for name, stats in ds.ledger.files.items()}
    out = []
    for file, line, _ref, column, _value, reason in ds.ledger.rejection_rows():
        out.append((tables[file], line, column, re.sub(r"of \S+ line", "of FILE line", reason)))
    return sorted(out, key=repr)


def assert_same(a: CanonicalDataset, b: CanonicalDataset) -> None:
    for name in TABLE_NAMES:
        assert rows(a, name) == rows(b, name), name
    counts = lambda ds: sorted((s.table, s.read, s.accepted, s.rejected) for s in ds.ledger.files.values())  # noqa: E731
    assert counts(a) == counts(b)
    assert rejections(a) == rejections(b)
    ra, rb = evaluate(RULESET, a), evaluate(RULESET, b)
    assert [c.as_dict() for c in ra.components] == [c.as_dict() for c in rb.components]
    assert ra.totals == rb.totals and ra.cohorts == rb.cohorts


def test_every_canonical_table_loads_from_one_workbook_as_from_csv(population: Path, from_csv, tmp_path: Path) -> None:
    book = one_workbook(population, tmp_path / "records.xlsx")
    assert CanonicalAdapter().detect(book)
    assert_same(load(book), from_csv)


def test_every_canonical_table_loads_from_a_workbook_per_table_as_from_csv(population: Path, from_csv, tmp_path: Path) -> None:
    folder = workbook_per_table(population, tmp_path / "books")
    assert CanonicalAdapter().detect(folder)
    ds = load(folder)
    assert set(ds.ledger.files) == {f"{name}.xlsx!Sheet1" for name in TABLE_NAMES}
    assert_same(ds, from_csv)


def test_a_folder_may_mix_csv_files_and_workbooks(population: Path, from_csv, tmp_path: Path) -> None:
    folder = workbook_per_table(population, tmp_path / "mixed")
    for name in ("patients", "conditions"):
        (folder / f"{name}.xlsx").unlink()
        (folder / f"{name}.csv").write_bytes((population / f"{name}.csv").read_bytes())
    assert_same(load(folder), from_csv)


def test_the_adapter_conforms_on_a_workbook(population: Path, tmp_path: Path) -> None:
    assert_conforms(CanonicalAdapter, one_workbook(population, tmp_path / "records.xlsx"))


def staff_book(path: Path, sheet: str = "Staff", bad_row: int = 14) -> Path:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet(sheet)
    ws.write_row(0, 0, ["staff_id", "role", "cares_for_cohort"])
    for r in range(1, 20):
        ws.write_row(r, 0, [f"S{r:03d}", "District nurse"])
        ws.write_boolean(r, 2, True)
    ws.write_string(bad_row - 1, 2, "sometimes")
    wb.close()
    return path


def test_a_rejection_names_its_workbook_sheet_and_cell(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "patients.csv").write_text("patient_id,served_from\n9990000018,2017-01-01\n", encoding="utf-8")
    staff_book(folder / "staff.xlsx")
    ds = load(folder)
    ((file, line, ref, column, value, reason),) = ds.ledger.rejection_rows()
    assert (file, line, ref, column, value) == ("staff.xlsx!Staff", 14, "staff.xlsx!Staff!C14", "cares_for_cohort", "sometimes")
    assert reason == "'sometimes' is not one of: true, false"
    assert ds.ledger.files["staff.xlsx!Staff"].as_dict() == {"read": 19, "accepted": 18, "rejected": 1}


@pytest.mark.parametrize(
    ("serial", "date"),
    [
        (42736, "2017-01-01"),
        (43190, "2018-03-31"),
        (61, "1900-03-01"),
        (59, "1900-02-28"),
        (1, "1900-01-01"),
        (42736.0, "2017-01-01"),
    ],
)
def test_excel_serial_dates_are_read_exactly(serial: float, date: str) -> None:
    assert serial_date(serial) == date


def test_the_phantom_29_february_1900_is_not_a_date() -> None:
    assert serial_date(60) is None


def test_a_serial_with_a_time_of_day_keeps_it_so_the_date_check_refuses_it() -> None:
    assert serial_date(42736.5) == "2017-01-01 12:00:00"


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (9990000018.0, "nhs_number", "9990000018"),  # an NHS number stored as a number keeps every digit
        (387802007.0, "code", "387802007"),  # a SNOMED CT code stored as a number
        (1001.0, "text", "1001"),  # a staff id stored as a number
        (51.9, "pam_score", "51.9"),
        (0.1 + 0.2, "pam_score", "0.3"),  # what Excel shows, not the binary noise
        (2.0, "pam_level", "2"),
        ("51.9", "pam_score", "51.9"),  # a number stored as text passes through
        ("0123", "text", "0123"),
        (True, "boolean", "true"),
        (False, "boolean", "false"),
        ("", "text", None),
    ],
)
def test_cells_become_the_text_their_canonical_column_expects(value: object, kind: str, text: str | None) -> None:
    assert cell_text(value, kind) == text


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 2, 25, 26, 27, 701, 702)] == ["A", "C", "Z", "AA", "AB", "ZZ", "AAA"]


def _patients_book(path: Path, cells: list[object]) -> Path:
    wb = xlsxwriter.Workbook(str(path))
    ws = wb.add_worksheet("patients")
    ws.write_row(0, 0, ["patient_id", "served_from"])
    for r, cell in enumerate(cells, start=1):
        if isinstance(cell, str):
            ws.write_string(r, 0, cell)
        else:
            ws.write_number(r, 0, cell)  # type: ignore[arg-type]
        ws.write_string(r, 1, "2017-01-01")
    wb.close()
    return path


def test_an_nhs_number_in_scientific_notation_text_is_rejected_with_the_hint(tmp_path: Path) -> None:
    ds = load(_patients_book(tmp_path / "p.xlsx", ["9.99E+09", 9990000018]))
    ((_, line, ref, _, _, reason),) = ds.ledger.rejection_rows()
    assert (line, ref) == (2, "p.xlsx!patients!A2")
    assert "scientific notation" in reason and "format the column as Text" in reason
    assert ds.count("patients") == 1


def test_a_number_too_long_for_a_spreadsheet_is_refused_not_misread(tmp_path: Path) -> None:
    ds = load(_patients_book(tmp_path / "p.xlsx", [99900000180000000.0, 9990000018]))
    ((_, line, ref, column, _, reason),) = ds.ledger.rejection_rows()
    assert (line, ref, column) == (2, "p.xlsx!patients!A2", "patient_id")
    assert "more than 15 digits" in reason
    assert ds.ledger.files["p.xlsx!patients"].as_dict() == {"read": 2, "accepted": 1, "rejected": 1}


def test_blank_rows_in_a_sheet_are_not_records(tmp_path: Path) -> None:
    wb = xlsxwriter.Workbook(str(tmp_path / "p.xlsx"))
    ws = wb.add_worksheet("patients")
    ws.write_row(0, 0, ["patient_id", "served_from"])
    ws.write_row(1, 0, ["9990000018", "2017-01-01"])
    ws.write_row(5, 0, ["9990000026", "2017-01-01"])
    wb.close()
    ds = load(tmp_path / "p.xlsx")
    assert ds.ledger.files["p.xlsx!patients"].as_dict() == {"read": 2, "accepted": 2, "rejected": 0}
    assert ds.con.execute("SELECT _line FROM patients ORDER BY 1").fetchall() == [(2,), (6,)]


def test_a_workbook_with_several_unnamed_sheets_is_refused_naming_them(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    wb = xlsxwriter.Workbook(str(folder / "patients.xlsx"))
    for name in ("March", "April"):
        wb.add_worksheet(name).write_row(0, 0, ["patient_id", "served_from"])
    wb.close()
    with pytest.raises(DataError, match=r"several sheets have data \(March, April\)"):
        load(folder)


def test_a_table_given_as_both_csv_and_workbook_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "patients.csv").write_text("patient_id,served_from\n9990000018,2017-01-01\n", encoding="utf-8")
    _patients_book(folder / "patients.xlsx", [9990000018])
    with pytest.raises(DataError, match="both hold the patients table"):
        load(folder)


def test_a_file_that_is_not_a_workbook_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "patients.xlsx").write_text("patient_id,served_from\n", encoding="utf-8")
    with pytest.raises(DataError, match="cannot be read as an Excel workbook"):
        load(tmp_path)


def test_the_organisations_own_records_load_from_workbooks_in_the_org_folder(population: Path, from_csv, tmp_path: Path) -> None:
    books = workbook_per_table(population, tmp_path / "books")
    export, org = tmp_path / "export", tmp_path / "org"
    export.mkdir()
    org.mkdir()
    for name in TABLE_NAMES:
        if table(name).organisational:
            (books / f"{name}.xlsx").rename(org / f"{name}.xlsx")
        else:
            (export / f"{name}.csv").write_bytes((population / f"{name}.csv").read_bytes())
    ds = load_dataset(export, RULESET.vocabulary(), "canonical", {}, org=org)[0]
    assert {f for f in ds.ledger.files if f.endswith("!Sheet1")} == {
        f"{n}.xlsx!Sheet1" for n in TABLE_NAMES if table(n).organisational
    }
    assert_same(ds, from_csv)
