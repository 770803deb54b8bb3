"""The canonical adapter against the bad-input corpus: every hostile file gives a clear error or reasoned rejections.

Each case is one file of a canonical folder as real exports and real people
produce it (see :mod:`tests.hostile.corpus` for what is asserted).  The good
rows around the damage must still arrive, with their values intact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin.dataset import Vocabulary
from tests.hostile.corpus import Case, Read, Refused, check, lines, utf8

HEADER = "patient_id,date_of_birth,sex,served_from,served_to"
A = "9990000018,1963-03-07,male,2018-03-18,"
B = "9990000026,1935-02-25,male,2016-05-29,2019-10-02"
C = "9990000034,2000-11-15,female,2012-03-05,"
IDS = "SELECT patient_id FROM patients ORDER BY 1"
A_B = (IDS, [("9990000018",), ("9990000026",)])
A_C = (IDS, [("9990000018",), ("9990000034",)])
A_B_C = (IDS, [("9990000018",), ("9990000026",), ("9990000034",)])
PATIENTS = utf8(lines(HEADER, A))  # a good patients.csv beside a hostile other file
STAFF = "staff_id,role,cares_for_cohort"
ROLES = "SELECT staff_id, role FROM staff ORDER BY 1"


def patients(data: bytes, case_id: str, expect: Read | Refused, **options: str) -> Case:
    return Case(case_id, "canonical", {"patients.csv": data}, "patients.csv", expect, options)


def staff(data: bytes, case_id: str, expect: Read | Refused) -> Case:
    return Case(case_id, "canonical", {"patients.csv": PATIENTS, "staff.csv": data}, "staff.csv", expect)


CASES = [
    # ------------------------------------------------------------------ truncated files
    patients(
        utf8(lines(HEADER, A, B) + "9990000034,2000-11"),
        "truncated-mid-row",
        Read(3, ((4, "the row has 2 value(s) but the header has 5 column(s)"),), A_B),
    ),
    patients(
        utf8(lines(HEADER, A, B) + '9990000034,"2000-11'),
        "truncated-mid-quote",
        Read(3, ((4, "the row has a quote that is not closed or not escaped"),), A_B),
    ),
    patients(utf8(HEADER[:20]), "truncated-in-the-header", Refused("missing required column(s) served_from")),
    patients(b"", "empty-file", Refused("the file is empty")),
    patients(utf8(lines(HEADER)), "header-only", Read(0, (), (IDS, []))),
    # ------------------------------------------------------------------ encodings
    patients(lines(HEADER, A, B).encode("utf-16"), "utf-16-with-bom", Refused("the file is UTF-16 encoded")),
    patients(lines(HEADER, A, B).encode("utf-16-le"), "utf-16-without-bom", Refused("UTF-16 saved without a byte-order mark")),
    patients(b"\xef\xbb\xbf" + utf8(lines(HEADER, A, B)), "utf-8-bom", Read(2, (), A_B)),
    staff(
        lines(STAFF, "S1,Physiothérapeute,true", "S2,Infirmière,true").encode("latin-1"),
        "latin-1-accents-read-as-windows-1252",
        Read(2, (), (ROLES, [("S1", "Physiothérapeute"), ("S2", "Infirmière")]), "read as Windows-1252"),
    ),
    staff(
        lines(STAFF, "S1,“Lead” nurse – community,true").encode("cp1252"),
        "windows-1252-curly-quotes-and-dashes",
        Read(1, (), (ROLES, [("S1", "“Lead” nurse – community")]), "read as Windows-1252"),
    ),
    staff(
        utf8(lines(STAFF, "S1,Nurse,true")) + b"S2,Nurse \x81 lead,true\n",
        "latin-1-control-byte-undefined-in-windows-1252",
        Refused("neither UTF-8 nor Windows-1252"),
    ),
    patients(bytes(range(256)) * 8, "binary-garbage", Refused("neither UTF-8 nor Windows-1252")),
    # ------------------------------------------------------------------ line endings
    patients(utf8(lines(HEADER, A, B, C, end="\r\n")), "crlf", Read(3, (), A_B_C)),
    patients(
        utf8(HEADER + "\r\n" + A + "\n" + B + "\r" + C + "\r\n" + "9990000042,1945-10-08,mail,2012-09-02,\n"),
        "mixed-crlf-lf-and-lone-cr",
        Read(4, ((5, "'mail' is not one of"),), A_B_C, "mixed line endings"),
    ),
    patients(utf8(lines(HEADER, A, B, end="\r")), "lone-cr-old-mac", Read(2, (), A_B)),
    patients(
        utf8(lines(HEADER, "", A, "", "", "9990000026,1935-02-25,mail,2016-05-29,", "", C, "")),
        "blank-lines-are-not-records-and-do-not-shift-line-numbers",
        Read(
            3,
            ((6, "'mail' is not one of"),),
            ("SELECT _line, patient_id FROM patients ORDER BY 1", [(3, "9990000018"), (8, "9990000034")]),
        ),
    ),
    patients(
        utf8(lines(HEADER, A, "", "", B, end="\r\n")),
        "blank-lines-in-a-crlf-file",
        Read(2, (), ("SELECT _line, patient_id FROM patients ORDER BY 1", [(2, "9990000018"), (5, "9990000026")])),
    ),
    # ------------------------------------------------------------------ NULs
    patients(
        utf8(lines(HEADER, A, "99900\x0000026,1935-02-25,male,2016-05-29,", C)),
        "nul-inside-a-row",
        Read(3, ((3, "the row contains a NUL byte"),), A_C),
    ),
    patients(
        utf8(lines(HEADER, A, B)) + b"\x00" * 64 + b"\n",
        "run-of-nuls-at-the-end",
        Read(3, ((4, "the row has 1 value(s) but the header has 5 column(s)"),), A_B),
    ),
    patients(utf8(lines("patient_id,date\x00_of_birth,sex,served_from,served_to", A)), "nul-in-header", Refused("NUL bytes")),
    # ------------------------------------------------------------------ quotes and new lines in cells
    staff(
        utf8(lines(STAFF, '"S1","District nurse,\nnights",true', 'S2,"Nurse ""lead""",true', "S3,Nurse,perhaps")),
        "quotes-commas-and-new-lines-inside-cells",
        # S1 spans lines 2-3, so S3 is on line 5.
        Read(3, ((5, "'perhaps' is not one of"),), (ROLES, [("S1", "District nurse,\nnights"), ("S2", 'Nurse "lead"')])),
    ),
    patients(
        utf8(lines(HEADER, A, '9990000026,1935-02-25,"male"x,2016-05-29,', C)),
        "text-after-a-closing-quote",
        Read(3, ((3, "the row has a quote that is not closed or not escaped"),), A_C),
    ),
    patients(
        utf8(lines(HEADER, A, '9990000026,1935-02-25,ma"le,2016-05-29,', C)),
        "stray-quote-inside-an-unquoted-cell",
        Read(3, ((3, "'ma\"le' is not one of"),), A_C),
    ),
    patients(
        utf8(lines(HEADER, A, '"9990000026,1935-02-25,male,2016-05-29,', C)),
        "quote-never-closed-swallows-the-rest",
        Read(2, ((3, "the row has a quote that is not closed or not escaped"),), (IDS, [("9990000018",)])),
    ),
    # ------------------------------------------------------------------ huge cells
    patients(
        utf8(lines(HEADER, A, "9990000026,1935-02-25," + "x" * 100_000 + ",2016-05-29,", C)),
        "100000-character-cell",
        Read(3, ((3, "'" + "x" * 57 + "...' is not one of"),), A_C),
    ),
    staff(
        utf8(lines(STAFF, "S1," + "r" * 100_000 + ",true")),
        "100000-character-text-kept-whole",
        Read(1, (), ("SELECT staff_id, length(role) FROM staff", [("S1", 100_000)])),
    ),
    patients(
        utf8(lines(HEADER, A, "9990000026,1935-02-25," + "x" * 5_000_000 + ",2016-05-29,", C)),
        "5000000-character-line",
        Read(3, ((3, "the row cannot be split into the header's columns"),), A_C),
    ),
    # ------------------------------------------------------------------ headers and columns
    patients(utf8(lines(HEADER + ",sex", A + ",male")), "duplicated-header", Refused("the column 'sex' appears twice")),
    patients(
        utf8(lines("SERVED_TO, Sex ,patient_id,served_from,date_of_birth", ",male,9990000018,2018-03-18,1963-03-07")),
        "reordered-columns-in-any-case",
        Read(1, (), ("SELECT patient_id, sex, served_from::VARCHAR FROM patients", [("9990000018", "male", "2018-03-18")])),
    ),
    patients(utf8(lines("patient_id,sex,served_to", "9990000018,male,")), "required-column-absent", Refused("served_from")),
    patients(
        utf8(lines(HEADER, ",,,,", A, ",,,,")),
        "every-column-empty",
        Read(3, ((2, "patient_id is missing (required)"), (4, "patient_id is missing (required)")), (IDS, [("9990000018",)])),
    ),
    patients(
        utf8(lines(HEADER, A, B + ",surplus", C)),
        "a-value-more-than-the-header",
        Read(3, ((3, "the row has 6 value(s) but the header has 5 column(s)"),), A_C),
    ),
    # ------------------------------------------------------------------ values
    patients(
        utf8(lines(HEADER, A, "9990000026,31/02/2018,male,2016-05-29,", "9990000034,2018-13-01,female,2012-03-05,")),
        "impossible-dates",
        Read(
            3,
            ((3, "'31/02/2018' is not a date (expected YYYY-MM-DD)"), (4, "'2018-13-01' is not a real date")),
            (IDS, [("9990000018",)]),
        ),
    ),
    patients(
        utf8(lines(HEADER, A, "9990000026,31/02/2018,male,2016-05-29,", "9990000034,15/11/2000,female,05/03/2012,")),
        "impossible-uk-date",
        Read(3, ((3, "'31/02/2018' is not a real date"),), A_C),
        dates="uk",
    ),
    patients(
        utf8(lines(HEADER, A, "999000002A,1935-02-25,male,2016-05-29,", "NHS9990000034,2000-11-15,female,2012-03-05,")),
        "nhs-numbers-with-letters",
        Read(
            3,
            ((3, "NHS number '999000002A' is not 10 digits"), (4, "NHS number 'NHS9990000034' is not 10 digits")),
            (IDS, [("9990000018",)]),
        ),
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_hostile_canonical_file(case: Case, tmp_path: Path, vocab: Vocabulary):
    check(case, tmp_path / "source", vocab)
