"""CSDS data items as real extracts name them: one logical item, its spellings in each rendering.

A CSDS extract reaches cquin in one of a few renderings of the same data set:

- ``tos``: the Technical Output Specification item names, upper case with
  spaces, as the national data lake holds them (``SERVICE REQUEST
  IDENTIFIER``, ``REFERRAL REQUEST RECEIVED DATE``, ``CODED ASSESSMENT TOOL
  TYPE (SNOMED CT)``, ``PERSON SCORE``).  Checked against NHS Digital's CSDS
  v1.5/v1.6 item names as carried by the public dbt models
  ``models/raw/commissioning/raw_csds_cyp*.sql`` of ncl-icb-analytics/dbt-ncl-analytics
  (CYP001MPI, CYP101Referral, CYP201CareContact, CYP202CareActivity,
  CYP607PrimDiag, CYP608SecDiag, CYP609CodedAssessmentReferral,
  CYP612CodedAssessmentContact, CYP004CarePlanType, CYP005CarePlanAgreement).
  v1.5 names the person's local id ``LOCAL PATIENT IDENTIFIER``; v1.6
  ``LOCAL PATIENT IDENTIFIER (EXTENDED)``: both are read.
- ``pipeline``: NHS Digital's own pipeline (DSP) attribute names
  (``ServiceRequestID``, ``ReferralRequest_ReceivedDate``, ``Contact_Date``,
  ``Discharge_Date``, ``SNOMED_ID``, ``Score``, ``AssessmentCompletion_Date``,
  ``PlanID``, ``Plan_AgreedDate``), as in the CSDS test records of NHS Digital's
  data-processing code.  The NCDR / data-lake copies commissioners hold use
  these names with ``PERSON ID`` / ``Person_ID`` and no NHS number: that is
  the ``ncdr`` rendering (pipeline names, pseudonymous person key).
- ``cquin``: the short PascalCase names earlier versions of this adapter
  documented (``LocalPatientId``, ``ReferralReceivedDate``, ``CareContactDate``).

Headers are matched ignoring case and every character that is not a letter or
digit, so ``SERVICE_REQUEST_IDENTIFIER`` and ``Service Request Identifier``
are the TOS name too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RENDERINGS = ("tos", "pipeline", "cquin")
RENDERING_LABELS = {
    "tos": "Technical Output Specification item names (e.g. SERVICE REQUEST IDENTIFIER)",
    "pipeline": "NHS Digital pipeline names (e.g. ServiceRequestID, Contact_Date, SNOMED_ID)",
    "ncdr": "NCDR / data-lake rendering (pipeline names keyed by PERSON ID, no NHS number)",
    "cquin": "cquin short names (e.g. ServiceRequestId, CareContactDate)",
}


def key(header: str) -> str:
    """A header as matched: lower case letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", header.lower())


@dataclass(frozen=True)
class Item:
    """One CSDS data item and how each rendering spells it."""

    name: str  # cquin's name for the item, used in messages
    tos: tuple[str, ...]
    pipeline: tuple[str, ...]
    cquin: tuple[str, ...]

    def spellings(self, rendering: str | None = None) -> tuple[str, ...]:
        if rendering in (None, "auto"):
            return self.tos + self.pipeline + self.cquin
        return getattr(self, "pipeline" if rendering == "ncdr" else rendering)

    def keys(self, rendering: str | None = None) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key(s) for s in self.spellings(rendering)))


def _i(name: str, tos: str | tuple[str, ...], pipeline: str | tuple[str, ...], cquin: str | tuple[str, ...]) -> Item:
    def t(x: str | tuple[str, ...]) -> tuple[str, ...]:
        return (x,) if isinstance(x, str) else x

    return Item(name, t(tos), t(pipeline), t(cquin))


