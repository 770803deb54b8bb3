"""CSDS as it is really held (issue 14 item 1, issue 12 item 5): item names of each rendering, real keys
and joins, dates with a time part, NHS number status, agreed care plans and pseudonymised copies."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.adapters.csds import CsdsAdapter
from cquin.cli import app
from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from tests.adapters.ledger_checks import assert_every_record_counted

ANN = "9990000018"


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_ruleset("cquin_2017_19").vocabulary()


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text.strip() + "\n", encoding="utf-8")
    return folder


def load(folder: Path, vocab: Vocabulary, **options: str) -> CanonicalDataset:
    ds, _ = load_dataset(folder, vocab, "csds", options)
    assert_every_record_counted(ds, folder)
    return ds


def reasons(ds: CanonicalDataset) -> list[tuple]:
    return ds.con.execute("SELECT file, line, reason FROM rejections ORDER BY file, line").fetchall()


TOS = {
    "CYP001MPI.csv": f"""
LOCAL PATIENT IDENTIFIER (EXTENDED),NHS NUMBER,NHS NUMBER STATUS INDICATOR CODE,PERSON BIRTH DATE,PERSON STATED GENDER CODE
LP1,{ANN},03,1941-06-12 00:00:00,2
""",
    "CYP101Referral.csv": """
SERVICE REQUEST IDENTIFIER,LOCAL PATIENT IDENTIFIER (EXTENDED),REFERRAL REQUEST RECEIVED DATE,SERVICE DISCHARGE DATE
SR1,LP1,2016-11-03 00:00:00,
""",
    "CYP201CareContact.csv": """
CARE CONTACT IDENTIFIER,SERVICE REQUEST IDENTIFIER,CARE CONTACT DATE,ATTENDED OR DID NOT ATTEND CODE
CC1,SR1,2017-07-05,5
CC2,SR1,2017-07-32,5
""",
    "CYP202CareActivity.csv": """
CARE ACTIVITY IDENTIFIER,CARE CONTACT IDENTIFIER,CARE PROFESSIONAL LOCAL IDENTIFIER,CODED PROCEDURE (CLINICAL TERMINOLOGY)
CA1,CC1,S9,pcsp-conversation
CA2,CC2,S9,pcsp-conversation
CA3,CC1,,718023004
""",
    "CYP607PrimDiag.csv": """
SERVICE REQUEST IDENTIFIER,DIAGNOSIS SCHEME IN USE,PRIMARY DIAGNOSIS (CODED CLINICAL ENTRY),DIAGNOSIS DATE
SR1,06,44054006,2015-03-10
""",
    "CYP612CodedAssessmentContact.csv": """
CARE ACTIVITY IDENTIFIER,CODED ASSESSMENT TOOL TYPE (SNOMED CT),PERSON SCORE
CA3,962851000000103,1
CA3,925431000000109,44.2
""",
}


def test_technical_output_specification_names_load_with_the_real_joins(tmp_path: Path, vocab: Vocabulary) -> None:
    ds = load(write(tmp_path, TOS), vocab)
    assert ds.con.execute("SELECT patient_id, code FROM conditions").fetchall() == [(ANN, "44054006")]  # by service request
    assert ds.con.execute("SELECT CAST(assessed_on AS VARCHAR), pam_level, pam_score FROM assessments").fetchall() == [
        ("2017-07-05", 1, Decimal("44.2"))
    ]  # by care activity, dated by its contact
    assert ds.con.execute("SELECT CAST(held_on AS VARCHAR), staff_id FROM conversations").fetchall() == [("2017-07-05", "S9")]


def test_a_bad_contact_date_is_charged_to_the_contact_and_named_by_what_depends_on_it(tmp_path: Path, vocab: Vocabulary) -> None:
    found = reasons(load(write(tmp_path, TOS), vocab))
    assert ("CYP201CareContact.csv", 3, "CARE CONTACT DATE '2017-07-32' is not a real date") in found
    downstream = [r for f, line, r in found if f == "CYP202CareActivity.csv" and line == 3]
    assert downstream == [
        "cannot be linked to a patient: CareContactId=CC2 in CYP201CareContact.csv was rejected (CARE CONTACT DATE is not a date)"
    ]


def test_nhs_number_status_is_reported(tmp_path: Path, vocab: Vocabulary) -> None:
    ds = load(write(tmp_path, TOS), vocab)
    note = next(n for n in ds.ledger.notes if "NHS number status" in n)
    assert "03 trace required: 1" in note and "1 of 1 NHS numbers are not recorded as verified" in note


def test_uk_dates_with_a_time_part_are_read_with_dates_uk(tmp_path: Path, vocab: Vocabulary) -> None:
    files = dict(TOS)
    files["CYP001MPI.csv"] = files["CYP001MPI.csv"].replace("1941-06-12 00:00:00", "12/06/1941 00:00:00")
    ds = load(write(tmp_path, files), vocab, dates="uk")
    assert ds.con.execute("SELECT CAST(date_of_birth AS VARCHAR) FROM patients").fetchall() == [("1941-06-12",)]


def test_a_rendering_named_by_option_must_match_the_headers(tmp_path: Path, vocab: Vocabulary) -> None:
    with pytest.raises(DataError, match=r"CYP001MPI.csv: the required CSDS column LocalPatientId is missing"):
        load_dataset(write(tmp_path, TOS), vocab, "csds", {"rendering": "pipeline"})


PLANS = {
    "CYP004CarePlanType.csv": """
