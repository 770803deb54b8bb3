"""The CSDS adapter: a community provider's Community Services Data Set submission, one CSV per table.

Community providers already submit the Community Services Data Set (CSDS
v1.5/1.6) to NHS Digital every month, so the records this indicator needs are
already kept in that shape: who the person is (CYP001), when they were under
the provider's care (CYP101), what they have (CYP607/CYP608), their PAM
assessments (CYP609/CYP612) and what was done at each contact (CYP201/CYP202).
This adapter reads such a submission, exported as a folder of CSV files, into
the canonical tables ``patients``, ``conditions``, ``assessments`` and
``conversations``.

Files
-----
One CSV file per CSDS table, found by its table id at the start of the file
name, in any case: ``CYP001MPI.csv``, ``cyp001mpi_2018.csv`` and ``CYP001.csv``
are all the CYP001 file.  Only CYP001 is required (``detect`` looks for it); a
missing table is noted with the load.  Two files for one table are an error
(combine the months of a submission first).  Other CSDS tables (CYP000Header,
CYP002GP, ...) are noted as not used.  Files may be UTF-8, with or without a
byte-order mark, or Windows-1252.

Columns
-------
The header row uses the CSDS data item names shortened to one PascalCase word
(cquin's convention: LOCAL PATIENT IDENTIFIER is ``LocalPatientId``, PERSON
STATED GENDER CODE is ``PersonStatedGenderCode``; check an export's headers
against the table below).  Headers are matched ignoring case, spaces and
underscores, so ``LOCAL_PATIENT_ID`` works too.  Other columns are ignored.
A required column that is missing raises an error naming the file and column.

| CSDS file (table) | column | required | canonical use |
|---|---|---|---|
| CYP001MPI | LocalPatientId | yes | links the person's other records |
| CYP001MPI | NHSNumber | yes | `patient_id` of every row for the person |
| CYP001MPI | PersonBirthDate | yes | `patients.date_of_birth` |
| CYP001MPI | PersonStatedGenderCode | yes | `patients.sex`: 1 male, 2 female, 9 indeterminate, X or 0 unknown; empty stays empty |
| CYP101Referral | ServiceRequestId | yes | links contacts and referral-level assessments |
| CYP101Referral | LocalPatientId | yes | the person referred |
| CYP101Referral | ReferralReceivedDate | yes | `patients.served_from` (one patients row per referral) |
| CYP101Referral | ServiceDischargeDate | yes | `patients.served_to` (empty: still under care) |
| CYP201CareContact | CareContactId | yes | links care activities and contact-level assessments |
| CYP201CareContact | ServiceRequestId | yes | the referral the contact belongs to |
| CYP201CareContact | CareContactDate | yes | `conversations.held_on`; `assessments.assessed_on` for CYP612 |
| CYP201CareContact | AttendOrDNACode | yes | only contacts coded 5 or 6 (attended) hold conversations |
| CYP202CareActivity | CareActivityId | yes | the record's reference (`_ref`) |
| CYP202CareActivity | CareContactId | yes | the contact the activity took place at |
| CYP202CareActivity | CodedProcedure | yes | a conversation code makes a `conversations` row |
| CYP202CareActivity | CareProfLocalId | no | `conversations.staff_id` |
| CYP607PrimDiag | LocalPatientId | yes | the person diagnosed |
| CYP607PrimDiag | DiagnosisSchemeInUse | yes | `conditions.code_system`: 02 `icd10`, 06 `snomed` |
| CYP607PrimDiag | PrimDiag | yes | `conditions.code` |
| CYP607PrimDiag | DiagnosisDate | yes | `conditions.recorded_on` |
| CYP607PrimDiag | ServiceRequestId | no | the record's reference (`_ref`) |
| CYP608SecDiag | LocalPatientId, DiagnosisSchemeInUse, DiagnosisDate, ServiceRequestId | as CYP607 | as CYP607 |
| CYP608SecDiag | SecDiag | yes | `conditions.code` |
| CYP609CodedAssessmentReferral | ServiceRequestId | yes | the referral (and so the person) assessed |
| CYP609CodedAssessmentReferral | CodedAssessmentToolType | yes | PAM score or PAM level (SNOMED CT ids below); other tools ignored |
| CYP609CodedAssessmentReferral | PersonScore | yes | `assessments.pam_score` or `assessments.pam_level` |
| CYP609CodedAssessmentReferral | AssessmentToolCompletionDate | yes | `assessments.assessed_on` |
| CYP612CodedAssessmentContact | CareContactId | yes | the contact (and so the person) assessed |
| CYP612CodedAssessmentContact | CodedAssessmentToolType | yes | as CYP609 |
| CYP612CodedAssessmentContact | PersonScore | yes | as CYP609 |
| CYP612CodedAssessmentContact | AssessmentToolCompletionDate | no | `assessments.assessed_on`; when absent or empty, the contact's CareContactDate |

Conventions (cquin's choices where CSDS leaves room)
----------------------------------------------------
- The person is identified by NHS number.  A CYP001 record without one, or
  with one that fails the Modulus 11 check, is rejected, and so is every
  record that leads only to that person.
- Each referral is one episode of care (one ``patients`` row, dated by the
  referral).  A person with no referral is rejected: the time under the
  provider's care is unknown.
- Diagnosis scheme codes (Data Dictionary "diagnosis scheme in use"):
  ``02`` ICD-10 -> ``icd10``, ``06`` SNOMED CT -> ``snomed``; the leading zero
  may be missing.  Other schemes (e.g. Read codes) are rejected as ignored:
  cquin's code lists are ICD-10 and SNOMED CT.
- PAM: CodedAssessmentToolType :data:`PAM_LEVEL_TOOL` (962851000000103,
  Patient Activation Measure level) and :data:`PAM_SCORE_TOOL`
  (925431000000109, PAM-13 score).  A level and a score for one patient on
  one date make one ``assessments`` row.  CSDS has no carer flag, so the
  respondent is always ``patient``.  Other tool types are rejected as ignored,
  so counts balance and nothing vanishes silently.
- A care activity is a care and support planning conversation when its
  CodedProcedure is in the ruleset's SNOMED CT conversation codes or in any of
  its local conversation code lists (CSDS carries no code system for a local
  code, so every local list is searched).  Other activities are rejected as
  ignored.  Only attended contacts (AttendOrDNACode 5 or 6) count.
- Dates are ISO (YYYY-MM-DD) in CSDS submissions and are passed through for
  the builder to check; a time after the date (``2018-03-01T10:30:00``) is
  dropped.  Option ``dates=uk`` reads DD/MM/YYYY exports instead.
- A repeated id (LocalPatientId, ServiceRequestId, CareContactId) with the
  same details is counted once; with different details all its records are
  rejected as conflicting.

Every record of every file read is accepted (used, whether or not it makes a
row of its own) or rejected with a reason; ``_line`` is the physical line in
the file where the record starts, ``_ref`` the CSDS id of the record.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from stdnum.exceptions import ValidationError
from stdnum.gb import nhs

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import DatasetBuilder
from cquin.dataset.csvread import _sniff_encoding
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl

PAM_LEVEL_TOOL = "962851000000103"  # |Patient Activation Measure level (observable entity)|
PAM_SCORE_TOOL = "925431000000109"  # PAM-13 score, as in UK Renal Data Collaboration extracts
ATTENDED = frozenset({"5", "6"})  # attended on time; arrived late but seen
DIAGNOSIS_SCHEMES = {"2": "icd10", "6": "snomed"}
MAX_CELL = 4_000_000  # characters in one cell; a longer one stops the load with the file and line named
SEX_CODES = {"1": "male", "2": "female", "9": "indeterminate", "x": "unknown", "0": "unknown"}


@dataclass(frozen=True)
class CsdsTable:
    """One CSDS table as this adapter reads it."""

    id: str  # e.g. "CYP001"
    name: str  # e.g. "CYP001MPI"
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    feeds: str | None = None  # the canonical table its records end up in


MPI = CsdsTable(
    "CYP001", "CYP001MPI", ("LocalPatientId", "NHSNumber", "PersonBirthDate", "PersonStatedGenderCode"), feeds="patients"
)
REFERRAL = CsdsTable(
    "CYP101",
    "CYP101Referral",
    ("ServiceRequestId", "LocalPatientId", "ReferralReceivedDate", "ServiceDischargeDate"),
    feeds="patients",
)
CONTACT = CsdsTable("CYP201", "CYP201CareContact", ("CareContactId", "ServiceRequestId", "CareContactDate", "AttendOrDNACode"))
ACTIVITY = CsdsTable(
    "CYP202",
    "CYP202CareActivity",
    ("CareActivityId", "CareContactId", "CodedProcedure"),
    ("CareProfLocalId",),
    feeds="conversations",
)
PRIMARY_DIAGNOSIS = CsdsTable(
    "CYP607",
    "CYP607PrimDiag",
    ("LocalPatientId", "DiagnosisSchemeInUse", "PrimDiag", "DiagnosisDate"),
    ("ServiceRequestId",),
    "conditions",
)
SECONDARY_DIAGNOSIS = CsdsTable(
    "CYP608",
    "CYP608SecDiag",
    ("LocalPatientId", "DiagnosisSchemeInUse", "SecDiag", "DiagnosisDate"),
    ("ServiceRequestId",),
    "conditions",
)
REFERRAL_ASSESSMENT = CsdsTable(
    "CYP609",
    "CYP609CodedAssessmentReferral",
    ("ServiceRequestId", "CodedAssessmentToolType", "PersonScore", "AssessmentToolCompletionDate"),
    feeds="assessments",
)
CONTACT_ASSESSMENT = CsdsTable(
    "CYP612",
    "CYP612CodedAssessmentContact",
    ("CareContactId", "CodedAssessmentToolType", "PersonScore"),
    ("AssessmentToolCompletionDate",),
    feeds="assessments",
)
TABLES = (MPI, REFERRAL, CONTACT, ACTIVITY, PRIMARY_DIAGNOSIS, SECONDARY_DIAGNOSIS, REFERRAL_ASSESSMENT, CONTACT_ASSESSMENT)


def _key(header: str) -> str:
    """A header as matched: lower case, without spaces or underscores."""
    return re.sub(r"[\s_]", "", header).lower()


@dataclass
class Record:
    """One record of a CSDS file: its place in the file and its (trimmed, non-empty) values."""

    file: str
    line: int
    values: dict[str, str]
    ref: str | None = None

    def get(self, column: str) -> str | None:
        return self.values.get(_key(column))


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
    nhs_number: str  # as written (the builder normalises)
    key: str  # digits only, for matching
    date_of_birth: str | None
    sex: str | None


@dataclass(frozen=True)
class Contact:
    person: Person
    date: str | None
    attend: str | None


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
        "A Community Services Data Set (CSDS v1.5/1.6) submission: a folder of CSV files named by table (CYP001MPI.csv required)"
    )
    tables = ("patients", "conditions", "assessments", "conversations")
    options = (
        AdapterOption(
            "dates",
            "Date format in the files: iso (YYYY-MM-DD, as CSDS) or uk (DD/MM/YYYY, ISO also accepted)",
            "iso",
            ("iso", "uk"),
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
        _Loader(builder, found, options.get("dates", "iso")).run()


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


def read_csds_csv(path: Path, spec: CsdsTable, builder: DatasetBuilder) -> list[Record]:
    """Every record of one CSDS file; records with the wrong number of fields are rejected here."""
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty (expected a header row)")
    encoding = _sniff_encoding(path)
    records = []
    # Cells as long as the canonical reader takes (Python's default stops at 131,072 characters).
    limit = csv.field_size_limit(MAX_CELL)
    with path.open("r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise DataError(f"{path.name}: the file is empty (expected a header row)")
            keys = [_key(h) for h in header]
            dupes = sorted({h.strip() for h, k in zip(header, keys, strict=True) if k and keys.count(k) > 1})
            if dupes:
                raise DataError(f"{path.name}: the column {dupes[0]!r} appears twice in the header")
            for column in spec.required:
                if _key(column) not in keys:
                    raise DataError(
                        f"{path.name}: the required CSDS column {column} is missing ({spec.name} needs {', '.join(spec.required)})"
                    )
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
                values = {k: v.strip() for k, v in zip(keys, fields, strict=True) if v.strip()}
                records.append(Record(path.name, line, values))
        except csv.Error as exc:
            raise DataError(f"{path.name}: line {reader.line_num} cannot be read as CSV ({exc})") from None
        finally:
            csv.field_size_limit(limit)
    return records


def _q(text: str | None, limit: int = 60) -> str:
    """A value quoted for a message, shortened when long (a 100,000-character cell stays readable)."""
    s = text or ""
    return "'" + (s if len(s) <= limit else s[: limit - 3] + "...") + "'"


def _date(text: str | None) -> str | None:
    """A CSDS date as text; a time after an ISO date is dropped."""
    if text and re.match(r"\d{4}-\d{2}-\d{2}[T ]", text):
        return text[:10]
    return text


def _nhs_problem(text: str) -> str | None:
    """Why an NHS number is not valid (the builder's wording), or None."""
    try:
        nhs.validate(text)
    except ValidationError as exc:
        if isinstance(exc, nhs.InvalidChecksum):
            return f"NHS number {_q(text)} fails the Modulus 11 check digit"
        return f"NHS number {_q(text)} is not 10 digits"
    return None


def _person_problem(number: str | None, sex_code: str | None) -> tuple[str, str] | None:
    """(column, reason) when a CYP001 record cannot make a patient, else None."""
    if number is None:
        return "NHSNumber", "no NHS number: cquin identifies patients by NHS number, and NHSNumber is empty"
    if (problem := _nhs_problem(number)) is not None:
        return "NHSNumber", problem
    if sex_code is not None and sex_code.lower() not in SEX_CODES:
        return (
            "PersonStatedGenderCode",
            f"PersonStatedGenderCode {_q(sex_code)} is not a CSDS code (1 male, 2 female, 9 indeterminate, X or 0 not known)",
        )
    return None


def _number(text: str | None) -> str | None:
    """A score in a comparable form ('48.30' and '48.3' are the same score)."""
    if text is None:
        return None
    try:
        return str(Decimal(text).normalize())
    except InvalidOperation:
        return text


class _Loader:
    """One load: reads the files in link order and stages rows, rejecting what cannot be used."""

    def __init__(self, builder: DatasetBuilder, files: Mapping[str, Path], date_style: str) -> None:
        self.b = builder
        self.files = files
        self.date_style = date_style
        self.persons: dict[str, Person | Failed] = {}
        self.referrals: dict[str, Person | Failed] = {}
        self.contacts: dict[str, Contact | Failed] = {}
        self.person_records: dict[str, Record] = {}  # LocalPatientId -> the CYP001 record of a usable person
        self.vocab = builder.vocabulary

    def run(self) -> None:
        known = {t.id for t in TABLES}
        for tid, path in sorted(self.files.items()):
            if tid not in known:
                self.b.note(f"{path.name}: CSDS table {tid} is not used by cquin, so it was not read")
        records = {t.id: self._read(t) for t in TABLES}
        self._persons(records[MPI.id])
        self._referrals(records[REFERRAL.id])
        self._contacts(records[CONTACT.id])
        self._diagnoses(records[PRIMARY_DIAGNOSIS.id], "PrimDiag")
        self._diagnoses(records[SECONDARY_DIAGNOSIS.id], "SecDiag")
        self._assessments(records[CONTACT_ASSESSMENT.id], records[REFERRAL_ASSESSMENT.id])
        self._conversations(records[ACTIVITY.id])

    def _read(self, spec: CsdsTable) -> list[Record]:
        path = self.files.get(spec.id)
        if path is None:
            if spec is not MPI:
                self.b.note(f"{spec.name}.csv: not supplied, so there are no records from CSDS table {spec.id}")
            return []
        self.b.source(path.name, path, spec.feeds, date_style=self.date_style)
        return read_csds_csv(path, spec, self.b)

    # ------------------------------------------------------------- linking records

    def _unique(self, records: Iterable[Record], column: str) -> dict[str, Record | Failed]:
        """Index records by their id: a repeat with the same details counts once; differing repeats all fail."""
        groups: dict[str, list[Record]] = {}
        for r in records:
            rid = r.get(column)
            r.ref = f"{column}={rid}" if rid else None
            if rid is None:
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
            reason = f"conflicting records for {column} {rid} (lines {lines}): they disagree, so none is used"
            for r in group:
                self.b.reject(r.file, r.line, column, rid, reason, r.ref)
            out[rid] = Failed(f"{column}={rid}", group[0].file, reason)
        return out

    def _link(self, index: Mapping[str, object], r: Record, column: str, table: CsdsTable) -> object:
        """The person/referral/contact ``r`` links to, or (after rejecting ``r``) a :class:`Failed` for records that lead to ``r``."""
        rid = r.get(column)
        if rid is None:
            reason = f"{column} is empty: the record cannot be linked to a {table.name} record"
            self.b.reject(r.file, r.line, column, None, reason, r.ref)
            return Failed(r.ref or f"{r.file} line {r.line}", r.file, reason)
        found = index.get(rid)
        if found is None:
            where = table.name if table.id in self.files else f"{table.name} (not supplied)"
            reason = f"unknown {column} {_q(rid)}: not in {where}"
            self.b.reject(r.file, r.line, column, rid, reason, r.ref)
            return Failed(r.ref or rid, r.file, reason)
        if isinstance(found, Failed):
            self.b.reject(r.file, r.line, column, rid, found.downstream(), r.ref)
        return found

    def _persons(self, records: list[Record]) -> None:
        for pid, r in self._unique(records, "LocalPatientId").items():
            if isinstance(r, Failed):
                self.persons[pid] = r
                continue
            number, sex_code = r.get("NHSNumber"), r.get("PersonStatedGenderCode")
            problem = _person_problem(number, sex_code)
            if problem is not None:
                column, reason = problem
                self.b.reject(r.file, r.line, column, r.get(column), reason, r.ref)
                self.persons[pid] = Failed(r.ref or pid, r.file, reason)
                continue
            sex = None if sex_code is None else SEX_CODES[sex_code.lower()]
            assert number is not None
            self.persons[pid] = Person(number, re.sub(r"[ -]", "", number), _date(r.get("PersonBirthDate")), sex)
            self.person_records[pid] = r

    def _referrals(self, records: list[Record]) -> None:
        referred: set[str] = set()
        rows = []
        for sid, r in self._unique(records, "ServiceRequestId").items():
            if isinstance(r, Failed):
                self.referrals[sid] = r
                continue
            person = self._link(self.persons, r, "LocalPatientId", MPI)
            if not isinstance(person, Person):
                self.referrals[sid] = person  # type: ignore[assignment]
                continue
            referred.add(r.get("LocalPatientId") or "")
            self.referrals[sid] = person
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": person.nhs_number,
                    "date_of_birth": person.date_of_birth,
                    "sex": person.sex,
                    "served_from": _date(r.get("ReferralReceivedDate")),
                    "served_to": _date(r.get("ServiceDischargeDate")),
                }
            )
        self.b.add_rows("patients", rows)
        for pid, r in self.person_records.items():
            if pid in referred:
                self.b.accept_record(r.file, r.line)  # its details are on each referral's patients row
            else:
                self.b.reject(
                    r.file, r.line, "LocalPatientId", pid, "no referral: time under the provider's care is unknown", r.ref
                )

    def _contacts(self, records: list[Record]) -> None:
        for cid, r in self._unique(records, "CareContactId").items():
            if isinstance(r, Failed):
                self.contacts[cid] = r
                continue
            person = self._link(self.referrals, r, "ServiceRequestId", REFERRAL)
            if not isinstance(person, Person):
                self.contacts[cid] = person  # type: ignore[assignment]
                continue
            self.contacts[cid] = Contact(person, _date(r.get("CareContactDate")), r.get("AttendOrDNACode"))
            self.b.accept_record(r.file, r.line)

    # ------------------------------------------------------------- rows

    def _diagnoses(self, records: list[Record], code_column: str) -> None:
        rows = []
        for r in records:
            sr = r.get("ServiceRequestId")
            r.ref = f"ServiceRequestId={sr}" if sr else f"LocalPatientId={r.get('LocalPatientId')}"
            scheme = r.get("DiagnosisSchemeInUse")
            system = DIAGNOSIS_SCHEMES.get((scheme or "").lstrip("0"))
            if system is None:
                self.b.reject(
                    r.file,
                    r.line,
                    "DiagnosisSchemeInUse",
                    scheme,
                    f"ignored: diagnosis scheme {_q(scheme)} is not ICD-10 (02) or SNOMED CT (06), the schemes of cquin's code lists",
                    r.ref,
                )
                continue
            person = self._link(self.persons, r, "LocalPatientId", MPI)
            if not isinstance(person, Person):
                continue
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": person.nhs_number,
                    "code_system": system,
                    "code": r.get(code_column),
                    "recorded_on": _date(r.get("DiagnosisDate")),
                }
            )
        self.b.add_rows("conditions", rows)

    def _pam_part(self, r: Record, person: Person, date: str | None) -> PamPart:
        tool = r.get("CodedAssessmentToolType")
        return PamPart(r, person, date, "level" if tool == PAM_LEVEL_TOOL else "score", r.get("PersonScore"))

    def _is_pam(self, r: Record) -> bool:
        tool = r.get("CodedAssessmentToolType")
        if tool in (PAM_LEVEL_TOOL, PAM_SCORE_TOOL):
            return True
        self.b.reject(
            r.file,
            r.line,
            "CodedAssessmentToolType",
            tool,
            f"ignored: assessment tool type {_q(tool)} is not a PAM score ({PAM_SCORE_TOOL}) or level ({PAM_LEVEL_TOOL})",
            r.ref,
        )
        return False

    def _assessments(self, at_contacts: list[Record], at_referrals: list[Record]) -> None:
        parts: list[PamPart] = []
        for r in at_contacts:
            r.ref = f"CareContactId={r.get('CareContactId')}"
            if not self._is_pam(r):
                continue
            contact = self._link(self.contacts, r, "CareContactId", CONTACT)
            if not isinstance(contact, Contact):
                continue
            parts.append(self._pam_part(r, contact.person, _date(r.get("AssessmentToolCompletionDate")) or contact.date))
        for r in at_referrals:
            r.ref = f"ServiceRequestId={r.get('ServiceRequestId')}"
            if not self._is_pam(r):
                continue
            person = self._link(self.referrals, r, "ServiceRequestId", REFERRAL)
            if not isinstance(person, Person):
                continue
            parts.append(self._pam_part(r, person, _date(r.get("AssessmentToolCompletionDate"))))
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
                reason = f"conflicting assessments: different PAM {kind}s ({values}) for {group[0].person.nhs_number} on {group[0].date}; none is used"
                for p in group:
                    self.b.reject(p.record.file, p.record.line, "PersonScore", p.value, reason, p.record.ref)
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
            "patient_id": main.person.nhs_number,
            "assessed_on": main.date,
            "respondent": "patient",
            "instrument": "pam",
            "pam_score": chosen["score"].value if "score" in chosen else None,
            "pam_level": chosen["level"].value if "level" in chosen else None,
        }

    def _is_conversation(self, code: str | None) -> bool:
        if code is None:
            return False
        return any(code in codes for codes in self.vocab.conversation_codes.values())

    def _conversations(self, records: list[Record]) -> None:
        rows = []
        for r in records:
            r.ref = f"CareActivityId={r.get('CareActivityId')}"
            code = r.get("CodedProcedure")
            if not self._is_conversation(code):
                self.b.reject(
                    r.file,
                    r.line,
                    "CodedProcedure",
                    code,
                    f"ignored: not a care and support planning conversation (CodedProcedure {_q(code)} is not in the ruleset's conversation codes)",
                    r.ref,
                )
                continue
            contact = self._link(self.contacts, r, "CareContactId", CONTACT)
            if not isinstance(contact, Contact):
                continue
            if (contact.attend or "").lstrip("0") not in ATTENDED:
                self.b.reject(
                    r.file,
                    r.line,
                    "CareContactId",
                    r.get("CareContactId"),
                    f"the conversation's contact was not attended (AttendOrDNACode {_q(contact.attend)}; only 5 or 6, attended, count)",
                    r.ref,
                )
                continue
            rows.append(
                {
                    "_file": r.file,
                    "_line": r.line,
                    "_ref": r.ref,
                    "patient_id": contact.person.nhs_number,
                    "held_on": contact.date,
                    "staff_id": r.get("CareProfLocalId"),
                }
            )
        self.b.add_rows("conversations", rows)


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(CsdsAdapter)
