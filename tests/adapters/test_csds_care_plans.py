"""CSDS care plans (issue 19 item 5): what a CSDS submission says about agreed care plans becomes ``care_plans``.

CSDS records that a plan was agreed (CYP004 + CYP005) but not what it says, and links no care activity to a
plan; a CYP202 care activity coded with a SNOMED CT code of the ruleset's ``care_planning`` lists is attached
to the patient's latest plan agreed on or before the contact.  See ``cquin/adapters/csds.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset
from tests.adapters.ledger_checks import assert_every_record_counted

POPULATION = Path(__file__).parent.parent / "fixtures" / "equivalence"
PLAN_ROWS = "SELECT * EXCLUDE (_file, _line, _ref) FROM care_plans ORDER BY ALL"
REFERRAL = "390893007"  # Referral to physical activity program: the ruleset's physical_activity referral code
ANN = "9990000018"


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_ruleset("cquin_2017_19").vocabulary()


def load(folder: Path, vocab: Vocabulary) -> CanonicalDataset:
    ds, name = load_dataset(folder, vocab, adapter="csds")
    assert name == "csds"
    return ds


def test_the_equivalence_population_s_care_plans_are_what_csds_can_say_of_the_canonical_ones(vocab: Vocabulary) -> None:
    csds = load(POPULATION / "csds", vocab)
    canonical = load_dataset(POPULATION / "canonical", vocab, adapter="canonical")[0].con.execute(PLAN_ROWS).fetchall()
    # CSDS has no item saying the plan was shared with the patient: that column is empty (see the fixture README).
    expressible = [(*row[:3], None, *row[4:]) for row in canonical if (row[4], row[5]) == ("referral", "physical_activity")]
    assert csds.con.execute(PLAN_ROWS).fetchall() == expressible
    assert len(expressible) == 1  # row 3: A's referral, made 2017-07-20 after the plan agreed 2017-07-05
    assert csds.con.execute("SELECT * FROM rejections").fetchall() == []


def test_the_bundled_ruleset_names_a_physical_activity_referral_by_snomed_ct(vocab: Vocabulary) -> None:
    assert vocab.care_plan_category_codes["snomed"][REFERRAL] == ("referral", "physical_activity")


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text.strip() + "\n", encoding="utf-8")
    return folder


BASE = {
    "CYP001MPI.csv": f"""
LOCAL PATIENT IDENTIFIER (EXTENDED),NHS NUMBER,PERSON BIRTH DATE,PERSON STATED GENDER CODE
LP1,{ANN},1941-06-12,2
""",
    "CYP101Referral.csv": """
SERVICE REQUEST IDENTIFIER,LOCAL PATIENT IDENTIFIER (EXTENDED),REFERRAL REQUEST RECEIVED DATE,SERVICE DISCHARGE DATE
SR1,LP1,2016-11-03,
""",
    "CYP201CareContact.csv": """
CARE CONTACT IDENTIFIER,SERVICE REQUEST IDENTIFIER,CARE CONTACT DATE,ATTENDED OR DID NOT ATTEND CODE
CC1,SR1,2017-05-01,5
CC2,SR1,2017-07-05,5
CC3,SR1,2017-09-01,5
CC4,SR1,2017-10-01,2
""",
    "CYP202CareActivity.csv": f"""
CARE ACTIVITY IDENTIFIER,CARE CONTACT IDENTIFIER,PROCEDURE SCHEME IN USE (COMMUNITY CARE),CODED PROCEDURE (CLINICAL TERMINOLOGY)
CA1,CC1,06,{REFERRAL}
CA2,CC2,06,{REFERRAL}
CA3,CC3,,{REFERRAL}
CA4,CC4,06,{REFERRAL}
""",
    "CYP004CarePlanType.csv": """
CARE PLAN IDENTIFIER,LOCAL PATIENT IDENTIFIER (EXTENDED),CARE PLAN CREATION DATE
CP1,LP1,2017-06-01
CP2,LP1,2017-08-01
""",
    "CYP005CarePlanAgreement.csv": """