CARE PLAN IDENTIFIER,LOCAL PATIENT IDENTIFIER (EXTENDED),CARE PLAN TYPE (COMMUNITY CARE),CARE PLAN CREATION DATE
CP1,LP1,10,2018-05-01
CP2,LP1,11,2018-06-01
""",
    "CYP005CarePlanAgreement.csv": """
CARE PLAN IDENTIFIER,CARE PLAN AGREED BY,CARE PLAN AGREED DATE
CP1,10,2018-05-04
""",
}


def test_an_agreed_care_plan_is_a_conversation_on_the_day_it_was_agreed(tmp_path: Path, vocab: Vocabulary) -> None:
    ds = load(write(tmp_path, TOS | PLANS), vocab)
    held = ds.con.execute("SELECT CAST(held_on AS VARCHAR), _file FROM conversations ORDER BY 1").fetchall()
    assert held == [("2017-07-05", "CYP202CareActivity.csv"), ("2018-05-04", "CYP005CarePlanAgreement.csv")]
    assert ("CYP004CarePlanType.csv", 3) in [(f, line) for f, line, _ in reasons(ds)]  # CP2: never agreed


NCDR = {
    "CYP001MPI.csv": """
LocalPatientID,Person_ID,DateOfBirth,Gender
LP1,PSN000000001X,1941-06-12,2
""",
    "CYP101Referral.csv": """
ServiceRequestID,LocalPatientID,Person_ID,ReferralRequest_ReceivedDate,Discharge_Date
SR1,LP1,PSN000000001X,2016-11-03,
""",
    "CYP609CodedAssessmentReferral.csv": """
ServiceRequestID,SNOMED_ID,Score,AssessmentCompletion_Date
SR1,962851000000103,2,2017-06-14
""",
}


def test_a_pseudonymised_copy_is_keyed_by_person_id(tmp_path: Path, vocab: Vocabulary) -> None:
    ds = load(write(tmp_path, NCDR), vocab)
    assert ds.con.execute("SELECT DISTINCT patient_id FROM patients").fetchall() == [("PSN000000001X",)]
    assert ds.pseudonymous and "pseudonymous" in ds.pseudonymous


def test_every_output_of_a_pseudonymised_run_says_so_first(tmp_path: Path) -> None:
    folder = write(tmp_path / "ncdr", NCDR)
    runner = CliRunner()
    table = runner.invoke(app, ["evaluate", str(folder), "--adapter", "csds", "--no-store", "--contract-value", "1000"])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].startswith("IDENTIFIERS ARE PSEUDONYMOUS")
    doc = json.loads(runner.invoke(app, ["evaluate", str(folder), "--adapter", "csds", "--no-store", "--format", "json"]).output)
    assert doc["identifiers"]["pseudonymous"] is True and list(doc)[:2] == ["data_quality_check", "identifiers"]
    out = runner.invoke(app, ["evaluate", str(folder), "--adapter", "csds", "--no-store", "--format", "csv"]).output
    assert all(r["identifiers"].startswith("pseudonymous: ") for r in csv.DictReader(io.StringIO(out)))
    store = tmp_path / "audit.sqlite"
    stored = runner.invoke(app, ["evaluate", str(folder), "--adapter", "csds", "--store", str(store)])
    run_id = re.search(r"run (\S+) stored", stored.output).group(1)  # type: ignore[union-attr]
    shown = runner.invoke(app, ["runs", "show", run_id, "--store", str(store)]).output
    assert shown.index("IDENTIFIERS ARE PSEUDONYMOUS") < shown.index("Inputs")


def test_the_adapter_documents_its_options() -> None:
    names = {o.name for o in CsdsAdapter.options}
    assert names == {"dates", "rendering", "patient_key"}
