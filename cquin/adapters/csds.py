"""The CSDS adapter: a community provider's Community Services Data Set extract, one CSV per table.

Community providers submit the Community Services Data Set (CSDS v1.5, in
force 2017-19, and v1.6) to NHS Digital every month, and commissioners hold
the same tables in the national data lake (NCDR).  The records this indicator
needs are all there: who the person is (CYP001), when they were under the
provider's care (CYP101 referrals), what they have (CYP607/CYP608 diagnoses,
by referral), their PAM assessments (CYP609 by referral, CYP612 by care
activity), what was done at each contact (CYP201 contacts, CYP202 care
activities) and their agreed care plans (CYP004 care plan type, CYP005 care
plan agreement).  This adapter reads such an extract, a folder of CSV files,
into the canonical tables ``patients``, ``conditions``, ``assessments``,
``conversations`` and ``care_plans``.

Files
-----
One CSV file per CSDS table, found by its table id at the start of the file
name, in any case: ``CYP001MPI.csv``, ``cyp001mpi_2018.csv`` and ``CYP001.csv``
are all the CYP001 file.  Only CYP001 is required (``detect`` looks for it); a
missing table is noted with the load.  Two files for one table are an error
(combine the months of a submission first).  Other CSDS tables (CYP000Header,
CYP002GP, ...) are noted as not used.  Files may be UTF-8, with or without a
byte-order mark, or Windows-1252.

Renderings (column names)
-------------------------
Real extracts name the data items in one of a few renderings, listed with
every spelling in :mod:`cquin.adapters.csds_items` (checked against the
published CSDS item names): the Technical Output Specification names
(``SERVICE REQUEST IDENTIFIER``), NHS Digital's pipeline names
(``ServiceRequestID``, ``SNOMED_ID``), the NCDR / data-lake copies keyed by
``PERSON ID`` with no NHS number, and cquin's short names
(``ServiceRequestId``).  The rendering of each file is detected from its
header and noted; option ``rendering`` (tos, pipeline, ncdr, cquin) insists
on one.  Other columns are ignored; a required item that is missing raises an
error naming the file, the item and its spellings.

| table | items read | canonical use |
|---|---|---|
| CYP001 MPI | local patient id; NHS number (or PERSON ID); NHS number status; birth date; stated gender | one person: `patient_id`, `date_of_birth`, `sex` (1 male, 2 female, 9 indeterminate, X or 0 unknown) |
| CYP101 Referral | service request id; local patient id (or PERSON ID); referral received date; service discharge date | one `patients` row per referral: `served_from`, `served_to` |
| CYP201 Care contact | care contact id; service request id; contact date; attended or did not attend code | the date and attendance of the contact's activities |
| CYP202 Care activity | care activity id; care contact id; coded procedure; care professional local id | a `conversations` row when the procedure is a conversation code, held on the contact date, `staff_id` the care professional |
| CYP202 Care activity | CODED PROCEDURE (CLINICAL TERMINOLOGY) with PROCEDURE SCHEME IN USE (COMMUNITY CARE); CODED FINDING (CODED CLINICAL ENTRY) with FINDING SCHEME IN USE (COMMUNITY CARE) | a `care_plans` row when the SNOMED CT code is in the ruleset's ``care_planning`` code lists: its (entry, category), attached to the plan as below |
| CYP607 / CYP608 Diagnosis | service request id (cquin rendering: local patient id); diagnosis scheme; code; diagnosis date | `conditions`: scheme 02 `icd10`, 06 `snomed` |
| CYP609 Coded assessment (referral) | service request id; assessment tool type (SNOMED CT); person score; completion date | `assessments` (PAM) |
| CYP612 Coded assessment (contact) | care activity id (cquin rendering: care contact id); tool type; person score | `assessments` (PAM), dated by the contact |
| CYP004 Care plan type / CYP005 Care plan agreement | care plan id; local patient id (or PERSON ID); care plan type; agreed date | an agreed care plan is a `conversations` row held on the agreed date (see the ruleset's ``conversation_codes.care_plans``); its CARE PLAN IDENTIFIER and CARE PLAN AGREED DATE are the `plan_id` and `agreed_on` of the care activities attached to it |

Care plans (``care_plans``)
---------------------------
CSDS records a plan's existence, type and agreement (CYP004 CARE PLAN
IDENTIFIER, CARE PLAN TYPE (COMMUNITY CARE), CARE PLAN CREATION DATE; CYP005
CARE PLAN AGREED DATE, CARE PLAN AGREED BY), but not its content: no table
holds a plan's needs or goals, and no data item links a care activity (CYP202)
to a care plan.  What a plan led to is what was done at the contacts:

- A CYP202 care activity whose CODED PROCEDURE (CLINICAL TERMINOLOGY), or
  CODED FINDING (CODED CLINICAL ENTRY), is a SNOMED CT code (scheme 06 or not
  given) of the ruleset's ``care_planning`` code lists is one ``care_plans``
  row with that code's entry kind and category.  It is attached to the
  patient's latest plan agreed on or before the care contact date (``plan_id``
  CARE PLAN IDENTIFIER, ``agreed_on`` CARE PLAN AGREED DATE; of two agreed on
  the same day, the greater identifier); ``entry_on`` is the contact date when
  it is later than the agreement.  Only attended contacts (5 or 6) count.  An
  activity with such a code and no plan agreed on or before its contact is
  rejected as ignored, with that reason, in its own file and line.
- ``shared_with_patient`` is always empty: CARE PLAN AGREED BY (CYP005) says
  who agreed the plan's content, not whether the patient was given the
  document, and CSDS has no other item for it.
- CYP105 Onward referral (ONWARD REFERRAL DATE, ONWARD REFERRAL REASON,
  receiving organisation) is not read: it carries no SNOMED CT code and no
  service type that names a care planning category.
- A plan's conversation elements have no CSDS item; they are expressible
  only as care activities with codes in the elements' code lists.

Conventions (cquin's choices where CSDS leaves room)
----------------------------------------------------
- Patients are keyed by NHS number when CYP001 carries one; a record without
  one, or one failing the Modulus 11 check, is rejected with every record
  that leads only to it.  NHS NUMBER STATUS INDICATOR CODE is counted and
  reported (numbers not verified, status other than 01, are used as given
  and counted in a note).  A pseudonymised extract (PERSON ID, no NHS number
  column) is keyed by PERSON ID, and every output says the identifiers are
  pseudonymous (option ``patient_key`` forces either).
- Each referral is one episode of care (one ``patients`` row).  A person with
  no referral is rejected: the time under the provider's care is unknown.
- Diagnosis scheme codes: ``02`` ICD-10 -> ``icd10``, ``06`` SNOMED CT ->
  ``snomed`` (leading zero optional); other schemes are rejected as ignored.
- PAM: tool type 962851000000103 (PAM level) and 925431000000109 (PAM score),
  as in NHS Digital's CSDS pipeline and the UK Renal Registry.  A level and a
  score for one patient on one date make one row; the respondent is always
  ``patient`` (CSDS has no carer flag).  Other tools are rejected as ignored.
- A care activity is a conversation when its coded procedure is in any of the
  ruleset's conversation code lists; only attended contacts (5 or 6) count.
- Dates: ISO (``YYYY-MM-DD``) with or without a time part
  (``2018-03-01T10:30:00``, ``2018-03-01 00:00:00``); with option
  ``dates=uk`` also ``DD/MM/YYYY`` with or without a time
  (``12/06/1941 00:00:00``).  A date that is not a real date rejects the
  record it is in, in its own file and line (a bad CYP201 contact date is the
  CYP201 record's fault, and its activities and assessments say so).
- A repeated id with the same details is counted once; with different details
  all its records are rejected as conflicting.

Every record of every file read is accepted (used, whether or not it makes a
row of its own) or rejected with a reason; ``_line`` is the physical line in
the file where the record starts, ``_ref`` the CSDS id of the record.

Long because the CSDS has many tables (CYP001 to CYP202) in two versions, each mapped by its published data items (their definitions are in csds_items.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cquin.adapters import csds_items as it
from cquin.adapters.base import Adapter, AdapterOption
from cquin.adapters.csds_items import RENDERING_LABELS, Item
from cquin.adapters.fhir_map import PAM_LEVEL_CODE, PAM_SCORE_CODE
from cquin.dataset import DatasetBuilder
from cquin.dataset.checks import nhs_number_problem
from cquin.dataset.checks import quote_value as _q
from cquin.dataset.csvread import sniff_encoding
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl

# CSDS codes the assessment tool with the same SNOMED CT concepts the FHIR Observations carry: one definition.
PAM_LEVEL_TOOL, PAM_SCORE_TOOL = PAM_LEVEL_CODE, PAM_SCORE_CODE
ATTENDED = frozenset({"5", "6"})  # attended on time; arrived late but seen
DIAGNOSIS_SCHEMES = {"2": "icd10", "6": "snomed"}
MAX_CELL = 4_000_000  # characters in one cell; a longer one stops the load with the file and line named
SEX_CODES = {"1": "male", "2": "female", "9": "indeterminate", "x": "unknown", "0": "unknown"}
# NHS Data Dictionary, NHS NUMBER STATUS INDICATOR CODE (the same codes as UK Core's verification status).
NHS_NUMBER_STATUS = {
    "01": "number present and verified",
    "02": "number present but not traced",
    "03": "trace required",
    "04": "trace attempted, no match or multiple match found",
    "05": "trace needs to be resolved (NHS number or patient detail conflict)",
    "06": "trace in progress",
    "07": "number not present and trace not required",
    "08": "trace postponed (baby under six weeks old)",
}
VERIFIED = "01"


@dataclass(frozen=True)
class CsdsTable:
    """One CSDS table as this adapter reads it: the items it needs (role -> item)."""

    id: str  # e.g. "CYP001"
    name: str  # e.g. "CYP001MPI"
    items: Mapping[str, Item]
    required: tuple[str, ...]
    one_of: tuple[tuple[str, ...], ...] = ()  # at least one item of each group
    feeds: str | None = None  # the canonical table its records end up in


MPI = CsdsTable(
    "CYP001",
    "CYP001MPI",
    {
        "lpi": it.LOCAL_PATIENT_ID,
        "person": it.PERSON_ID,
        "nhs": it.NHS_NUMBER,
        "status": it.NHS_NUMBER_STATUS,
        "dob": it.BIRTH_DATE,
        "sex": it.GENDER,
    },
    ("dob", "sex"),
    (("lpi", "person"), ("nhs", "person")),
    "patients",
)
REFERRAL = CsdsTable(
    "CYP101",
    "CYP101Referral",
    {
        "sr": it.SERVICE_REQUEST,
        "lpi": it.LOCAL_PATIENT_ID,
        "person": it.PERSON_ID,
        "from": it.REFERRAL_RECEIVED,
        "to": it.DISCHARGE,
    },
    ("sr", "from", "to"),
    (("lpi", "person"),),
    "patients",
)
CONTACT = CsdsTable(
    "CYP201",
    "CYP201CareContact",
    {"cc": it.CARE_CONTACT, "sr": it.SERVICE_REQUEST, "date": it.CONTACT_DATE, "attend": it.ATTENDANCE},
    ("cc", "sr", "date", "attend"),
)
ACTIVITY = CsdsTable(
    "CYP202",
    "CYP202CareActivity",
    {
        "ca": it.CARE_ACTIVITY,
        "cc": it.CARE_CONTACT,
        "code": it.PROCEDURE,
        "scheme": it.PROCEDURE_SCHEME,
        "finding": it.FINDING,
        "finding_scheme": it.FINDING_SCHEME,
        "staff": it.STAFF,
    },
    ("ca", "cc", "code"),
    feeds="conversations",
)
PRIMARY_DIAGNOSIS = CsdsTable(
    "CYP607",
    "CYP607PrimDiag",
    {
        "sr": it.SERVICE_REQUEST,
        "lpi": it.LOCAL_PATIENT_ID,
        "scheme": it.DIAGNOSIS_SCHEME,
        "code": it.PRIMARY_CODE,
        "date": it.PRIMARY_DATE,
    },
    ("scheme", "code", "date"),
    (("sr", "lpi"),),
    "conditions",
)
SECONDARY_DIAGNOSIS = CsdsTable(
    "CYP608",
    "CYP608SecDiag",
    {
        "sr": it.SERVICE_REQUEST,
        "lpi": it.LOCAL_PATIENT_ID,
        "scheme": it.DIAGNOSIS_SCHEME,
        "code": it.SECONDARY_CODE,
        "date": it.SECONDARY_DATE,
    },
    ("scheme", "code", "date"),
    (("sr", "lpi"),),
    "conditions",
)
REFERRAL_ASSESSMENT = CsdsTable(
    "CYP609",
    "CYP609CodedAssessmentReferral",
    {"sr": it.SERVICE_REQUEST, "tool": it.TOOL, "score": it.SCORE, "date": it.COMPLETION_DATE},
    ("sr", "tool", "score", "date"),
    feeds="assessments",
)
CONTACT_ASSESSMENT = CsdsTable(
    "CYP612",
    "CYP612CodedAssessmentContact",
    {"ca": it.CARE_ACTIVITY, "cc": it.CARE_CONTACT, "tool": it.TOOL, "score": it.SCORE, "date": it.COMPLETION_DATE},
    ("tool", "score"),
    (("ca", "cc"),),
    "assessments",
)
CARE_PLAN = CsdsTable(
    "CYP004",
    "CYP004CarePlanType",
    {
        "plan": it.CARE_PLAN,
        "lpi": it.LOCAL_PATIENT_ID,
        "person": it.PERSON_ID,
        "type": it.CARE_PLAN_TYPE,
        "created": it.CARE_PLAN_CREATED,
    },
    ("plan",),
    (("lpi", "person"),),
    "conversations",
)
CARE_PLAN_AGREEMENT = CsdsTable(
    "CYP005",
    "CYP005CarePlanAgreement",
    {"plan": it.CARE_PLAN, "agreed": it.CARE_PLAN_AGREED, "by": it.CARE_PLAN_AGREED_BY},
    ("plan", "agreed"),
    feeds="conversations",
)
TABLES = (
    MPI,
    REFERRAL,
    CONTACT,
    ACTIVITY,
    PRIMARY_DIAGNOSIS,
    SECONDARY_DIAGNOSIS,
    REFERRAL_ASSESSMENT,
    CONTACT_ASSESSMENT,
    CARE_PLAN,
    CARE_PLAN_AGREEMENT,
)


@dataclass
class Record:
    """One record of a CSDS file: its place in the file, its (trimmed, non-empty) values by role, its headers."""

    file: str
    line: int
    values: dict[str, str]
    headers: Mapping[str, str]  # role -> the column name as the file spells it
    ref: str | None = None

    def get(self, role: str) -> str | None:
        return self.values.get(role)

    def column(self, role: str) -> str:
        return self.headers.get(role, role)


@dataclass(frozen=True)
class Failed:
    """Why a linking record (person, referral, contact) could not be used; records that lead to it fail too."""

    ref: str
    file: str
    reason: str

    def downstream(self) -> str:
        return f"cannot be linked to a patient: {self.ref} in {self.file} was rejected ({self.reason})"


@dataclass(frozen=True)
class Person:
    patient_id: str  # NHS number as written (the builder normalises), or the pseudonymous PERSON ID
    key: str  # for matching
    date_of_birth: str | None
    sex: str | None


@dataclass(frozen=True)
class Contact:
    person: Person
    date: str | None
    attend: str | None
    ref: str
    file: str


@dataclass(frozen=True)
class AgreedPlan:
    """One agreement of a care plan (CYP004 + CYP005): whose, which plan, and when it was agreed (ISO date)."""

    person: Person
    plan_id: str
    agreed_on: str


@dataclass
class PamPart:
    record: Record
    person: Person
    date: str | None
    kind: str  # "score" or "level"
    value: str | None


class CsdsAdapter(Adapter):
    name = "csds"
    description = (
        "A Community Services Data Set (CSDS v1.5/1.6) extract: a folder of CSV files named by table (CYP001MPI.csv "
        "required), in TOS, NHS Digital pipeline, NCDR or cquin column names"
    )
    tables = ("patients", "conditions", "assessments", "conversations", "care_plans")
    options = (
        AdapterOption(
            "dates",
            "Date format in the files: iso (YYYY-MM-DD, as CSDS) or uk (DD/MM/YYYY, ISO also accepted); "
            "a time after the date is allowed in either",
            "iso",
            ("iso", "uk"),
        ),
        AdapterOption(
            "rendering",
            "Column names: auto (detected from each header), tos (Technical Output Specification item names), "
            "pipeline (NHS Digital pipeline names), ncdr (pipeline names keyed by PERSON ID), cquin (short names)",
            "auto",
            ("auto", "tos", "pipeline", "ncdr", "cquin"),
        ),
        AdapterOption(
            "patient_key",
            "What identifies a patient: auto (the NHS number when CYP001 has one, else PERSON ID), nhs_number, "
            "or person_id (a pseudonymised extract)",
            "auto",
            ("auto", "nhs_number", "person_id"),
        ),
    )

    def detect(self, path: Path) -> bool:
        return path.is_dir() and any(_table_id(p.name) == MPI.id for p in path.iterdir() if p.is_file())

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        if not path.is_dir():
            raise DataError(f"{path}: the csds adapter reads a folder of CSDS CSV files, and this is not a folder")
        found = _find_files(path)
        if MPI.id not in found:
            raise DataError(f"{path}: no {MPI.name} file (CYP001MPI.csv, the person table, is required)")
        _Loader(builder, found, options).run()


def _table_id(file_name: str) -> str | None:
    """The CSDS table id a file name starts with ('CYP001' for 'cyp001mpi_2018.csv'), if it is a CSV file."""
    m = re.match(r"(cyp\d{3})(?!\d)", file_name.lower())
    return m.group(1).upper() if m and file_name.lower().endswith(".csv") else None


def _find_files(folder: Path) -> dict[str, Path]:
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        tid = _table_id(p.name)
        if tid and p.is_file():
            found.setdefault(tid, []).append(p)
    for tid, paths in found.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise DataError(
                f"{folder}: several files for CSDS table {tid} ({names}); supply one file per table (combine the months first)"
            )
    return {tid: paths[0] for tid, paths in found.items()}


@dataclass
class CsdsFile:
    """One CSDS file as read: its records, the rendering its header is in, and which items it has."""

    records: list[Record]
    rendering: str
    roles: set[str]


def _match_header(header: list[str], spec: CsdsTable, rendering: str) -> tuple[dict[str, int], str]:
    """role -> column index for the items present, and the rendering whose spellings matched best."""
    keys = [it.key(h) for h in header]
    columns: dict[str, int] = {}
    for role, item in spec.items.items():
        for k in item.keys(rendering):
            if k in keys:
                columns[role] = keys.index(k)
                break
    score = {r: 0 for r in it.RENDERINGS}
    for role, index in columns.items():
        for r in it.RENDERINGS:
            if keys[index] in spec.items[role].keys(r):
                score[r] += 1
    best = rendering if rendering != "auto" else max(it.RENDERINGS, key=lambda r: (score[r], r == "tos"))
    return columns, best


def read_csds_csv(path: Path, spec: CsdsTable, builder: DatasetBuilder, rendering: str = "auto") -> CsdsFile:
    """Every record of one CSDS file; records with the wrong number of fields are rejected here."""
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty (expected a header row)")
    encoding = sniff_encoding(path)
    records = []
    # Cells as long as the canonical reader takes (Python's default stops at 131,072 characters).
    limit = csv.field_size_limit(MAX_CELL)
    with path.open("r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise DataError(f"{path.name}: the file is empty (expected a header row)")
            keys = [it.key(h) for h in header]
            dupes = sorted({h.strip() for h, k in zip(header, keys, strict=True) if k and keys.count(k) > 1})
            if dupes:
                raise DataError(f"{path.name}: the column {dupes[0]!r} appears twice in the header")
            columns, found_rendering = _match_header(header, spec, rendering)
            for group in spec.one_of:
                if not any(role in columns for role in group):
                    raise DataError(_missing(path.name, spec, list(group), rendering))
            for role in spec.required:
                if role not in columns:
                    raise DataError(_missing(path.name, spec, [role], rendering))
            headers = {role: header[i].strip() for role, i in columns.items()}
            previous = reader.line_num
            for fields in reader:
                line, previous = previous + 1, reader.line_num
                if not fields:
                    continue  # a blank line is not a record
                if any("\x00" in v for v in fields):
                    builder.reject(
                        path.name,
                        line,
                        None,
                        None,
                        "the record contains a NUL byte (character 0), which is never part of text; is the file damaged?",
                    )
                    continue
                if len(fields) != len(keys):
                    builder.reject(
                        path.name,
                        line,
                        None,
                        None,
                        f"the record has {len(fields)} fields but the header has {len(keys)}; it cannot be read",
                    )
                    continue
                values = {role: v for role, i in columns.items() if (v := fields[i].strip())}
                records.append(Record(path.name, line, values, headers))
        except csv.Error as exc:
            raise DataError(f"{path.name}: line {reader.line_num} cannot be read as CSV ({exc})") from None
        finally:
            csv.field_size_limit(limit)
    return CsdsFile(records, found_rendering, set(columns))


def _missing(file: str, spec: CsdsTable, roles: list[str], rendering: str) -> str:
    items = [spec.items[r] for r in roles]
    if len(items) == 1:
        item = items[0]
        spelled = " / ".join(dict.fromkeys(item.spellings(rendering)))
        return f"{file}: the required CSDS column {item.name} is missing (spelled {spelled}; {spec.name} needs it)"
    others = " or ".join(i.name for i in items[1:])
    spelled = "; ".join(" / ".join(dict.fromkeys(i.spellings(rendering))) for i in items)
    return (
        f"{file}: the required CSDS column {items[0].name} is missing, and so is {others} ({spec.name} needs one of: {spelled})"
    )


_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
_UK = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})(?: \d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?")


def parse_date(text: str | None, style: str) -> tuple[str | None, str | None]:
    """(ISO date, None) for a CSDS date with or without a time part, or (None, why it is not a date)."""
    if text is None:
        return None, None
    m = _ISO.fullmatch(text)
    y = mo = d = None
    if m:
        y, mo, d = (int(g) for g in m.groups())
    elif style == "uk" and (m := _UK.fullmatch(text)):
        d, mo, y = (int(g) for g in m.groups())
    if y is None or mo is None or d is None:
        if style == "uk":
            return None, f"{_q(text)} is not a date (expected DD/MM/YYYY or YYYY-MM-DD); a time after the date is allowed"
        return None, (
            f"{_q(text)} is not a date (expected YYYY-MM-DD); a time after the date is allowed, "
            "and --option dates=uk reads DD/MM/YYYY"
        )
    try:
        return dt.date(y, mo, d).isoformat(), None
    except ValueError:
        return None, f"{_q(text)} is not a real date"


def _number(text: str | None) -> str | None:
    """A score in a comparable form ('48.30' and '48.3' are the same score)."""
    if text is None:
        return None
    try:
        return str(Decimal(text).normalize())
    except InvalidOperation:
        return text


@dataclass
class _Loader:
    """One load: reads the files in link order and stages rows, rejecting what cannot be used."""

    b: DatasetBuilder
    files: Mapping[str, Path]
    options: Mapping[str, str]
    persons: dict[str, Person | Failed] = field(default_factory=dict)  # person link key -> person
    referrals: dict[str, Person | Failed] = field(default_factory=dict)
    contacts: dict[str, Contact | Failed] = field(default_factory=dict)
    activities: dict[str, Contact | Failed] = field(default_factory=dict)  # care activity id -> its contact
    person_records: dict[str, Record] = field(default_factory=dict)  # link key -> the CYP001 record of a usable person
    renderings: dict[str, str] = field(default_factory=dict)
    pseudonymous: bool = False
    person_link: str = "lpi"  # which item links a person's records to CYP001: lpi or person

    @property
    def date_style(self) -> str:
        return self.options.get("dates", "iso")

    @property
    def rendering(self) -> str:
        return self.options.get("rendering", "auto")

    def run(self) -> None:
        known = {t.id for t in TABLES}
        for tid, path in sorted(self.files.items()):
            if tid not in known:
                self.b.note(f"{path.name}: CSDS table {tid} is not used by cquin, so it was not read")
        read = {t.id: self._read(t) for t in TABLES}
        self._persons(read[MPI.id])
        self._referrals(read[REFERRAL.id])
        self._contacts(read[CONTACT.id].records)
        self._activities(read[ACTIVITY.id].records)
        self._diagnoses(read[PRIMARY_DIAGNOSIS.id])
        self._diagnoses(read[SECONDARY_DIAGNOSIS.id])
        self._assessments(read[CONTACT_ASSESSMENT.id], read[REFERRAL_ASSESSMENT.id].records)
        agreed = self._care_plans(read[CARE_PLAN.id], read[CARE_PLAN_AGREEMENT.id].records)
        entries = self._plan_entries(read[ACTIVITY.id].records, agreed)
        self._conversations(read[ACTIVITY.id].records, entries)
        self._note_renderings()

    def _read(self, spec: CsdsTable) -> CsdsFile:
        path = self.files.get(spec.id)
        if path is None:
            if spec is not MPI:
                self.b.note(f"{spec.name}.csv: not supplied, so there are no records from CSDS table {spec.id}")
            return CsdsFile([], "", set())
        self.b.source(path.name, path, spec.feeds)
        f = read_csds_csv(path, spec, self.b, self.rendering)
        self.renderings[path.name] = f.rendering
        return f

    def _note_renderings(self) -> None:
        kinds = Counter(self.renderings.values())
        if not kinds:
            return
        if self.pseudonymous and set(kinds) <= {"pipeline"}:
            kinds = Counter({"ncdr": sum(kinds.values())})
        if len(kinds) == 1:
            (kind,) = kinds
            self.b.note(f"CSDS: column names read as {RENDERING_LABELS[kind]} in every file")
        else:
            each = "; ".join(f"{name}: {RENDERING_LABELS[r]}" for name, r in sorted(self.renderings.items()))
            self.b.note(f"CSDS: files use different renderings ({each})")

    # ------------------------------------------------------------- helpers

    def date(self, r: Record, role: str) -> tuple[str | None, bool]:
        """The record's date in ``role`` as ISO text; rejects the record (returns ok False) when it is not a date."""
        value, problem = parse_date(r.get(role), self.date_style)
        if problem is None:
            return value, True
        column = r.column(role)
        self.b.reject(r.file, r.line, column, r.get(role), f"{column} {problem}", r.ref)
        return None, False

    def _unique(self, records: Iterable[Record], role: str, label: str) -> dict[str, Record | Failed]:
        """Index records by their id: a repeat with the same details counts once; differing repeats all fail."""
        groups: dict[str, list[Record]] = {}
        for r in records:
            rid = r.get(role)
            r.ref = f"{label}={rid}" if rid else None
            if rid is None:
                column = r.column(role)
                self.b.reject(r.file, r.line, column, None, f"{column} is empty: the record cannot be linked")
                continue
            groups.setdefault(rid, []).append(r)
        out: dict[str, Record | Failed] = {}
        for rid, group in groups.items():
            if all(r.values == group[0].values for r in group):
                out[rid] = group[0]
                for r in group[1:]:
                    self.b.reject(
                        r.file, r.line, None, None, f"exact duplicate of {r.file} line {group[0].line} (counted once)", r.ref
                    )
                continue
            lines = ", ".join(str(r.line) for r in group)
            column = group[0].column(role)
            reason = f"conflicting records for {column} {rid} (lines {lines}): they disagree, so none is used"
            for r in group:
                self.b.reject(r.file, r.line, column, rid, reason, r.ref)
            out[rid] = Failed(f"{label}={rid}", group[0].file, reason)
        return out

    def _link(self, index: Mapping[str, object], r: Record, role: str, table: CsdsTable, label: str) -> object:
        """The person/referral/contact ``r`` links to, or (after rejecting ``r``) a :class:`Failed` for records that lead to ``r``."""
        rid = r.get(role)
        column = r.column(role)
        if rid is None:
            reason = f"{column} is empty: the record cannot be linked to a {table.name} record"
            self.b.reject(r.file, r.line, column, None, reason, r.ref)
            return Failed(r.ref or f"{r.file} line {r.line}", r.file, reason)
        found = index.get(rid)
        if found is None:
            where = table.name if table.id in self.files else f"{table.name} (not supplied)"
            reason = f"unknown {label} {_q(rid)}: not in {where}"
            self.b.reject(r.file, r.line, column, rid, reason, r.ref)
            return Failed(r.ref or rid, r.file, reason)
        if isinstance(found, Failed):
            self.b.reject(r.file, r.line, column, rid, found.downstream(), r.ref)
        return found

    def _person_role(self, f: CsdsFile) -> str:
        """Which item links ``f``'s records to their person: the local patient id, else PERSON ID."""
        if self.person_link in f.roles:
            return self.person_link
        return "person" if "person" in f.roles else "lpi"

    # ------------------------------------------------------------- linking records

    def _persons(self, f: CsdsFile) -> None:
        wanted = self.options.get("patient_key", "auto")
        has_nhs, has_person = "nhs" in f.roles, "person" in f.roles
        if wanted == "person_id" or (wanted == "auto" and not has_nhs):
            if not has_person:
                raise DataError(f"{self.files[MPI.id].name}: patient_key=person_id needs a PERSON ID column in CYP001")
            self.pseudonymous = True
            header = next((r.column("person") for r in f.records), "PERSON ID")
            self.b.use_pseudonymous_ids(
                f"patients are keyed by the pseudonymous CSDS {header} from {self.files[MPI.id].name}, not by NHS number: "
                "identifiers in this run are pseudonymous"
            )
        elif not has_nhs:
            raise DataError(_missing(self.files[MPI.id].name, MPI, ["nhs"], self.rendering))
        self.person_link = "lpi" if "lpi" in f.roles else "person"
        link_label = it.LOCAL_PATIENT_ID.name if self.person_link == "lpi" else it.PERSON_ID.name
        statuses: Counter[str] = Counter()
        for pid, r in self._unique(f.records, self.person_link, link_label).items():
            if isinstance(r, Failed):
                self.persons[pid] = r
                continue
            problem = self._person_problem(r)
            dob, ok = (None, False) if problem else self.date(r, "dob")
            if problem is not None:
                role, reason = problem
                self.b.reject(r.file, r.line, r.column(role), r.get(role), reason, r.ref)
                self.persons[pid] = Failed(r.ref or pid, r.file, reason)
                continue
            if not ok:
                self.persons[pid] = Failed(r.ref or pid, r.file, f"{r.column('dob')} is not a date")
                continue
            sex_code = r.get("sex")
            sex = None if sex_code is None else SEX_CODES[sex_code.lower()]
            if self.pseudonymous:
                ident = r.get("person") or ""
                key = ident
            else:
                ident = r.get("nhs") or ""
                key = re.sub(r"[ -]", "", ident)
                statuses[(r.get("status") or "").zfill(2) if r.get("status") else "(not recorded)"] += 1
            self.persons[pid] = Person(ident, key, dob, sex)
            self.person_records[pid] = r
        if statuses:
            self._note_statuses(statuses)

    def _note_statuses(self, statuses: Counter[str]) -> None:
        shown = "; ".join(
            f"{code} {NHS_NUMBER_STATUS.get(code, 'not a status code')}: {n:,}" for code, n in sorted(statuses.items())
        )
        unverified = sum(n for code, n in statuses.items() if code != VERIFIED)
        self.b.note(
            f"{self.files[MPI.id].name}: NHS number status — {shown}. "
            f"{unverified:,} of {sum(statuses.values()):,} NHS numbers are not recorded as verified (status 01); "
            "they are used as given"
        )

    def _person_problem(self, r: Record) -> tuple[str, str] | None:
        """(role, reason) when a CYP001 record cannot make a patient, else None."""
        if self.pseudonymous:
            if r.get("person") is None:
                column = r.column("person")
                return "person", f"no {column}: this pseudonymised extract keys patients by {column}, and it is empty"
        else:
            number = r.get("nhs")
            if number is None:
                return "nhs", f"no NHS number: cquin identifies patients by NHS number, and {r.column('nhs')} is empty"
            if (problem := nhs_number_problem(number)) is not None:
                return "nhs", problem
        sex_code = r.get("sex")
        if sex_code is not None and sex_code.lower() not in SEX_CODES:
            column = r.column("sex")
            return "sex", f"{column} {_q(sex_code)} is not a CSDS code (1 male, 2 female, 9 indeterminate, X or 0 not known)"
        return None

    def _referrals(self, f: CsdsFile) -> None:
        referred: set[str] = set()
        rows = []
        role = self._person_role(f)
        label = it.LOCAL_PATIENT_ID.name if role == "lpi" else it.PERSON_ID.name
        for sid, r in self._unique(f.records, "sr", it.SERVICE_REQUEST.name).items():
            if isinstance(r, Failed):
                self.referrals[sid] = r
                continue
            person = self._link(self.persons, r, role, MPI, label)
            if not isinstance(person, Person):
                self.referrals[sid] = person  # type: ignore[assignment]
                continue
            served_from, ok_from = self.date(r, "from")
            served_to, ok_to = self.date(r, "to") if ok_from else (None, False)
            if not (ok_from and ok_to):
                self.referrals[sid] = Failed(r.ref or sid, r.file, "its dates are not dates")
                continue
            referred.add(r.get(role) or "")
            self.referrals[sid] = person
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": person.patient_id,
                    "date_of_birth": person.date_of_birth,
                    "sex": person.sex,
                    "served_from": served_from,
                    "served_to": served_to,
                }
            )
        self.b.add_rows("patients", rows)
        for pid, r in self.person_records.items():
            if pid in referred:
                self.b.accept_record(r.file, r.line)  # its details are on each referral's patients row
            else:
                self.b.reject(
                    r.file,
                    r.line,
                    r.column(self.person_link),
                    pid,
                    "no referral: time under the provider's care is unknown",
                    r.ref,
                )

    def _contacts(self, records: list[Record]) -> None:
        for cid, r in self._unique(records, "cc", it.CARE_CONTACT.name).items():
            if isinstance(r, Failed):
                self.contacts[cid] = r
                continue
            person = self._link(self.referrals, r, "sr", REFERRAL, it.SERVICE_REQUEST.name)
            if not isinstance(person, Person):
                self.contacts[cid] = person  # type: ignore[assignment]
                continue
            # A bad contact date is the contact's own fault, charged to its own line (issue 12 item 5).
            when, ok = self.date(r, "date")
            if not ok:
                self.contacts[cid] = Failed(r.ref or cid, r.file, f"{r.column('date')} is not a date")
                continue
            self.contacts[cid] = Contact(person, when, r.get("attend"), r.ref or cid, r.file)
            self.b.accept_record(r.file, r.line)

    def _activities(self, records: list[Record]) -> None:
        """Index care activities by id (CYP612 assessments are recorded against them)."""
        for r in records:
            aid = r.get("ca")
            if aid is not None and aid not in self.activities:
                contact = self.contacts.get(r.get("cc") or "")
                if contact is None:
                    why = f"unknown {it.CARE_CONTACT.name} {_q(r.get('cc'))}: not in {CONTACT.name}"
                    contact = Failed(f"{it.CARE_ACTIVITY.name}={aid}", r.file, why)
                elif isinstance(contact, Failed):
                    contact = Failed(f"{it.CARE_ACTIVITY.name}={aid}", r.file, contact.downstream())
                self.activities[aid] = contact

    # ------------------------------------------------------------- rows

    def _diagnoses(self, f: CsdsFile) -> None:
        rows = []
        by_referral = "sr" in f.roles
        for r in f.records:
            if by_referral:
                r.ref = f"{it.SERVICE_REQUEST.name}={r.get('sr')}"
            else:
                r.ref = f"{it.LOCAL_PATIENT_ID.name}={r.get('lpi')}"
            scheme = r.get("scheme")
            system = DIAGNOSIS_SCHEMES.get((scheme or "").lstrip("0"))
            if system is None:
                self.b.reject(
                    r.file,
                    r.line,
                    r.column("scheme"),
                    scheme,
                    f"ignored: diagnosis scheme {_q(scheme)} is not ICD-10 (02) or SNOMED CT (06), the schemes of cquin's code lists",
                    r.ref,
                )
                continue
            if by_referral:
                person = self._link(self.referrals, r, "sr", REFERRAL, it.SERVICE_REQUEST.name)
            else:
                person = self._link(self.persons, r, "lpi", MPI, it.LOCAL_PATIENT_ID.name)
            if not isinstance(person, Person):
                continue
            when, ok = self.date(r, "date")
            if not ok:
                continue
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": person.patient_id,
                    "code_system": system,
                    "code": r.get("code"),
                    "recorded_on": when,
                }
            )
        self.b.add_rows("conditions", rows)

    def _pam_part(self, r: Record, person: Person, date: str | None) -> PamPart:
        tool = r.get("tool")
        return PamPart(r, person, date, "level" if tool == PAM_LEVEL_TOOL else "score", r.get("score"))

    def _is_pam(self, r: Record) -> bool:
        tool = r.get("tool")
        if tool in (PAM_LEVEL_TOOL, PAM_SCORE_TOOL):
            return True
        self.b.reject(
            r.file,
            r.line,
            r.column("tool"),
            tool,
            f"ignored: assessment tool type {_q(tool)} is not a PAM score ({PAM_SCORE_TOOL}) or level ({PAM_LEVEL_TOOL})",
            r.ref,
        )
        return False

    def _assessments(self, at_contacts: CsdsFile, at_referrals: list[Record]) -> None:
        parts: list[PamPart] = []
        by_activity = "ca" in at_contacts.roles
        for r in at_contacts.records:
            if by_activity:
                r.ref = f"{it.CARE_ACTIVITY.name}={r.get('ca')}"
            else:
                r.ref = f"{it.CARE_CONTACT.name}={r.get('cc')}"
            if not self._is_pam(r):
                continue
            if by_activity:
                contact = self._link(self.activities, r, "ca", ACTIVITY, it.CARE_ACTIVITY.name)
            else:
                contact = self._link(self.contacts, r, "cc", CONTACT, it.CARE_CONTACT.name)
            if not isinstance(contact, Contact):
                continue
            when, ok = self.date(r, "date")
            if not ok:
                continue
            parts.append(self._pam_part(r, contact.person, when or contact.date))
        for r in at_referrals:
            r.ref = f"{it.SERVICE_REQUEST.name}={r.get('sr')}"
            if not self._is_pam(r):
                continue
            person = self._link(self.referrals, r, "sr", REFERRAL, it.SERVICE_REQUEST.name)
            if not isinstance(person, Person):
                continue
            when, ok = self.date(r, "date")
            if not ok:
                continue
            parts.append(self._pam_part(r, person, when))
        groups: dict[tuple[str, str | None], list[PamPart]] = {}
        for p in parts:
            groups.setdefault((p.person.key, p.date), []).append(p)
        self.b.add_rows("assessments", [row for group in groups.values() if (row := self._merge(group))])

    def _merge(self, group: list[PamPart]) -> dict[str, object] | None:
        """One row from the PAM score and level recorded for one patient on one date."""
        chosen: dict[str, PamPart] = {}
        for kind in ("score", "level"):
            of_kind = [p for p in group if p.kind == kind]
            if len({_number(p.value) for p in of_kind}) > 1:
                values = ", ".join(sorted({p.value or "(empty)" for p in of_kind}))
                reason = f"conflicting assessments: different PAM {kind}s ({values}) for {group[0].person.patient_id} on {group[0].date}; none is used"
                for p in group:
                    self.b.reject(p.record.file, p.record.line, p.record.column("score"), p.value, reason, p.record.ref)
                return None
            if of_kind:
                chosen[kind] = of_kind[0]
                for p in of_kind[1:]:
                    first = of_kind[0].record
                    reason = f"repeats the PAM {kind} of {first.file} line {first.line} (counted once)"
                    self.b.reject(p.record.file, p.record.line, None, None, reason, p.record.ref)
        main = min(chosen.values(), key=lambda p: group.index(p))
        for p in chosen.values():
            if p is not main:
                self.b.accept_record(p.record.file, p.record.line)  # merged into the main record's row
        return {
            "_file": main.record.file,
            "_line": main.record.line,
            "_ref": main.record.ref,
            "patient_id": main.person.patient_id,
            "assessed_on": main.date,
            "respondent": "patient",
            "instrument": "pam",
            "pam_score": chosen["score"].value if "score" in chosen else None,
            "pam_level": chosen["level"].value if "level" in chosen else None,
        }

    def _is_conversation(self, code: str | None) -> bool:
        if code is None:
            return False
        return any(code in codes for codes in self.b.vocabulary.conversation_codes.values())

    def _conversations(self, records: list[Record], entries: set[int]) -> None:
        """Conversations from care activities; ``entries`` are the ids of records already used as care plan entries."""
        rows = []
        for r in records:
            r.ref = f"{it.CARE_ACTIVITY.name}={r.get('ca')}"
            code = r.get("code")
            if id(r) in entries and not self._is_conversation(code):
                continue  # a care plan entry (_plan_entries accepted or rejected it)
            if not self._is_conversation(code):
                self.b.reject(
                    r.file,
                    r.line,
                    r.column("code"),
                    code,
                    f"ignored: not a care and support planning conversation ({r.column('code')} {_q(code)} is not in the ruleset's conversation codes)",
                    r.ref,
                )
                continue
            contact = self._link(self.contacts, r, "cc", CONTACT, it.CARE_CONTACT.name)
            if not isinstance(contact, Contact):
                continue
            if (contact.attend or "").lstrip("0") not in ATTENDED:
                self.b.reject(
                    r.file,
                    r.line,
                    r.column("cc"),
                    r.get("cc"),
                    f"the conversation's contact was not attended (AttendOrDNACode {_q(contact.attend)}; only 5 or 6, attended, count)",
                    r.ref,
                )
                continue
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": contact.person.patient_id,
                    "held_on": contact.date,
                    "staff_id": r.get("staff"),
                }
            )
        self.b.add_rows("conversations", rows)

    def _care_plans(self, plans: CsdsFile, agreements: list[Record]) -> list[AgreedPlan]:
        """An agreed care plan (CYP004 with a CYP005 agreement) is a conversation held on the agreed date.

        Which plan types count is the ruleset's decision (``conversation_codes.care_plans.csds_plan_types``;
        empty: every type); see the interpretation recorded there.  Returns each agreement, for the care
        activities recorded after it (:meth:`_plan_entries`).
        """
        if not plans.records and not agreements:
            return []
        types = self.b.vocabulary.csds_care_plan_types
        role = self._person_role(plans)
        label = it.LOCAL_PATIENT_ID.name if role == "lpi" else it.PERSON_ID.name
        owners: dict[str, Person | Failed] = {}
        plan_records: dict[str, Record] = {}
        for pid, r in self._unique(plans.records, "plan", it.CARE_PLAN.name).items():
            if isinstance(r, Failed):
                owners[pid] = r
                continue
            plan_type = r.get("type")
            if types and (plan_type or "") not in types:
                reason = (
                    f"ignored: care plan type {_q(plan_type)} is not one the ruleset counts as a personalised care "
                    f"and support plan ({', '.join(sorted(types))})"
                )
                self.b.reject(r.file, r.line, r.column("type"), plan_type, reason, r.ref)
                owners[pid] = Failed(r.ref or pid, r.file, reason)
                continue
            person = self._link(self.persons, r, role, MPI, label)
            owners[pid] = person  # type: ignore[assignment]
            if isinstance(person, Person):
                plan_records[pid] = r
        rows = []
        used: set[str] = set()
        agreed: list[AgreedPlan] = []
        for r in agreements:
            r.ref = f"{it.CARE_PLAN.name}={r.get('plan')}"
            person = self._link(owners, r, "plan", CARE_PLAN, it.CARE_PLAN.name)
            if not isinstance(person, Person):
                continue
            when, ok = self.date(r, "agreed")
            if not ok:
                continue
            used.add(r.get("plan") or "")
            if when is not None:
                agreed.append(AgreedPlan(person, r.get("plan") or "", when))
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": person.patient_id,
                    "held_on": when,
                    "staff_id": None,
                }
            )
        self.b.add_rows("conversations", rows)
        for pid, r in plan_records.items():
            if pid in used:
                self.b.accept_record(r.file, r.line)  # its person is on each agreement's conversations row
            else:
                reason = "ignored: the care plan has no agreement (CYP005 CARE PLAN AGREED DATE), so it is not evidence of an agreed plan"
                self.b.reject(r.file, r.line, r.column("plan"), pid, reason, r.ref)
        return agreed

    def _entry_codes(self, r: Record) -> list[tuple[str, str, str, str]]:
        """(role, code, entry, category) for each SNOMED CT code of a care activity in the ruleset's care_planning lists.

        CYP202 CODED PROCEDURE (CLINICAL TERMINOLOGY) and CODED FINDING (CODED CLINICAL ENTRY) are read when their
        scheme (PROCEDURE / FINDING SCHEME IN USE) is SNOMED CT (06) or not given.
        """
        codes = self.b.vocabulary.care_plan_category_codes.get("snomed") or {}
        out = []
        for role, scheme in (("code", "scheme"), ("finding", "finding_scheme")):
            code = r.get(role)
            if code is None or (r.get(scheme) or "06").lstrip("0") != "6":
                continue
            if code in codes:
                entry, category = codes[code]
                out.append((role, code, entry, category))
        return out

    def _plan_entries(self, records: list[Record], agreed: list[AgreedPlan]) -> set[int]:
        """care_plans rows from care activities whose SNOMED CT code names a care plan entry (care_planning's lists).

        CSDS does not link a care activity to a care plan, so the entry is attached to the patient's latest plan
        agreed (CYP005 CARE PLAN AGREED DATE) on or before the care contact date; entry_on is the contact date when
        later.  Returns the ids of the records used (accepted or rejected here).
        """
        used: set[int] = set()
        rows = []
        for r in records:
            found = self._entry_codes(r)
            if not found:
                continue
            used.add(id(r))
            r.ref = f"{it.CARE_ACTIVITY.name}={r.get('ca')}"
            role, code = found[0][0], found[0][1]
            contact = self._link(self.contacts, r, "cc", CONTACT, it.CARE_CONTACT.name)
            if not isinstance(contact, Contact):
                continue
            if (contact.attend or "").lstrip("0") not in ATTENDED:
                reason = (
                    f"the care plan entry's contact was not attended (AttendOrDNACode {_q(contact.attend)}; "
                    "only 5 or 6, attended, count)"
                )
                self.b.reject(r.file, r.line, r.column("cc"), r.get("cc"), reason, r.ref)
                continue
            on = contact.date or ""
            plans = [p for p in agreed if p.person.key == contact.person.key and p.agreed_on <= on]
            if not plans:
                reason = (
                    f"ignored: {r.column(role)} {_q(code)} is a care plan entry, but the patient has no care plan agreed "
                    f"on or before the contact date {on} (CYP004 with a CYP005 CARE PLAN AGREED DATE), so it cannot be "
                    "attached to a plan"
                )
                self.b.reject(r.file, r.line, r.column(role), code, reason, r.ref)
                continue
            plan = max(plans, key=lambda p: (p.agreed_on, p.plan_id))
            for _, _, entry, category in found:
                rows.append(
                    {
                        "_file": r.file,
                        "_line": r.line,
                        "_ref": r.ref,
                        "patient_id": plan.person.patient_id,
                        "plan_id": plan.plan_id,
                        "agreed_on": plan.agreed_on,
                        "shared_with_patient": None,  # CSDS does not record it (see the module docstring)
                        "entry": entry,
                        "category": category,
                        "entry_on": on if on > plan.agreed_on else None,
                    }
                )
        if rows:
            self.b.add_rows("care_plans", rows)
        return used


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(CsdsAdapter)
