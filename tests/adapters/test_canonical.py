"""The canonical adapter on bad input: every bad row is rejected with its place and reason, nothing else is lost.

Each test writes a small canonical folder in ``tmp_path`` and loads it.  A
rejection is checked exactly (file, line, column, value, reason text), every
file's counts must balance (read = accepted + rejected = the records in the
file) and the rows around a bad one must still arrive.  A file that cannot be
read at all is a :class:`DataError` naming the file, never a traceback.

NHS numbers are in the 999 test range with valid Modulus 11 check digits.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import nhs_number
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cquin.dataset import CanonicalDataset, DatasetBuilder, Vocabulary, table
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from tests.adapters.ledger_checks import assert_every_record_counted

P = ["9990000018", "9990000026", "9990000034", "9990000042", "9990000050", "9990000069", "9990000077", "9990000085"]
BAD_CHECK_DIGIT = "9990000019"  # 9990000018 with the last digit changed
STAFF = ["S001", "S002", "S003"]

Row = Mapping[str, str]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_ruleset("cquin_2017_19").vocabulary()


# --------------------------------------------------------------------------- fixture builders


def patient(pid: str, **cells: str) -> dict[str, str]:
    return {
        "patient_id": pid,
        "date_of_birth": "1950-01-01",
        "sex": "female",
        "served_from": "2017-01-01",
        "served_to": "",
    } | cells


def condition(pid: str, **cells: str) -> dict[str, str]:
    # 44054006: type 2 diabetes mellitus (SNOMED CT)
    return {"patient_id": pid, "code_system": "snomed", "code": "44054006", "recorded_on": "2017-06-01"} | cells


def pam(pid: str, **cells: str) -> dict[str, str]:
    return {
        "patient_id": pid,
        "assessed_on": "2017-06-01",
        "respondent": "patient",
        "instrument": "pam",
        "pam_score": "47.0",
        "pam_level": "",
        "gpps_q32": "",
        "gpps_q33": "",
    } | cells


def gpps(pid: str, **cells: str) -> dict[str, str]:
    return pam(pid, instrument="gpps", pam_score="", gpps_q32="Yes, definitely", gpps_q33="Very confident") | cells


def staff(sid: str, **cells: str) -> dict[str, str]:
    return {"staff_id": sid, "role": "District nurse", "cares_for_cohort": "true"} | cells


def training(sid: str, **cells: str) -> dict[str, str]:
    return {"staff_id": sid, "completed_on": "2017-09-01", "course": "Health coaching"} | cells


def conversation(pid: str, **cells: str) -> dict[str, str]:
    return {"patient_id": pid, "held_on": "2017-11-01", "staff_id": STAFF[0]} | cells


def override(pid: str, **cells: str) -> dict[str, str]:
    return {
        "patient_id": pid,
        "cohort": "year1",
        "action": "include",
        "reason": "Agreed with the commissioner",
        "agreed_on": "",
    } | cells


def provider(**cells: str) -> dict[str, str]:
    return {
        "provider_code": "RYX",
        "provider_name": "Test Trust",
        "plan_agreed_on": "2017-09-01",
        "recording_system_live_on": "",
    } | cells


def csv_text(rows: Sequence[Row], columns: Sequence[str] | None = None) -> str:
    columns = list(columns or rows[0])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([row.get(c, "") for c in columns])
    return buf.getvalue()


def make_folder(root: Path, **files: Sequence[Row] | str | bytes) -> Path:
    """A canonical folder: each keyword is a table (rows, or the file's exact text or bytes); patients default to P."""
    folder = root / "records"
    folder.mkdir(exist_ok=True)
    files.setdefault("patients", [patient(p) for p in P])
    for name, content in files.items():
        path = folder / table(name).file_name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8", newline="")
        else:
            path.write_text(csv_text(content, table(name).column_names), encoding="utf-8", newline="")
    return folder


def load(folder: Path, vocab: Vocabulary, **options: str) -> CanonicalDataset:
    ds, name = load_dataset(folder, vocab, adapter="canonical", options=options)
    assert name == "canonical"
    assert_every_record_counted(ds, folder)
    return ds


def rejections(ds: CanonicalDataset, file: str) -> list[tuple]:
    """(line, column, value, reason) for each rejection of ``file``, in line order."""
    return ds.con.execute(
        "SELECT line, column_name, value, reason FROM rejections WHERE file = ? ORDER BY line, reason", [file]
    ).fetchall()


def ids(ds: CanonicalDataset, name: str, column: str = "patient_id") -> list[str]:
    return [r[0] for r in ds.con.execute(f"SELECT {column} FROM {name} ORDER BY _line").fetchall()]


# --------------------------------------------------------------------------- the messy folder

# One folder holds every kind of bad row, each on its own line beside good rows, so one load checks them all.
# Q are more valid test-range NHS numbers, for patients whose rows are bad or who are left out of patients.csv.
Q = ["9990000093", "9990000107", "9990000115", "9990000123", "9990000131", "9990000158", "9990000166"]


class Messy:
    """The messy folder's rows, file by file, and where each expected rejection is."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Row]] = {}
        self.good: dict[str, list[int]] = {}  # lines that must arrive
        self.expected: dict[str, tuple[str, int, str | None, str | None, str]] = {}

    def add(self, name: str, row: Row) -> int:
        self.rows.setdefault(name, []).append(row)
        return len(self.rows[name]) + 1  # the header is line 1

    def good_row(self, name: str, row: Row) -> None:
        self.good.setdefault(name, []).append(self.add(name, row))

    def bad_row(self, case: str, name: str, row: Row, column: str | None, value: str | None, reason: str) -> int:
        line = self.add(name, row)
        self.expected[case] = (table(name).file_name, line, column, value, reason)
        return line


def messy_rows() -> Messy:
    m = Messy()
    for p in P:
        m.good_row("patients", patient(p))
    for row in (condition(P[0]), condition(P[1], code_system="icd10", code="E11.9"), condition(P[2])):
        m.good_row("conditions", row)
    for row in (pam(P[0]), gpps(P[1]), pam(P[3], pam_score="", pam_level="2")):
        m.good_row("assessments", row)
    for s in STAFF:
        m.good_row("staff", staff(s))
    for row in (training(STAFF[0]), training(STAFF[1])):
        m.good_row("training", row)
    for row in (conversation(P[0]), conversation(P[1], staff_id="")):  # no staff id recorded is not an unknown one
        m.good_row("conversations", row)
    m.good_row("overrides", override(P[1]))

    # One bad cell each.
    cell = [
        ("nhs-number-check-digit", "patients", patient(BAD_CHECK_DIGIT), "patient_id", BAD_CHECK_DIGIT,
         f"NHS number '{BAD_CHECK_DIGIT}' fails the Modulus 11 check digit"),
        ("nhs-number-letters", "patients", patient("99900000AB"), "patient_id", "99900000AB",
         "NHS number '99900000AB' is not 10 digits"),
        ("nhs-number-decimal-point", "patients", patient("9990002.50"), "patient_id", "9990002.50",
         "NHS number '9990002.50' is not 10 digits"),
        ("nhs-number-missing", "patients", patient(""), "patient_id", None, "patient_id is missing (required)"),
        ("uk-date-in-iso-mode", "patients", patient(Q[0], served_from="15/03/2018"), "served_from", "15/03/2018",
         "'15/03/2018' is not a date (expected YYYY-MM-DD)"),
        ("implausible-date", "patients", patient(Q[1], date_of_birth="1850-01-01"), "date_of_birth", "1850-01-01",
         "'1850-01-01' is outside the plausible range 1900-01-01 to 2099-12-31"),
        ("unparseable-date", "conditions", condition(P[3], recorded_on="next Tuesday"), "recorded_on", "next Tuesday",
         "'next Tuesday' is not a date (expected YYYY-MM-DD)"),
        ("impossible-day", "conditions", condition(P[3], recorded_on="2018-02-31"), "recorded_on", "2018-02-31",
         "'2018-02-31' is not a real date"),
        ("impossible-month", "conditions", condition(P[3], recorded_on="2018-13-01"), "recorded_on", "2018-13-01",
         "'2018-13-01' is not a real date"),
        ("unknown-code-system", "conditions", condition(P[3], code_system="read2", code="C10.."), "code_system", "read2",
         "'read2' is not one of: icd10, snomed, gpps"),
        ("gpps-answer-not-an-option", "assessments", gpps(P[5], gpps_q32="Maybe"), "gpps_q32", "Maybe",
         "gpps_q32 answer 'Maybe' is not one of the questionnaire options"),
        ("gpps-missing-an-answer", "assessments", gpps(P[5], gpps_q33=""), "gpps_q33", None,
         "a GPPS assessment must answer both questions (gpps_q33 is empty)"),
        ("pam-score-120", "assessments", pam(P[5], pam_score="120"), "pam_score", "120", "PAM score 120 is outside 0-100"),
        ("pam-level-5", "assessments", pam(P[5], pam_score="", pam_level="5"), "pam_level", "5", "PAM level 5 is outside 1-4"),
        ("pam-neither-score-nor-level", "assessments", pam(P[5], pam_score=""), "pam_score", None,
         "a PAM assessment needs pam_score or pam_level (neither given)"),
    ]  # fmt: skip
    for case, name, row, column, value, reason in cell:
        m.bad_row(case, name, row, column, value, reason)

    # Rows that are fine alone but not with the rest.
    m.bad_row(
        "unknown-patient", "conditions", condition(Q[2]), "patient_id", Q[2], f"unknown patient {Q[2]}: not in patients.csv"
    )
    m.bad_row(
        "training-unknown-staff",
        "training",
        training("S999"),
        "staff_id",
        "S999",
        "unknown staff member 'S999': not in staff.csv",
    )
    m.bad_row(
        "conversation-unknown-staff",
        "conversations",
        conversation(P[2], staff_id="S999"),
        "staff_id",
        "S999",
        "unknown staff member 'S999': not in staff.csv",
    )
    first = m.good["conditions"][0]  # condition(P[0])
    m.bad_row(
        "exact-duplicate",
        "conditions",
        condition(P[0]),
        None,
        None,
        f"exact duplicate of conditions.csv line {first} (counted once)",
    )
    for case, pid, differs in (
        ("conflicting-date-of-birth", Q[3], {"date_of_birth": "1951-01-01"}),
        ("conflicting-sex", Q[4], {"sex": "male"}),
    ):
        why = f"conflicting details for NHS number {pid}: its rows disagree on date of birth or sex"
        m.bad_row(case + "-first", "patients", patient(pid), "patient_id", pid, why)
        m.bad_row(case + "-second", "patients", patient(pid, **differs), "patient_id", pid, why)
        m.bad_row(
            case + "-condition",
            "conditions",
            condition(pid),
            "patient_id",
            pid,
            f"unknown patient {pid}: their patients.csv rows were rejected as conflicting",
        )
    why = f"conflicting assessments: two pam assessments of {P[4]} by the patient on 2017-06-01 with different results"
    m.bad_row("conflicting-assessment-first", "assessments", pam(P[4], pam_score="47.0"), "assessed_on", "2017-06-01", why)
    m.bad_row("conflicting-assessment-second", "assessments", pam(P[4], pam_score="62.0"), "assessed_on", "2017-06-01", why)
    why = f"conflicting overrides: {P[0]} is both included in and excluded from the year1 cohort"
    m.bad_row("override-include", "overrides", override(P[0]), "action", "include", why)
    m.bad_row("override-exclude", "overrides", override(P[0], action="exclude", reason="Moved away"), "action", "exclude", why)
    why = "provider.csv must have exactly one row; it has 2 different rows"
    m.bad_row("provider-first-row", "provider", provider(), None, None, why)
    m.bad_row("provider-second-row", "provider", provider(plan_agreed_on="2017-10-01"), None, None, why)
    return m


MESSY = messy_rows()


@pytest.fixture(scope="module")
def messy(tmp_path_factory, vocab) -> CanonicalDataset:
    return load(make_folder(tmp_path_factory.mktemp("messy"), **MESSY.rows), vocab)


@pytest.mark.parametrize("case", list(MESSY.expected))
def test_each_bad_row_is_rejected_with_its_file_line_column_value_and_reason(messy, case):
    file, line, column, value, reason = MESSY.expected[case]
    got = messy.con.execute("SELECT column_name, value, reason FROM rejections WHERE file = ? AND line = ?", [file, line])
    assert got.fetchall() == [(column, value, reason)]


@pytest.mark.parametrize("name", list(MESSY.rows))
def test_every_good_row_of_the_messy_folder_arrives_and_nothing_else(messy, name):
    got = [r[0] for r in messy.con.execute(f"SELECT _line FROM {name} ORDER BY _line").fetchall()]
    assert got == MESSY.good.get(name, [])
    stats = messy.ledger.files[table(name).file_name]
    assert (stats.read, stats.accepted) == (len(MESSY.rows[name]), len(MESSY.good.get(name, [])))


def test_the_messy_folder_has_no_rejection_that_was_not_expected(messy):
    expected = sorted((file, line) for file, line, *_ in MESSY.expected.values())
    assert sorted(messy.con.execute("SELECT file, line FROM rejections").fetchall()) == expected


def test_an_exact_duplicate_is_counted_once(messy):
    assert messy.con.execute("SELECT count(*) FROM conditions WHERE patient_id = ?", [P[0]]).fetchall() == [(1,)]


def test_conversations_by_any_staff_id_are_accepted_when_staff_csv_is_absent(tmp_path, vocab):
    folder = make_folder(tmp_path, conversations=[conversation(P[0]), conversation(P[1], staff_id="S999")])
    ds = load(folder, vocab)
    assert rejections(ds, "conversations.csv") == []
    assert ids(ds, "conversations") == [P[0], P[1]]


# --------------------------------------------------------------------------- NHS numbers and dates


def test_nhs_numbers_written_with_spaces_or_hyphens_are_normalised(tmp_path, vocab):
    folder = make_folder(
        tmp_path,
        patients=[patient("943 476 5919"), patient("999-000-0018"), patient(" 9990000026 ")],
        conditions=[condition("9434765919"), condition("999 000 0018"), condition("999-000-0026")],
    )
    ds = load(folder, vocab)
    assert ids(ds, "patients") == ["9434765919", "9990000018", "9990000026"]
    assert ids(ds, "conditions") == ["9434765919", "9990000018", "9990000026"]  # any spelling finds the patient
    assert ds.ledger.rejection_count() == 0


def test_uk_dates_are_accepted_with_the_dates_uk_option(tmp_path, vocab):
    folder = make_folder(
        tmp_path,
        patients=[patient(P[0], served_from="15/03/2018", date_of_birth="1/2/1950"), patient(P[1], served_from="2017-04-01")],
        conditions=[condition(P[0], recorded_on="31/02/2018")],
    )
    ds = load(folder, vocab, dates="uk")
    got = ds.con.execute(
        "SELECT patient_id, CAST(served_from AS VARCHAR), CAST(date_of_birth AS VARCHAR) FROM patients ORDER BY 1"
    )
    assert got.fetchall() == [(P[0], "2018-03-15", "1950-02-01"), (P[1], "2017-04-01", "1950-01-01")]
    assert rejections(ds, "conditions.csv") == [(2, "recorded_on", "31/02/2018", "'31/02/2018' is not a real date")]


# --------------------------------------------------------------------------- files that cannot be read


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # what an .xlsx saved as .csv looks like
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


UNREADABLE = [
    pytest.param(b"", "the file is empty", id="empty"),
    pytest.param(b"\n\n", "the file is empty", id="only-blank-lines"),
    pytest.param(
        b"patient_id,date_of_birth,sex\n9990000018,1950-01-01,female\n",
        "missing required column(s) served_from",
        id="missing-column",
    ),
    pytest.param(
        b"patient_id,served_from,served_from\n9990000018,2017-01-01,2017-01-01\n",
        "the column 'served_from' appears twice in the header",
        id="duplicated-column",
    ),
    pytest.param("patient_id,served_from\n9990000018,2017-01-01\n".encode("utf-16"), "the file is UTF-16 encoded", id="utf-16"),
    pytest.param(bytes(range(256)) * 8, "is it really a CSV file?", id="binary-garbage"),
    pytest.param(_zip_bytes(), "patients.csv: ", id="zip-file"),
]


@pytest.mark.parametrize(("content", "message"), UNREADABLE)
def test_a_file_that_cannot_be_read_is_a_data_error_naming_it(tmp_path, vocab, content, message):
    folder = make_folder(tmp_path, patients=content)
    with pytest.raises(DataError) as caught:
        load_dataset(folder, vocab, adapter="canonical")
    assert str(caught.value).startswith("patients.csv: ")
    assert message in str(caught.value)


def test_an_optional_file_that_cannot_be_read_is_a_data_error_naming_it(tmp_path, vocab):
    folder = make_folder(tmp_path, staff=b"staff_id,role\nS001,Nurse\n")
    with pytest.raises(DataError, match=r"^staff\.csv: missing required column\(s\) cares_for_cohort"):
        load_dataset(folder, vocab, adapter="canonical")


# --------------------------------------------------------------------------- encodings and layout

ROLE = "Practice nurse – Sénior"  # an en dash (0x96) and é (0xE9) in Windows-1252
TRAINING_TEXT = (
    "staff_id,completed_on,course\n"
    'S001,2017-09-01,"Health coaching,\ntwo-day course"\n'  # lines 2-3: a quoted newline
    "S002,2017-09-01,Health coaching,extra\n"  # line 4: four values
    "S003,2017-02-30,PAM practitioner training\n"  # line 5: not a real date
    "S002,2017-10-01,PAM practitioner training\n"  # line 6
)


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """A folder written the ways real exports are: BOM, extra and reordered columns, Windows-1252, quoted newlines."""
    extra = [patient(p) | {"gp_practice": "Y01234", "Postcode": "LS1 4AP"} for p in P[:3]]
    staff_raw = csv_text([staff(STAFF[0], role=ROLE), staff(STAFF[1]), staff(STAFF[2])]).encode("cp1252")
    assert b"\x96" in staff_raw and b"\xe9" in staff_raw  # really single Windows-1252 bytes, not UTF-8
    return make_folder(
        tmp_path_factory.mktemp("layout"),
        patients=b"\xef\xbb\xbf" + csv_text(extra).encode("utf-8"),
        staff=staff_raw,
        conditions=csv_text(
            [condition(P[0]), condition(P[1], code_system="icd10", code="E11.9")],
            ["recorded_on", "code", "patient_id", "code_system"],
        ),
        training=TRAINING_TEXT,
    )


@pytest.fixture(scope="module")
def laid_out(layout, vocab) -> CanonicalDataset:
    return load(layout, vocab)


def test_a_windows_1252_file_reads_correctly(laid_out):
    assert laid_out.con.execute("SELECT role FROM staff ORDER BY staff_id").fetchall() == [
        (ROLE,),
        ("District nurse",),
        ("District nurse",),
    ]
    assert "staff.csv: read as Windows-1252 (not UTF-8)" in laid_out.ledger.notes


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column_name(laid_out):
    assert ids(laid_out, "patients") == P[:3]


def test_extra_columns_are_ignored_with_one_note(laid_out):
    notes = [n for n in laid_out.ledger.notes if "not canonical" in n]
    assert notes == ["patients.csv: column(s) gp_practice, postcode are not canonical and were ignored"]
    assert "gp_practice" not in [c[0] for c in laid_out.con.execute("DESCRIBE patients").fetchall()]


def test_a_missing_optional_file_gives_a_note(laid_out):
    assert "overrides.csv: not supplied, so there are no overrides records" in laid_out.ledger.notes
    assert "overrides.csv" not in laid_out.ledger.files


def test_columns_may_come_in_any_order(laid_out):
    got = laid_out.con.execute(
        "SELECT patient_id, code_system, code, CAST(recorded_on AS VARCHAR) FROM conditions ORDER BY _line"
    )
    assert got.fetchall() == [(P[0], "snomed", "44054006", "2017-06-01"), (P[1], "icd10", "E11.9", "2017-06-01")]


def test_a_quoted_newline_stays_in_its_cell_and_later_line_numbers_stay_right(laid_out):
    assert rejections(laid_out, "training.csv") == [
        (4, None, "S002,2017-09-01,Health coaching,extra", "the row has 4 value(s) but the header has 3 column(s)"),
        (5, "completed_on", "2017-02-30", "'2017-02-30' is not a real date"),
    ]
    got = laid_out.con.execute("SELECT _line, staff_id, course FROM training ORDER BY _line").fetchall()
    assert got == [(2, "S001", "Health coaching,\ntwo-day course"), (6, "S002", "PAM practitioner training")]


# --------------------------------------------------------------------------- the real command line


def cquin(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cquin.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cquin_load_writes_the_report_and_rejections_and_a_bad_folder_is_one_line_error(tmp_path):
    good = make_folder(tmp_path, conditions=[condition(P[0]), condition(P[1], recorded_on="2018-13-01")])
    done = cquin("load", str(good), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out" / "load-report.json").read_text())
    counts = report["files"]["conditions.csv"]
    assert (counts["read"], counts["accepted"], counts["rejected"]) == (2, 1, 1)
    assert report["rejections"] == 1
    with (tmp_path / "out" / "rejections.csv").open(newline="") as fh:
        assert list(csv.DictReader(fh)) == [
            {
                "file": "conditions.csv",
                "line": "3",
                "ref": "",
                "column": "recorded_on",
                "value": "2018-13-01",
                "reason": "'2018-13-01' is not a real date",
            }
        ]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "patients.csv").write_bytes("patient_id,served_from\n".encode("utf-16"))
    failed = cquin("load", str(bad), "--adapter", "canonical", "--out", str(tmp_path / "out2"), cwd=tmp_path)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert "patients.csv" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- NHS numbers: agreement with a reference


def _not_a_chi_number(text: str) -> bool:
    # nhs_number also rejects Scottish CHI-range numbers whose first six digits are not a date
    # (a CHI rule, not the NHS Data Dictionary's Modulus 11 check, which is all cquin applies).
    return not nhs_number.REGION_SCOTLAND.contains_number(text)


ten_digits = st.text("0123456789", min_size=10, max_size=10)
test_range = st.text("0123456789", min_size=7, max_size=7).map(lambda s: "999" + s)
# Each example is one build of up to 100 numbers (about 1 in 11 random numbers is valid), so 25 examples
# check some 2,500 numbers; a build costs most of a second, which is what bounds the examples.
numbers = st.lists(st.one_of(ten_digits, test_range).filter(_not_a_chi_number), min_size=1, max_size=100, unique=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(candidates=numbers)
def test_the_nhs_number_check_agrees_with_the_nhs_number_package(vocab, candidates):
    builder = DatasetBuilder(vocab, memory_limit="256MB", threads=1)
    builder.source("patients.csv", None, "patients")
    builder.add_rows(
        "patients",
        (
            {"_file": "patients.csv", "_line": i + 2, "patient_id": n, "served_from": "2017-01-01"}
            for i, n in enumerate(candidates)
        ),
    )
    ds = builder.build()
    accepted = set(ids(ds, "patients"))
    ds.con.close()
    assert accepted == {n for n in candidates if nhs_number.is_valid(n)}
