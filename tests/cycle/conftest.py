"""Shared fixtures for the commissioning cycle: a small provider's records, written as canonical CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

# Four patients of provider RYX (NHS numbers in the 999 test range, valid check digits).
#   9990000018: arthritis since 2015, PAM level 2 in Jun 2017 (low), conversation Aug 2017, level 3 in Sep 2018.
#   9990000026: diabetes since 2016, PAM level 1 in Oct 2017 (low), conversation May 2018, level 1 in Oct 2018.
#   9990000034: hypertension recorded Nov 2017, PAM level 3 in Dec 2017 (not low under the published ruleset).
#   9990000050: no long-term condition; discharged Feb 2018.
RECORDS = {
    "patients.csv": """patient_id,date_of_birth,sex,served_from,served_to
9990000018,1950-01-01,female,2016-01-01,
9990000026,1948-05-05,male,2016-01-01,
9990000034,1960-02-02,female,2016-01-01,
9990000050,1970-03-03,male,2016-01-01,2018-02-01""",
    "conditions.csv": """patient_id,code_system,code,recorded_on
9990000018,snomed,387802007,2015-03-16
9990000026,icd10,E11,2016-01-01
9990000034,icd10,I10,2017-11-20""",
    "assessments.csv": """patient_id,assessed_on,respondent,instrument,pam_score,pam_level,gpps_q32,gpps_q33
9990000018,2017-06-01,patient,pam,,2,,
9990000026,2017-10-10,patient,pam,,1,,
9990000034,2017-12-01,patient,pam,,3,,
9990000018,2018-09-01,patient,pam,,3,,
9990000026,2018-10-01,patient,pam,,1,,""",
    "conversations.csv": """patient_id,held_on,staff_id
9990000018,2017-08-01,S1
9990000026,2018-05-01,S1""",
    "staff.csv": """staff_id,role,cares_for_cohort
S1,District nurse,true
S2,Physiotherapist,true
S3,Receptionist,false""",
    "training.csv": """staff_id,completed_on,course
S1,2017-05-01,Care and support planning""",
    "provider.csv": """provider_code,provider_name,plan_agreed_on,recording_system_live_on
RYX,Small Community Trust (synthetic),2017-09-15,2018-01-10""",
}


def write_records(folder: Path, **changes: str) -> Path:
    """The small provider's canonical folder; ``changes`` replaces whole files (``overrides_csv=...`` etc.)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = dict(RECORDS)
    for key, text in changes.items():
        files[key.replace("_csv", ".csv")] = text
    for name, text in files.items():
        (folder / name).write_text(text.strip() + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return write_records(tmp_path / "records")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "audit.sqlite"