LOCAL_PATIENT_ID = _i(
    "LocalPatientId", ("LOCAL PATIENT IDENTIFIER (EXTENDED)", "LOCAL PATIENT IDENTIFIER"), "LocalPatientID", "LocalPatientId"
)
PERSON_ID = _i("PersonId", "PERSON ID", "Person_ID", "PersonId")
NHS_NUMBER = _i("NHSNumber", "NHS NUMBER", "NHSNumber", "NHSNumber")
NHS_NUMBER_STATUS = _i(
    "NHSNumberStatus",
    "NHS NUMBER STATUS INDICATOR CODE",
    "NHSNumber_Status",
    ("NHSNumberStatusIndicatorCode", "NHSNumberStatus"),
)
BIRTH_DATE = _i("PersonBirthDate", "PERSON BIRTH DATE", "DateOfBirth", "PersonBirthDate")
GENDER = _i("PersonStatedGenderCode", "PERSON STATED GENDER CODE", "Gender", "PersonStatedGenderCode")
SERVICE_REQUEST = _i("ServiceRequestId", "SERVICE REQUEST IDENTIFIER", "ServiceRequestID", "ServiceRequestId")
REFERRAL_RECEIVED = _i(
    "ReferralReceivedDate", "REFERRAL REQUEST RECEIVED DATE", "ReferralRequest_ReceivedDate", "ReferralReceivedDate"
)
DISCHARGE = _i("ServiceDischargeDate", "SERVICE DISCHARGE DATE", "Discharge_Date", "ServiceDischargeDate")
CARE_CONTACT = _i("CareContactId", "CARE CONTACT IDENTIFIER", "CareContactID", "CareContactId")
CONTACT_DATE = _i("CareContactDate", "CARE CONTACT DATE", "Contact_Date", "CareContactDate")
ATTENDANCE = _i("AttendOrDNACode", "ATTENDED OR DID NOT ATTEND CODE", "AttendOrNot", "AttendOrDNACode")
CARE_ACTIVITY = _i("CareActivityId", "CARE ACTIVITY IDENTIFIER", "CareActivityID", "CareActivityId")
STAFF = _i("CareProfLocalId", "CARE PROFESSIONAL LOCAL IDENTIFIER", "CareProfessionalID_Local", "CareProfLocalId")
PROCEDURE_SCHEME = _i(
    "ProcedureSchemeInUse",
    ("PROCEDURE SCHEME IN USE (COMMUNITY CARE)", "PROCEDURE SCHEME IN USE"),
    "Procedure_Scheme",
    "ProcedureSchemeInUse",
)
PROCEDURE = _i(
    "CodedProcedure", ("CODED PROCEDURE (CLINICAL TERMINOLOGY)", "CODED PROCEDURE"), "CodedProcedure", "CodedProcedure"
)
# CYP202's coded finding (what was found at the activity, e.g. a need), as the dbt model of CYP202CareActivity
# names it: CODED FINDING (CODED CLINICAL ENTRY) with FINDING SCHEME IN USE (COMMUNITY CARE). The pipeline
# spelling was not found in a public source; the cquin short name is used for it.
FINDING_SCHEME = _i(
    "FindingSchemeInUse",
    ("FINDING SCHEME IN USE (COMMUNITY CARE)", "FINDING SCHEME IN USE"),
    "FindingSchemeInUse",
    "FindingSchemeInUse",
)
FINDING = _i("CodedFinding", ("CODED FINDING (CODED CLINICAL ENTRY)", "CODED FINDING"), "CodedFinding", "CodedFinding")
DIAGNOSIS_SCHEME = _i("DiagnosisSchemeInUse", "DIAGNOSIS SCHEME IN USE", "Diagnosis_Scheme", "DiagnosisSchemeInUse")
PRIMARY_CODE = _i("PrimDiag", ("PRIMARY DIAGNOSIS (CODED CLINICAL ENTRY)", "PRIMARY DIAGNOSIS"), "PrimaryDiagnosis", "PrimDiag")
PRIMARY_DATE = _i("DiagnosisDate", "DIAGNOSIS DATE", "PrimaryDiagnosis_Date", "DiagnosisDate")
SECONDARY_CODE = _i(
    "SecDiag", ("SECONDARY DIAGNOSIS (CODED CLINICAL ENTRY)", "SECONDARY DIAGNOSIS"), "SecondaryDiagnosis", "SecDiag"
)
SECONDARY_DATE = _i("DiagnosisDate", "DIAGNOSIS DATE", "SecondaryDiagnosis_Date", "DiagnosisDate")
TOOL = _i("CodedAssessmentToolType", "CODED ASSESSMENT TOOL TYPE (SNOMED CT)", "SNOMED_ID", "CodedAssessmentToolType")
SCORE = _i("PersonScore", "PERSON SCORE", "Score", "PersonScore")
COMPLETION_DATE = _i(
    "AssessmentToolCompletionDate", "ASSESSMENT TOOL COMPLETION DATE", "AssessmentCompletion_Date", "AssessmentToolCompletionDate"
)
CARE_PLAN = _i("CarePlanId", "CARE PLAN IDENTIFIER", "PlanID", "CarePlanId")
CARE_PLAN_TYPE = _i("CarePlanType", ("CARE PLAN TYPE (COMMUNITY CARE)", "CARE PLAN TYPE"), "Plan_Type", "CarePlanType")
CARE_PLAN_CREATED = _i("CarePlanCreationDate", "CARE PLAN CREATION DATE", "Plan_CreatedDate", "CarePlanCreationDate")
CARE_PLAN_AGREED = _i(
    "CarePlanAgreedDate", ("CARE PLAN AGREED DATE", "CARE PLAN CONTENT AGREED DATE"), "Plan_AgreedDate", "CarePlanAgreedDate"
)
CARE_PLAN_AGREED_BY = _i(
    "CarePlanAgreedBy", ("CARE PLAN AGREED BY", "CARE PLAN CONTENT AGREED BY"), "Plan_AgreedBy", "CarePlanAgreedBy"
)
