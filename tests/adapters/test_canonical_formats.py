"""Delimiters and dates found, not guessed silently: how the canonical reader copes with spreadsheet-made files."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from cquin.dataset import DatasetBuilder
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError

PATIENTS = [
    ["patient_id", "date_of_birth", "sex", "served_from", "served_to"],
    ["9990000018", "1950-01-01", "male", "2017-01-01", ""],
    ["9990000026", "1960-02-03", "female", "2017-05-04", "2018-06-30"],
]


def load(folder: Path, **options: str):  # type: ignore[no-untyped-def]
    from cquin.adapters.canonical import CanonicalAdapter

    adapter = CanonicalAdapter()
    builder = DatasetBuilder(load_ruleset("cquin_2017_19").vocabulary())
    adapter.load(folder, builder, adapter.option_values(options))
    return builder.build()


def write(folder: Path, rows: list[list[str]], delimiter: str = ",", name: str = "patients.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / name).open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return folder


@pytest.mark.parametrize(("delimiter", "word"), [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_semicolon_tab_and_pipe_files_load_and_the_load_says_which_delimiter(tmp_path: Path, delimiter: str, word: str) -> None:
    ds = load(write(tmp_path, PATIENTS, delimiter))
    assert ds.count("patients") == 2
    assert ds.ledger.files["patients.csv"].delimiter == delimiter
    assert f"patients.csv: columns separated by {word}s (found from the header row)" in ds.ledger.notes


def test_a_comma_file_is_read_as_comma_without_a_note(tmp_path: Path) -> None:
    ds = load(write(tmp_path, PATIENTS))
    assert ds.ledger.files["patients.csv"].delimiter == ","
    assert not [n for n in ds.ledger.notes if "separated" in n]


def test_the_delimiter_can_be_named(tmp_path: Path) -> None:
    ds = load(write(tmp_path, PATIENTS, ";"), delimiter="semicolon")
    assert ds.count("patients") == 2
    assert not [n for n in ds.ledger.notes if "separated" in n]


def test_a_wrongly_named_delimiter_is_reported_as_a_missing_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing required column"):
        load(write(tmp_path, PATIENTS, ";"), delimiter="comma")


def test_an_unknown_delimiter_is_named_in_the_error(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    folder.mkdir()
    (folder / "patients.csv").write_text("patient_id#served_from\n9990000018#2017-01-01\n", encoding="utf-8")
    with pytest.raises(DataError, match="delimiter other than comma, semicolon, tab or pipe"):
        load(folder)


@pytest.mark.parametrize("text", ["05/03/2012 00:00", "05/03/2012 00:00:00"])
def test_uk_date_times_at_midnight_are_dates(tmp_path: Path, text: str) -> None:
    rows = [PATIENTS[0], ["9990000018", text, "male", text, ""]]
    ds = load(write(tmp_path, rows), dates="uk")
    assert ds.con.execute("SELECT CAST(served_from AS VARCHAR) FROM patients").fetchall() == [("2012-03-05",)]


@pytest.mark.parametrize("text", ["2012-03-05 00:00", "2012-03-05T00:00:00", "2012-03-05 00:00:00.000"])
def test_iso_date_times_at_midnight_are_dates(tmp_path: Path, text: str) -> None:
    rows = [PATIENTS[0], ["9990000018", "", "", text, ""]]
    ds = load(write(tmp_path, rows))
    assert ds.con.execute("SELECT CAST(served_from AS VARCHAR) FROM patients").fetchall() == [("2012-03-05",)]


def test_a_date_time_with_a_time_of_day_is_rejected_saying_so(tmp_path: Path) -> None:
    rows = [PATIENTS[0], ["9990000018", "", "", "2012-03-05 14:30", ""]]
    ds = load(write(tmp_path, rows))
    (reason,) = [r[5] for r in ds.ledger.rejection_rows()]
    assert reason == "'2012-03-05 14:30' has a time of day; a date is read from a date-time only at midnight (00:00)"


def test_an_nhs_number_in_scientific_notation_is_rejected_with_the_text_hint(tmp_path: Path) -> None:
    rows = [PATIENTS[0], ["9.99E+09", "", "", "2017-01-01", ""]]
    ds = load(write(tmp_path, rows))
    (reason,) = [r[5] for r in ds.ledger.rejection_rows()]
    assert reason.startswith("NHS number '9.99E+09' is in scientific notation")
    assert "format the column as Text" in reason


def test_most_dates_failing_as_iso_but_parsing_as_uk_gives_the_hint(tmp_path: Path) -> None:
    rows = [PATIENTS[0], ["9990000018", "01/02/1950", "male", "13/04/2017", ""]]
    ds = load(write(tmp_path, rows))
    assert "--option dates=uk" in ds.ledger.hints["patients.csv"]
    assert any("dates=uk" in n for n in ds.ledger.notes)


def test_american_dates_do_not_give_the_uk_hint(tmp_path: Path) -> None:
    rows = [PATIENTS[0], ["9990000018", "", "", "04/13/2017", ""]]
    ds = load(write(tmp_path, rows))
    assert "patients.csv" not in ds.ledger.hints
