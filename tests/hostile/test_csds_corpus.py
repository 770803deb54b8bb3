"""The csds adapter against the bad-input corpus: every hostile CSDS file gives a clear error or reasoned rejections.

A small submission (three people, one referral each) with one hostile file in
it; see :mod:`tests.hostile.corpus` for what is asserted.  A rejected person
also rejects the referral that leads only to them, so a case lists the person
file's own rejections and checks who still arrives.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin.dataset import Vocabulary
from tests.hostile.corpus import Case, Read, Refused, check, lines, utf8

MPI = "LocalPatientId,NHSNumber,PersonBirthDate,PersonStatedGenderCode"
P1 = "P1,9990000018,1948-03-12,2"
P2 = "P2,9990000026,1952-11-02,1"
P3 = "P3,9990000034,1939-07-30,X"
REFERRALS = utf8(
    lines(
        "ServiceRequestId,LocalPatientId,ReferralReceivedDate,ServiceDischargeDate",
        "R1,P1,2017-05-02,",
        "R2,P2,2017-06-10,2018-11-30",
        "R3,P3,2017-09-01,",
    )
)
IDS = "SELECT patient_id FROM patients ORDER BY 1"
ONE_TWO = (IDS, [("9990000018",), ("9990000026",)])
ONE_THREE = (IDS, [("9990000018",), ("9990000034",)])
ALL = (IDS, [("9990000018",), ("9990000026",), ("9990000034",)])


def mpi(data: bytes, case_id: str, expect: Read | Refused) -> Case:
    return Case(case_id, "csds", {"CYP001MPI.csv": data, "CYP101Referral.csv": REFERRALS}, "CYP001MPI.csv", expect)


def referrals(data: bytes, case_id: str, expect: Read | Refused) -> Case:
    people = utf8(lines(MPI, P1, P2, P3))
    return Case(case_id, "csds", {"CYP001MPI.csv": people, "CYP101Referral.csv": data}, "CYP101Referral.csv", expect)


REF_HEADER = "ServiceRequestId,LocalPatientId,ReferralReceivedDate,ServiceDischargeDate"

CASES = [
    # ------------------------------------------------------------------ truncated files
    mpi(
        utf8(lines(MPI, P1, P2) + "P3,99900000"),
        "truncated-mid-record",
        Read(3, ((4, "the record has 2 fields but the header has 4"),), ONE_TWO),
    ),
    mpi(
        utf8(lines(MPI, P1, P2) + 'P3,"99900000'),
        "truncated-mid-quote",
        Read(3, ((4, "the record has 2 fields but the header has 4"),), ONE_TWO),
    ),
    mpi(b"", "empty-file", Refused("the file is empty")),
    mpi(utf8(lines(MPI)), "header-only", Read(0, (), (IDS, []))),
    # ------------------------------------------------------------------ encodings
    mpi(lines(MPI, P1, P2).encode("utf-16"), "utf-16-with-bom", Refused("the file is UTF-16 encoded")),
    mpi(b"\xef\xbb\xbf" + utf8(lines(MPI, P1, P2, P3)), "utf-8-bom", Read(3, (), ALL)),
    mpi(
        utf8(lines(MPI, P1, P2)) + "P3,9990000034,1939-07-30,é\n".encode("latin-1"),
        "latin-1-accent-read-as-windows-1252",
        Read(3, ((4, "PersonStatedGenderCode 'é' is not a CSDS code"),), ONE_TWO),
    ),
    mpi(bytes(range(256)) * 8, "binary-garbage", Refused("neither UTF-8 nor Windows-1252")),
    # ------------------------------------------------------------------ line endings
    mpi(
        utf8(MPI + "\r\n" + P1 + "\n" + P2 + "\r" + P3 + "\r\n"),
        "mixed-crlf-lf-and-lone-cr",
        Read(3, (), ALL),
    ),
    mpi(utf8(lines(MPI, P1, P2, P3, end="\r")), "lone-cr-old-mac", Read(3, (), ALL)),
    # ------------------------------------------------------------------ NULs, quotes, new lines, huge cells
    mpi(
        utf8(lines(MPI, P1, "P2,99900\x0000026,1952-11-02,1", P3)),
        "nul-inside-a-record",
        Read(3, ((3, "the record contains a NUL byte"),), ONE_THREE),
    ),
    mpi(
        utf8(lines(MPI, P1, 'P2,"99900\n00026",1952-11-02,1', P3)),
        "new-line-inside-a-quoted-cell",
        # P2 spans lines 3-4; P3 on line 5 still arrives.
        Read(3, ((3, "NHS number '99900\n00026' is not 10 digits"),), ONE_THREE),
    ),
    mpi(
        utf8(lines(MPI, '"P1","9990000018","1948-03-12","2"', 'P2,"99900000""26",1952-11-02,1', P3)),
        "quoted-cells-and-doubled-quotes",
        Read(3, ((3, "NHS number '99900000\"26' is not 10 digits"),), ONE_THREE),
    ),
    mpi(
        utf8(lines(MPI, P1, "P2,9990000026,1952-11-02," + "x" * 100_000, P3)),
        "100000-character-cell",
        Read(3, ((3, "PersonStatedGenderCode '" + "x" * 57 + "...' is not a CSDS code"),), ONE_THREE),
    ),
    mpi(
        utf8(lines(MPI, P1, "P2,9990000026,1952-11-02," + "x" * 200_000, P3)),
        "200000-character-cell-beyond-pythons-default-limit",
        Read(3, ((3, "is not a CSDS code"),), ONE_THREE),
    ),
    # ------------------------------------------------------------------ headers and columns
    mpi(utf8(lines(MPI + ",NHS_Number", P1 + ",x")), "duplicated-header", Refused("the column 'NHSNumber' appears twice")),
    mpi(
        utf8(lines("PERSON_STATED_GENDER_CODE,PersonBirthDate,NHS Number,localpatientid", "2,1948-03-12,9990000018,P1")),
        "reordered-columns-any-spelling",
        Read(1, (), ("SELECT patient_id, sex, date_of_birth::VARCHAR FROM patients", [("9990000018", "female", "1948-03-12")])),
    ),
    mpi(
        utf8(lines("LocalPatientId,PersonBirthDate", "P1,1948-03-12")), "required-column-absent", Refused("NHSNumber is missing")
    ),
    mpi(
        utf8(lines(MPI, ",,,", P1, ",,,")),
        "every-column-empty",
        Read(3, ((2, "LocalPatientId is empty"), (4, "LocalPatientId is empty")), (IDS, [("9990000018",)])),
    ),
    mpi(
        utf8(lines(MPI, P1, P2 + ",surplus", P3)),
        "a-value-more-than-the-header",
        Read(3, ((3, "the record has 5 fields but the header has 4"),), ONE_THREE),
    ),
    # ------------------------------------------------------------------ values
    mpi(
        utf8(lines(MPI, P1, "P2,999000002A,1952-11-02,1", "P3,NHS9990000034,1939-07-30,X")),
        "nhs-numbers-with-letters",
        Read(
            3,
            ((3, "NHS number '999000002A' is not 10 digits"), (4, "NHS number 'NHS9990000034' is not 10 digits")),
            (IDS, [("9990000018",)]),
        ),
    ),
    referrals(
        utf8(lines(REF_HEADER, "R1,P1,2017-05-02,", "R2,P2,31/02/2018,", "R3,P3,2018-13-01,")),
        "impossible-referral-dates",
        Read(
            3,
            ((3, "'31/02/2018' is not a date (expected YYYY-MM-DD)"), (4, "'2018-13-01' is not a real date")),
            (IDS, [("9990000018",)]),
        ),
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_hostile_csds_file(case: Case, tmp_path: Path, vocab: Vocabulary):
    check(case, tmp_path / "source", vocab)
