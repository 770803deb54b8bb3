"""The csds adapter: a CSDS submission (one CSV per CYP table) read into the canonical tables.

``basic`` is a small, clean submission of four people; ``problems`` is a messy
one where each record shows one way a CSDS record cannot be used.  Every test
that loads data also checks that no record vanishes: for each file, read =
accepted + rejected, and read = the records in the file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from cquin import plugins
from cquin.adapters.csds import PAM_LEVEL_TOOL, PAM_SCORE_TOOL, CsdsAdapter
from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from tests.adapters.ledger_checks import assert_every_record_counted

FIXTURES = Path(__file__).parent.parent / "fixtures" / "csds"
BASIC = FIXTURES / "basic"
PROBLEMS = FIXTURES / "problems"
# The basic people (NHS numbers in the 999 test range, valid Modulus 11 check digits).
ANN, BOB, CAT, DEE = "9990000018", "9990000026", "9990000034", "9990000042"


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_ruleset("cquin_2017_19").vocabulary()


@pytest.fixture(scope="module")
def basic(vocab: Vocabulary) -> CanonicalDataset:
    return load(BASIC, vocab)


@pytest.fixture(scope="module")
def problems(vocab: Vocabulary) -> CanonicalDataset:
    return load(PROBLEMS, vocab)


def load(path: Path, vocab: Vocabulary, **options: str) -> CanonicalDataset:
    ds, name = load_dataset(path, vocab, adapter="csds", options=options)
    assert name == "csds"
    assert_every_record_counted(ds, path)
    return ds


def rows(ds: CanonicalDataset, sql: str) -> list[tuple]:
    return ds.con.execute(sql).fetchall()


def reason(ds: CanonicalDataset, file: str, line: int) -> str:
    found = rows(ds, f"SELECT reason FROM rejections WHERE file = '{file}' AND line = {line}")
    assert len(found) == 1, f"{file} line {line}: expected one rejection, got {found}"
    return found[0][0]


def copy_submission(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ---------------------------------------------------------------- finding the submission


def test_the_plugin_manager_lists_the_csds_adapter() -> None:
    assert plugins.adapters()["csds"].cls is CsdsAdapter


def test_detects_a_folder_with_a_cyp001_file(tmp_path: Path) -> None:
    assert CsdsAdapter().detect(BASIC)
    assert not CsdsAdapter().detect(tmp_path)
    assert not CsdsAdapter().detect(BASIC / "CYP001MPI.csv")
    assert plugins.detect_adapter(BASIC).name == "csds"


def test_file_names_match_the_table_id_in_any_case_with_a_suffix(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = tmp_path / "sub"
    folder.mkdir()
    for f in BASIC.iterdir():
        shutil.copy(f, folder / f.name.lower().replace(".csv", "_2018.CSV"))
    ds = load(folder, vocab)
    assert ds.count("patients") == 5
    assert ds.ledger.files["cyp001mpi_2018.CSV"].read == 4


def test_two_files_for_one_table_are_an_error(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    shutil.copy(folder / "CYP101Referral.csv", folder / "CYP101Referral_2018.csv")
    with pytest.raises(DataError, match="several files for CSDS table CYP101"):
        load_dataset(folder, vocab, adapter="csds")


def test_a_folder_without_cyp001_is_an_error(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    (folder / "CYP001MPI.csv").unlink()
    with pytest.raises(DataError, match="CYP001MPI"):
        load_dataset(folder, vocab, adapter="csds")


def test_tables_not_supplied_and_tables_not_used_are_noted(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    (folder / "CYP608SecDiag.csv").unlink()
    (folder / "CYP002GP.csv").write_text("OrgIdProv,LocalPatientId,GMPCodeReg\nRYX,P0001,G8123456\n")
    ds = load(folder, vocab)
    assert any("CYP608SecDiag.csv: not supplied" in n for n in ds.ledger.notes)
    assert any("CYP002GP.csv: CSDS table CYP002 is not used" in n for n in ds.ledger.notes)


# ---------------------------------------------------------------- the basic submission


def test_each_referral_is_one_patients_row_with_the_persons_details(basic: CanonicalDataset) -> None:
    assert rows(basic, "SELECT _line, _ref, patient_id, date_of_birth, served_from, served_to FROM patients ORDER BY _line") == [
        (2, "ServiceRequestId=R0001", ANN, dt.date(1948, 3, 12), dt.date(2017, 5, 2), None),
        (3, "ServiceRequestId=R0002", BOB, dt.date(1952, 11, 2), dt.date(2017, 6, 10), dt.date(2018, 11, 30)),
        (4, "ServiceRequestId=R0003", CAT, dt.date(1939, 7, 30), dt.date(2017, 9, 1), None),
        (5, "ServiceRequestId=R0004", DEE, dt.date(1960, 1, 15), dt.date(2018, 1, 20), None),
        (6, "ServiceRequestId=R0005", ANN, dt.date(1948, 3, 12), dt.date(2016, 2, 1), dt.date(2017, 1, 31)),
    ]
    assert {r[0] for r in rows(basic, "SELECT DISTINCT _file FROM patients")} == {"CYP101Referral.csv"}


def test_person_stated_gender_codes_become_sex(basic: CanonicalDataset) -> None:
    assert dict(rows(basic, "SELECT DISTINCT patient_id, sex FROM patients")) == {
        ANN: "female",  # 2
        BOB: "male",  # 1
        CAT: "unknown",  # X
        DEE: "indeterminate",  # 9
    }


def test_diagnoses_in_either_scheme_become_conditions(basic: CanonicalDataset) -> None:
    assert rows(basic, "SELECT _file, patient_id, code_system, code, recorded_on FROM conditions ORDER BY _file, _line") == [
        ("CYP607PrimDiag.csv", ANN, "snomed", "44054006", dt.date(2017, 5, 2)),
        ("CYP607PrimDiag.csv", BOB, "icd10", "J44.1", dt.date(2017, 6, 10)),
        ("CYP607PrimDiag.csv", CAT, "icd10", "F01.9", dt.date(2017, 9, 1)),
        ("CYP607PrimDiag.csv", DEE, "snomed", "195967001", dt.date(2018, 1, 20)),
        ("CYP608SecDiag.csv", ANN, "icd10", "I10", dt.date(2017, 5, 2)),
        ("CYP608SecDiag.csv", BOB, "snomed", "59621000", dt.date(2017, 6, 10)),
    ]


def test_pam_scores_and_levels_become_assessments_one_row_per_patient_and_date(basic: CanonicalDataset) -> None:
    got = rows(basic, "SELECT patient_id, assessed_on, pam_score, pam_level FROM assessments ORDER BY patient_id, assessed_on")
    assert got == [
        (ANN, dt.date(2017, 6, 1), Decimal("48.3"), 2),  # score and level at contact C0001
        (ANN, dt.date(2018, 5, 14), Decimal("60.1"), None),
        (BOB, dt.date(2017, 7, 3), None, 3),
        (CAT, dt.date(2017, 9, 15), Decimal("41"), 1),  # both from CYP609, dated by completion
        (DEE, dt.date(2018, 3, 1), Decimal("70.5"), 4),  # level at a contact, score on the referral
    ]


def test_assessments_are_by_the_patient_as_csds_has_no_carer_flag(basic: CanonicalDataset) -> None:
    assert rows(basic, "SELECT DISTINCT respondent, instrument FROM assessments") == [("patient", "pam")]


def test_merged_pam_records_are_accepted_not_lost(basic: CanonicalDataset) -> None:
    assert basic.ledger.files["CYP612CodedAssessmentContact.csv"].as_dict() == {"read": 5, "accepted": 5, "rejected": 0}
    assert basic.ledger.files["CYP609CodedAssessmentReferral.csv"].as_dict() == {"read": 3, "accepted": 3, "rejected": 0}


def test_a_care_activity_with_a_conversation_code_is_a_conversation_at_its_contact(basic: CanonicalDataset) -> None:
    assert rows(basic, "SELECT _ref, patient_id, held_on, staff_id FROM conversations ORDER BY _line") == [
        ("CareActivityId=A0001", ANN, dt.date(2017, 6, 1), "NURSE01"),  # pcsp-conversation
        ("CareActivityId=A0003", BOB, dt.date(2017, 7, 3), "HV02"),  # pcsp-review
    ]


def test_other_care_activities_are_rejected_as_ignored(basic: CanonicalDataset) -> None:
    assert reason(basic, "CYP202CareActivity.csv", 3).startswith("ignored: not a care and support planning conversation")
    assert basic.ledger.rejection_count() == 1


def test_linking_records_are_counted_as_accepted(basic: CanonicalDataset) -> None:
    for name, read in (("CYP001MPI.csv", 4), ("CYP101Referral.csv", 5), ("CYP201CareContact.csv", 5)):
        assert basic.ledger.files[name].as_dict() == {"read": read, "accepted": read, "rejected": 0}


def test_a_snomed_conversation_code_from_the_ruleset_is_recognised(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    activities = folder / "CYP202CareActivity.csv"
    activities.write_text(activities.read_text().replace("A0002,C0001", "A0002,C0002"))
    codes = dict(vocab.conversation_codes) | {"snomed": frozenset({"225358003"})}
    ds = load(folder, dataclasses.replace(vocab, conversation_codes=codes))
    assert rows(ds, "SELECT patient_id, held_on FROM conversations WHERE _ref = 'CareActivityId=A0002'") == [
        (ANN, dt.date(2018, 5, 14))
    ]


def test_upper_snake_case_headers_are_read_too(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    mpi = folder / "CYP001MPI.csv"
    header, rest = mpi.read_text().split("\n", 1)
    upper = ",".join(re.sub(r"(?<=[a-z])(?=[A-Z])", "_", h).upper() for h in header.split(","))
    assert "PERSON_STATED_GENDER_CODE" in upper
    mpi.write_text(upper + "\n" + rest)
    assert load(folder, vocab).count("patients") == 5


def test_uk_dates_are_read_with_the_dates_option(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    for f in folder.iterdir():
        f.write_text(re.sub(r"(\d{4})-(\d{2})-(\d{2})", r"\3/\2/\1", f.read_text()))
    ds = load(folder, vocab, dates="uk")
    assert ds.ledger.rejection_count() == 1  # only the ignored care activity
    assert rows(ds, "SELECT served_from, served_to FROM patients WHERE _line = 3") == [
        (dt.date(2017, 6, 10), dt.date(2018, 11, 30))
    ]


def test_a_utf8_file_with_a_byte_order_mark_is_read(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    mpi = folder / "CYP001MPI.csv"
    mpi.write_bytes(b"\xef\xbb\xbf" + mpi.read_bytes())
    assert load(folder, vocab).count("patients") == 5


# ---------------------------------------------------------------- records that cannot be used


def test_a_person_without_an_nhs_number_is_rejected(problems: CanonicalDataset) -> None:
    assert (
        reason(problems, "CYP001MPI.csv", 3) == "no NHS number: cquin identifies patients by NHS number, and NHSNumber is empty"
    )


def test_records_of_a_rejected_person_are_rejected_saying_why(problems: CanonicalDataset) -> None:
    for file, line in (("CYP101Referral.csv", 3), ("CYP607PrimDiag.csv", 3)):
        assert reason(problems, file, line) == (
            "cannot be linked to a patient: LocalPatientId=P0102 in CYP001MPI.csv was rejected "
            "(no NHS number: cquin identifies patients by NHS number, and NHSNumber is empty)"
        )


def test_a_person_whose_nhs_number_fails_the_check_digit_is_rejected(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP001MPI.csv", 4) == "NHS number '9990000051' fails the Modulus 11 check digit"


def test_a_person_with_no_referral_is_rejected(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP001MPI.csv", 5) == "no referral: time under the provider's care is unknown"


def test_an_unknown_gender_code_rejects_the_person(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP001MPI.csv", 6).startswith("PersonStatedGenderCode 'Z' is not a CSDS code")


def test_a_record_with_the_wrong_number_of_fields_is_rejected(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP001MPI.csv", 7) == "the record has 4 fields but the header has 6; it cannot be read"


def test_a_referral_for_an_unknown_person_is_rejected(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP101Referral.csv", 4) == "unknown LocalPatientId 'P0199': not in CYP001MPI"


def test_contacts_and_their_activities_under_a_rejected_referral_are_rejected(problems: CanonicalDataset) -> None:
    why = "cannot be linked to a patient: ServiceRequestId=R0199 in CYP101Referral.csv was rejected (unknown LocalPatientId 'P0199': not in CYP001MPI)"
    assert reason(problems, "CYP201CareContact.csv", 4) == why
    assert reason(problems, "CYP202CareActivity.csv", 4) == why


def test_a_conversation_at_a_contact_not_attended_is_rejected(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP202CareActivity.csv", 3) == (
        "the conversation's contact was not attended (AttendOrDNACode '3'; only 5 or 6, attended, count)"
    )
    assert rows(problems, "SELECT patient_id, held_on FROM conversations") == [("9990000050", dt.date(2017, 5, 10))]


def test_an_activity_at_an_unknown_contact_is_rejected(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP202CareActivity.csv", 5) == "unknown CareContactId 'C0404': not in CYP201CareContact"


def test_an_assessment_tool_that_is_not_pam_is_rejected_as_ignored(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP612CodedAssessmentContact.csv", 3) == (
        f"ignored: assessment tool type '1036451000000107' is not a PAM score ({PAM_SCORE_TOOL}) or level ({PAM_LEVEL_TOOL})"
    )
    assert rows(problems, "SELECT patient_id, pam_score FROM assessments") == [("9990000050", Decimal("52"))]


def test_a_diagnosis_in_another_scheme_is_rejected_as_ignored(problems: CanonicalDataset) -> None:
    assert reason(problems, "CYP607PrimDiag.csv", 4).startswith(
        "ignored: diagnosis scheme '05' is not ICD-10 (02) or SNOMED CT (06)"
    )


def test_only_the_usable_records_of_the_messy_submission_are_accepted(problems: CanonicalDataset) -> None:
    counts = {name: (s.read, s.accepted, s.rejected) for name, s in problems.ledger.files.items()}
    assert counts == {
        "CYP001MPI.csv": (6, 1, 5),
        "CYP101Referral.csv": (3, 1, 2),
        "CYP201CareContact.csv": (3, 2, 1),
        "CYP202CareActivity.csv": (4, 1, 3),
        "CYP607PrimDiag.csv": (3, 1, 2),
        "CYP612CodedAssessmentContact.csv": (2, 1, 1),
    }


def test_a_missing_required_column_is_an_error_naming_file_and_column(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    contacts = folder / "CYP201CareContact.csv"
    contacts.write_text(contacts.read_text().replace("AttendOrDNACode", "Attendance"))
    with pytest.raises(DataError, match=r"CYP201CareContact\.csv: the required CSDS column AttendOrDNACode is missing"):
        load_dataset(folder, vocab, adapter="csds")


def test_a_windows_1252_file_with_a_non_ascii_name_is_read(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    activities = folder / "CYP202CareActivity.csv"
    activities.write_bytes(activities.read_text().replace("NURSE01", "SIÂN.BRONTË").encode("cp1252"))
    ds = load(folder, vocab)
    assert rows(ds, "SELECT staff_id FROM conversations WHERE _line = 2") == [("SIÂN.BRONTË",)]


def test_an_exact_repeat_of_a_person_counts_once(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    mpi = folder / "CYP001MPI.csv"
    mpi.write_text(mpi.read_text() + "RYX,P0002,RYX,9990000026,01,1952-11-02,1,A,03R\n")
    ds = load(folder, vocab)
    assert reason(ds, "CYP001MPI.csv", 6) == "exact duplicate of CYP001MPI.csv line 3 (counted once)"
    assert ds.count("patients") == 5


def test_conflicting_records_for_one_person_are_all_rejected(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    mpi = folder / "CYP001MPI.csv"
    mpi.write_text(mpi.read_text() + "RYX,P0002,RYX,9990000026,01,1952-11-03,1,A,03R\n")
    ds = load(folder, vocab)
    why = "conflicting records for LocalPatientId P0002 (lines 3, 6): they disagree, so none is used"
    assert reason(ds, "CYP001MPI.csv", 3) == why
    assert reason(ds, "CYP001MPI.csv", 6) == why
    assert BOB not in {r[0] for r in rows(ds, "SELECT patient_id FROM patients")}


def test_two_different_pam_scores_on_one_date_are_both_rejected(tmp_path: Path, vocab: Vocabulary) -> None:
    folder = copy_submission(BASIC, tmp_path / "sub")
    pam = folder / "CYP612CodedAssessmentContact.csv"
    pam.write_text(pam.read_text() + f"RYX,C0002,{PAM_SCORE_TOOL},58.0\n")
    ds = load(folder, vocab)
    why = f"conflicting assessments: different PAM scores (58.0, 60.1) for {ANN} on 2018-05-14; none is used"
    assert reason(ds, "CYP612CodedAssessmentContact.csv", 4) == why
    assert reason(ds, "CYP612CodedAssessmentContact.csv", 7) == why