CARE PLAN IDENTIFIER,CARE PLAN AGREED DATE
CP1,2017-07-05
CP2,2017-08-15
""",
}


@pytest.fixture
def loaded(tmp_path: Path, vocab: Vocabulary) -> CanonicalDataset:
    ds = load(write(tmp_path, BASE), vocab)
    assert_every_record_counted(ds, tmp_path)
    return ds


def rejected(ds: CanonicalDataset, file: str) -> dict[int, str]:
    rows = ds.con.execute("SELECT line, reason FROM rejections WHERE file = ?", [file]).fetchall()
    return dict(rows)


def test_an_entry_is_attached_to_the_latest_plan_agreed_on_or_before_its_contact(loaded: CanonicalDataset) -> None:
    rows = loaded.con.execute(
        "SELECT _ref, plan_id, CAST(agreed_on AS VARCHAR), shared_with_patient, entry, category, CAST(entry_on AS VARCHAR) "
        "FROM care_plans ORDER BY _ref"
    ).fetchall()
    assert rows == [
        # on the day CP1 was agreed: the plan's own entry, no entry date
        ("CareActivityId=CA2", "CP1", "2017-07-05", None, "referral", "physical_activity", None),
        # after CP2 was agreed (2017-08-15): CP2's, made later; a scheme not given is read as SNOMED CT
        ("CareActivityId=CA3", "CP2", "2017-08-15", None, "referral", "physical_activity", "2017-09-01"),
    ]


def test_an_entry_with_no_plan_agreed_before_it_is_ignored_with_its_reason(loaded: CanonicalDataset) -> None:
    reasons = rejected(loaded, "CYP202CareActivity.csv")
    assert reasons[2] == (
        f"ignored: CODED PROCEDURE (CLINICAL TERMINOLOGY) '{REFERRAL}' is a care plan entry, but the patient has no "
        "care plan agreed on or before the contact date 2017-05-01 (CYP004 with a CYP005 CARE PLAN AGREED DATE), "
        "so it cannot be attached to a plan"
    )


def test_an_entry_at_a_contact_not_attended_is_rejected(loaded: CanonicalDataset) -> None:
    assert "not attended" in rejected(loaded, "CYP202CareActivity.csv")[5]
    assert set(rejected(loaded, "CYP202CareActivity.csv")) == {2, 5}


def test_an_entry_s_plan_still_counts_as_a_conversation(loaded: CanonicalDataset) -> None:
    held = loaded.con.execute("SELECT CAST(held_on AS VARCHAR) FROM conversations ORDER BY 1").fetchall()
    assert held == [("2017-07-05",), ("2017-08-15",)]


def test_a_code_in_another_scheme_is_not_read_as_snomed_ct(tmp_path: Path, vocab: Vocabulary) -> None:
    files = dict(BASE)
    files["CYP202CareActivity.csv"] = f"""
CARE ACTIVITY IDENTIFIER,CARE CONTACT IDENTIFIER,PROCEDURE SCHEME IN USE (COMMUNITY CARE),CODED PROCEDURE (CLINICAL TERMINOLOGY)
CA2,CC2,02,{REFERRAL}
"""
    ds = load(write(tmp_path, files), vocab)
    assert ds.con.execute("SELECT count(*) FROM care_plans").fetchone() == (0,)
    assert "not a care and support planning conversation" in rejected(ds, "CYP202CareActivity.csv")[2]


def test_a_coded_finding_is_read_too(tmp_path: Path, vocab: Vocabulary) -> None:
    files = dict(BASE)
    files["CYP202CareActivity.csv"] = f"""
CARE ACTIVITY IDENTIFIER,CARE CONTACT IDENTIFIER,CODED PROCEDURE (CLINICAL TERMINOLOGY),FINDING SCHEME IN USE (COMMUNITY CARE),CODED FINDING (CODED CLINICAL ENTRY)
CA2,CC2,,06,{REFERRAL}
"""  # the mechanism only: the bundled lists hold no finding codes yet
    ds = load(write(tmp_path, files), vocab)
    assert ds.con.execute("SELECT plan_id, entry FROM care_plans").fetchall() == [("CP1", "referral")]
