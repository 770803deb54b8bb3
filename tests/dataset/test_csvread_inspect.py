"""The one pass over a file's bytes before it is read: line ends, blank lines, NUL bytes and delimiter counts.

The pass skips work most files do not need (no CR: no CRLF to count; a delimiter absent from the header: not
counted), so each case is checked against the plain count, including chunk edges.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin.dataset import csvread

HEADER = b"patient_id,code_system,code,recorded_on\n"
ROW = b"9990000018,snomed,195967001,2017-06-01\n"


def _expected(data: bytes) -> tuple[bool, bool, int, int]:
    cr, lf, crlf = data.count(b"\r"), data.count(b"\n"), data.count(b"\r\n")
    blank = any(m in data for m in (b"\n\n", b"\n\r", b"\r\r"))
    return cr > 0 and not (cr == crlf == lf), blank, lf + cr - crlf, data.count(b",")


@pytest.mark.parametrize(
    "data",
    [
        HEADER + ROW * 3,
        (HEADER + ROW * 3).replace(b"\n", b"\r\n"),
        (HEADER + ROW * 3).replace(b"\n", b"\r"),
        HEADER + ROW + ROW.replace(b"\n", b"\r\n") + ROW,
        HEADER + ROW + b"\n" + ROW,
        (HEADER + ROW + b"\n" + ROW).replace(b"\n", b"\r\n"),
        HEADER + ROW * 2 + b"\x00" + ROW,
    ],
    ids=["lf", "crlf", "cr", "mixed", "blank", "blank-crlf", "nul"],
)
@pytest.mark.parametrize("chunk", [7, 1 << 22], ids=["tiny-chunks", "one-chunk"])
def test_the_inspection_pass_finds_what_a_plain_count_finds(tmp_path: Path, monkeypatch, data: bytes, chunk: int) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "conditions.csv"
    path.write_bytes(data)
    monkeypatch.setattr(csvread, "_CHUNK", chunk)
    shape = csvread._inspect_bytes(path, detect_encoding=True)
    mixed, blank, lines, commas = _expected(data)
    assert (shape.mixed_newlines, shape.lines, shape.has_nul) == (mixed, lines, b"\x00" in data)
    assert shape.blank_lines or not blank  # "maybe blank": never misses one
    assert (shape.separators or {})[","] == commas


def test_the_header_delimiter_is_counted_in_full_so_a_wide_row_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "patients.csv"
    wide = b"9990000018;1950-01-01" + b";x" * (csvread.WIDE_SURPLUS + 5) + b"\n"
    path.write_bytes(b"patient_id;date_of_birth\n" + b"9990000018;1950-01-01\n" * 3 + wide)
    shape = csvread._inspect_bytes(path)
    assert (shape.separators or {})[";"] == 4 + csvread.WIDE_SURPLUS + 6
    assert shape.may_have_wide_rows(";", 2)
