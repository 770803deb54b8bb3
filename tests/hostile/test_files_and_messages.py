"""Files that are not what they seem, and messages that must not mislead (issue 12 items 6 and 20).

A row with very many surplus fields is one rejected row in linear time; a header
over 64 KiB is read whole; a table's file that is a folder, a pipe, a device or a
broken link stops the load naming the path; ``Conditions.csv`` is the conditions
file; rich prints ``:x:`` as written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin import cli
from cquin.dataset import Vocabulary
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from tests.adapters.ledger_checks import assert_every_record_counted
from tests.adapters.test_canonical import condition, csv_text, make_folder, patient

P1, P2 = "9990000018", "9990000026"
HEADER = "patient_id,date_of_birth,sex,served_from,served_to\n"
runner = CliRunner()


def load(folder: Path, vocab: Vocabulary):
    ds, _ = load_dataset(folder, vocab, adapter="canonical")
    assert_every_record_counted(ds, folder)
    return ds


# ---------------------------------------------------------------------- item 6: surplus fields, linear


@pytest.mark.parametrize("surplus", [25_000, 200_000])
def test_a_row_with_very_many_surplus_fields_is_one_rejected_row(tmp_path, vocab, surplus):
    # Before: DuckDB's reader logged one error per surplus field, each with the whole line (200,000 fields: minutes).
    wide = f"{P2},1950-01-01,female,2017-01-01," + ",x" * surplus
    folder = make_folder(
        tmp_path, patients=HEADER + f"{P1},1950-01-01,female,2017-01-01,\n{wide}\n9990000034,1950-01-01,male,2017-01-01,\n"
    )
    ds = load(folder, vocab)
    rows = ds.ledger.rejection_rows()
    assert [(f, line, reason) for f, line, _r, _c, _v, reason in rows] == [
        ("patients.csv", 3, f"the row has {surplus + 5} value(s) but the header has 5 column(s)")
    ]
    assert len(rows[0][4]) <= 200  # the value shown is the row's start, not the whole row
    assert ds.con.execute("SELECT patient_id FROM patients ORDER BY 1").fetchall() == [(P1,), ("9990000034",)]


def test_a_few_surplus_fields_are_still_rejected_by_the_reader_with_the_same_reason(tmp_path, vocab):
    folder = make_folder(
        tmp_path, patients=HEADER + f"{P1},1950-01-01,female,2017-01-01,,x,y\n{P2},1950-01-01,male,2017-01-01,\n"
    )
    ds = load(folder, vocab)
    assert [r[5] for r in ds.ledger.rejection_rows()] == ["the row has 7 value(s) but the header has 5 column(s)"]


# ---------------------------------------------------------------------- item 20: headers over 64 KiB


def test_a_header_over_64_kib_is_read_whole_and_its_extra_columns_noted(tmp_path, vocab):
    # Cut at 64 KiB, the last name read was the start of another ("e1" of "e1xxx..."), reported as appearing twice.
    extra = [f"e{i}" + "x" * 250 for i in range(300)]  # about 76 KiB of column names, none repeated
    header = "patient_id,date_of_birth,sex,served_from,served_to," + ",".join(extra) + "\n"
    row = f"{P1},1950-01-01,female,2017-01-01," + "," * len(extra) + "\n"
    assert len(header) > 64 * 1024
    ds = load(make_folder(tmp_path, patients=header + row), vocab)
    assert ds.count("patients") == 1
    note = next(n for n in ds.ledger.notes if "are not canonical" in n)
    assert note.startswith("patients.csv: column(s) e0xxx") and "and 280 more" in note


def test_a_header_of_thousands_of_columns_is_refused_with_what_to_do(tmp_path, vocab):
    header = "patient_id,date_of_birth,sex,served_from,served_to," + ",".join(f"e{i}" for i in range(5000)) + "\n"
    with pytest.raises(DataError, match=r"patients.csv: the header has 5,005 columns; cquin reads at most 1,000"):
        load_dataset(make_folder(tmp_path, patients=header), vocab, adapter="canonical")


def test_a_first_line_longer_than_any_header_is_refused_clearly(tmp_path, vocab):
    folder = make_folder(tmp_path, patients="patient_id," + "x" * (1 << 21))
    with pytest.raises(DataError, match=r"patients.csv: the first line \(the header row\) is longer than"):
        load_dataset(folder, vocab, adapter="canonical")


# ---------------------------------------------------------------------- item 20: files that are not files


def special(kind: str, path: Path) -> None:
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    elif kind == "broken link":
        path.symlink_to(path.parent / "nowhere.csv")
    elif kind == "link loop":
        path.symlink_to(path)


KINDS = {
    "folder": "a folder, not a file",
    "fifo": "a pipe (FIFO), not a file",
    "device": "a device, not a file",
    "broken link": "a link that leads nowhere (broken, or a loop of links)",
    "link loop": "a link that leads nowhere (broken, or a loop of links)",
}


@pytest.mark.parametrize("kind", KINDS)
def test_patients_csv_that_is_not_a_file_is_named_with_what_it_is(tmp_path, vocab, kind):
    folder = tmp_path / "records"
    folder.mkdir()
    special(kind, folder / "patients.csv")
    with pytest.raises(DataError) as caught:
        load_dataset(folder, vocab, adapter="canonical")
    assert str(caught.value).startswith(f"{folder / 'patients.csv'}: {KINDS[kind]}")
    assert "missing" not in str(caught.value)


@pytest.mark.parametrize("kind", KINDS)
def test_an_optional_file_that_is_not_a_file_stops_the_load_rather_than_being_not_supplied(tmp_path, vocab, kind):
    folder = make_folder(tmp_path, patients=[patient(P1)])
    special(kind, folder / "conditions.csv")
    with pytest.raises(DataError, match=re.escape(f"conditions.csv: {KINDS[kind]}; conditions.csv must be a CSV file")):
        load_dataset(folder, vocab, adapter="canonical")


def test_a_file_name_in_another_case_is_read_as_its_table_with_a_note(tmp_path, vocab):
    folder = make_folder(tmp_path, patients=[patient(P1)])
    (folder / "Conditions.csv").write_text(csv_text([condition(P1)]), encoding="utf-8")
    (folder / "condition.csv").write_text(csv_text([condition(P1)]), encoding="utf-8")  # a typo: not read, and said
    ds = load(folder, vocab)
    assert ds.count("conditions") == 1
    assert ds.ledger.files["Conditions.csv"].as_dict() == {"read": 1, "accepted": 1, "rejected": 0}
    assert "Conditions.csv: read as conditions.csv (file names are matched without regard to case)" in ds.ledger.notes
    assert any(n.startswith("condition.csv: not one of the canonical files") for n in ds.ledger.notes)
    assert not any(n.startswith("conditions.csv: not supplied") for n in ds.ledger.notes)


def test_two_files_for_one_table_differing_only_in_case_are_refused(tmp_path, vocab):
    folder = make_folder(tmp_path, patients=[patient(P1)], conditions=[condition(P1)])
    (folder / "CONDITIONS.CSV").write_text(csv_text([condition(P1)]), encoding="utf-8")
    with pytest.raises(DataError, match=r"CONDITIONS.CSV and conditions.csv both hold the conditions table"):
        load_dataset(folder, vocab, adapter="canonical")


def test_an_upper_case_patients_file_is_detected_as_a_canonical_folder(tmp_path, vocab):
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / "PATIENTS.CSV").write_text(csv_text([patient(P1)]), encoding="utf-8")
    ds, adapter = load_dataset(folder, vocab)
    assert adapter == "canonical" and ds.count("patients") == 1


# ---------------------------------------------------------------------- item 20: rich prints data as written


def test_an_emoji_code_in_a_printed_value_stays_as_written(tmp_path):
    folder = make_folder(tmp_path, patients=[patient(P1)])
    (folder / ":x: notes.csv").write_text("a,b\n", encoding="utf-8")
    result = runner.invoke(cli.app, ["load", str(folder), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert ":x: notes.csv: not one of the canonical files" in result.output
    assert "\u274c" not in result.output
