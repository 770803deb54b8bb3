"""The ``fhir`` adapter: HL7 FHIR R4 Bundles, or a FHIR Bulk Data (NDJSON) export, into the canonical dataset.

Input is a Bundle JSON file, a folder of Bundle files, or a Bulk Data export
folder of ``Type.000.ndjson`` files (``manifest.json`` and ``log.ndjson`` are
export metadata and are not read).  References are resolved by ``Type/id``
and, inside Bundles, by entry ``fullUrl`` (``urn:uuid:`` references).  Every
resource read ends up accepted (it became, or was merged into, a canonical
row) or rejected with a reason; resources cquin has no use for are rejected
with a reason starting ``ignored:`` and counted in one note, so nothing is
dropped silently.  In the ledger ``file`` is the file name, ``line`` the
NDJSON line number or the Bundle entry's position (1-based), and ``ref`` the
resource's ``Type/id``.

Mapping (FHIR R4 -> canonical):

| FHIR resource | element | canonical | notes |
|---|---|---|---|
| Patient | ``identifier`` with system ``https://fhir.nhs.uk/Id/nhs-number`` | patients.patient_id (and the patient_id of every other row) | no such identifier: Patient rejected, naming the identifier systems it has; option ``identifier_system`` picks another system for test data, but its values must still be valid NHS numbers (Modulus 11) |
| Patient | ``birthDate`` | patients.date_of_birth | |
| Patient | ``gender`` male / female / other / unknown | patients.sex male / female / indeterminate / unknown | |
| EpisodeOfCare | ``patient``, ``period.start`` / ``period.end`` | one patients row per episode: served_from / served_to | demographics from the referenced Patient; status planned, waitlist, cancelled or entered-in-error: ignored. A Patient with no usable episode is rejected ("no EpisodeOfCare") unless option ``episodes=encounters``, which makes each Encounter's ``period`` an episode |
| Condition | ``code.coding`` in ``http://snomed.info/sct`` / ``http://hl7.org/fhir/sid/icd-10`` (or ``icd-10-uk``) | conditions.code_system snomed / icd10, code | one row per usable coding; ``recordedDate``, else ``onsetDateTime`` (date part) -> recorded_on; verification status refuted or entered-in-error: ignored |
| Observation | code ``http://snomed.info/sct`` ``962851000000103`` (PAM level: ``valueInteger``, ``valueQuantity`` or ``valueCodeableConcept``) or ``925431000000109`` (PAM score: ``valueQuantity`` or ``valueDecimal``) | assessments, instrument pam: pam_level / pam_score | ``effectiveDateTime`` -> assessed_on; a level and a score for one patient, respondent and day merge into one row; ``performer`` a RelatedPerson -> respondent carer, else patient. Other Observations: ignored |
| QuestionnaireResponse | items with ``linkId`` Q32 / Q33, answer ``valueString`` or ``valueCoding`` display / code | assessments, instrument gpps: gpps_q32 / gpps_q33 | ``authored`` -> assessed_on; ``source`` or ``author`` a RelatedPerson -> carer, else patient. Without Q32/Q33 items: ignored |
| Procedure | ``code.coding`` in the ruleset's conversation codes (SNOMED CT, or a local system by its URI) | conversations | ``performedDateTime`` or ``performedPeriod.start`` -> held_on; ``performer.actor`` Practitioner id -> staff_id. Other Procedures: ignored |
| Encounter | ``type`` or ``reasonCode`` coding in the conversation codes | conversations | ``period.start`` -> held_on; ``participant.individual`` Practitioner id -> staff_id. Other Encounters: ignored |
| CarePlan | ``category`` (or ``code``) coding in the ruleset's care plan codes (``conversation_codes.care_plans``) | conversations | an agreed plan (status active/completed, intent plan/order): ``created`` (else ``period.start``) -> held_on; ``author`` Practitioner -> staff_id. Others: ignored |
| CarePlan (agreed, as above) | ``id``; ``created`` (else ``period.start``); extension ``https://cquin.example/fhir/StructureDefinition/care-plan-shared-with-patient`` ``valueBoolean`` | care_plans.plan_id, agreed_on, shared_with_patient of every row of the plan | R4 and UK Core have no element for "shared with the patient", hence cquin's extension; absent -> empty |
| CarePlan | ``activity.detail.code`` coding in the ruleset's ``care_planning.category_system`` / ``element_system`` | care_plans entry action / element, category = the code | a code of ``care_planning``'s code lists gives its listed entry and id; detail status cancelled or entered-in-error, or doNotPerform: not read |
| Condition | ``code`` (or ``category``) coding in the category system, named by an agreed plan's ``addresses`` | care_plans entry need | a need with no SNOMED CT / ICD-10 code is no conditions row; one with both is both (and a note counts those no plan addresses). Not named by an agreed plan: ignored |
| Goal | ``category`` (or ``description``) coding in the category system, named by an agreed plan's ``goal`` | care_plans entry goal | lifecycleStatus cancelled, rejected, entered-in-error: ignored. No care-planning coding, or no agreed plan names it: ignored |
| ServiceRequest | ``category`` (or ``code``) coding in the category system, named by an agreed plan's ``activity.reference`` or naming it in ``basedOn`` | care_plans entry referral; ``authoredOn`` -> entry_on when later than agreed_on | status active/completed and intent plan/order (or an order sub-type) only, not doNotPerform; otherwise, or outside an agreed plan: ignored |
| any other (Practitioner, Claim, Immunization, ...) | | | ignored |

The PAM codes (:data:`cquin.adapters.fhir_map.PAM_LEVEL_CODE`, ``PAM_SCORE_CODE``)
are this adapter's FHIR convention, not CQUIN policy.  A record that names a
patient (``subject`` as ``Patient/<id>``, a ``urn:uuid:`` fullUrl, or an
NHS-number identifier) whose Patient is missing or was rejected is rejected
with that reason.  Staff, training, overrides and provider details are not
read from FHIR (Practitioner and PractitionerRole resources are ignored):
they are the organisation's own canonical files, read beside the export or
from ``--org DIR`` (:mod:`cquin.adapters.organisation`).

EPR details: a Condition whose clinicalStatus is inactive, remission or
resolved with an abatement date before the ruleset's
``ltc.resolved_conditions`` date is ignored unless its code is in an excepted
category (cancer counts by its recorded date); the UK Core NHS number
verification status is counted in a note; ``#id`` references resolve to
``contained`` resources (a contained Patient is the export's Patient with the
same NHS number); a Bulk ``manifest.json`` must list only files that are
present (:mod:`cquin.adapters.fhir_manifest`).

Care plans (FHIR R4 v4.0.1: CarePlan https://hl7.org/fhir/R4/careplan.html, elements ``addresses``
"Reference(Condition)", ``goal`` "Reference(Goal)", ``activity.reference`` and ``activity.detail.code``; Goal
https://hl7.org/fhir/R4/goal.html, ``category`` and ``description``; ServiceRequest
https://hl7.org/fhir/R4/servicerequest.html, ``basedOn`` "Reference(CarePlan | ...)", ``authoredOn``): a plan
and the resources it names may come in any order and any file, so the Conditions, Goals and ServiceRequests
with care-planning codings are linked to their plans once every record is read, like Patient references.  Each
care_plans row carries the file and line of the record it came from (a need, the Condition's), so a category
the ruleset does not know is rejected at that record with the ruleset's list shown.  A resource contained in
the CarePlan (``#id``) is read as part of the plan.

Details worth knowing:
- Dates are the calendar date as recorded (the date part of a dateTime, with no
  time-zone conversion); a partial date such as ``2017-05`` is passed on and
  rejected by the dataset checks with its value shown.
- A Patient record is accepted when at least one of its episodes is; its
  NHS number is checked here (so its episodes and records are rejected as for a
  rejected patient), its birth date and sex by the dataset checks on each
  episode's row.
- When a PAM level and score merge, the row carries the level's file and line
  and the score's record is counted as accepted (merged); should the dataset
  checks reject that row, only the level's record shows as rejected.
- In a folder, every file is read or listed in a note with why not: ``*.json``
  files that are not FHIR (no ``resourceType``), files of other kinds, export
  metadata (``manifest.json``, ``log.ndjson``), subfolders.  Names match in any
  case and ``*.ndjson.gz`` is read decompressed.  A file that claims to be FHIR
  but is not JSON stops the load (DataError), while a malformed NDJSON line
  (including one holding ``NaN`` or ``Infinity``, which are not JSON) is one
  rejected record.
- One resource, one id: a resource read twice (the same type and id) with the
  same content counts once (the repeat is rejected as a duplicate); copies that
  differ are all rejected as conflicting, since nothing says which is right (as
  the CSDS adapter does with a repeated id).  For a Patient the content compared
  is what cquin reads from it (NHS number, birth date, sex); for other
  resources, the canonical rows they become.
- References resolve to this export's own resources only: ``Type/id``, a Bundle
  entry's ``fullUrl``, or an absolute URL on the export's own server (the base
  of the entries' fullUrls, or of ``manifest.json``'s ``request``).  A reference
  to another server (``http://other.example/fhir/Patient/p1``) is rejected as
  such, never linked to a local ``p1`` (FHIR R4 3.3.1 "Literal references").
  A reference by NHS number identifier matches with or without spaces or hyphens.
- A Patient's birth date and sex are checked on the Patient: a partial
  ``birthDate`` (``1941``, ``1941-06``; valid FHIR, but cquin needs the day) or
  an unknown ``gender`` rejects the Patient at its own line, and its records as
  those of a rejected Patient.

Long because FHIR arrives as Bundles, folders and Bulk Data exports, with references to resolve and every resource accounted for; mapping one resource is fhir_map.py's job and reading files fhir_read.py's.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stdnum.gb import nhs as nhs_number

from cquin.adapters.base import Adapter, AdapterOption
from cquin.adapters.fhir_manifest import check_manifest
from cquin.adapters.fhir_map import (
    FHIR_GENDER,
    NHS_NUMBER_SYSTEM,
    PART_ELEMENT,
    PART_ENTRY,
    PamResult,
    PatientDetails,
    Refusal,
    activity_entries,
    as_list,
    care_plan_codings,
    care_plan_date,
    care_plan_refusal,
    codes_text,
    condition_codes,
    condition_date,
    conversation_codings,
    conversation_date,
    gpps_answers,
    is_conversation,
    not_happened,
    pam_result,
    part_codings,
    part_refusal,
    patient_details,
    plan_entries,
    plan_references,
    quoted,
    resolved_before,
    shared_with_patient,
)
from cquin.adapters.fhir_read import (
    FhirFile,
    Record,
    date_part,
    export_base,
    find_files,
    is_data_file,
    is_remote,
    records,
    reference_base,
    reference_key,
    reference_type,
    resource_key,
)
from cquin.dataset import DatasetBuilder
from cquin.dataset.checks import PLAUSIBLE_FROM, PLAUSIBLE_TO
from cquin.hookspecs import hookimpl

READ_TYPES = (
    "Patient",
    "EpisodeOfCare",
    "Condition",
    "Observation",
    "QuestionnaireResponse",
    "Procedure",
    "Encounter",
    "CarePlan",
    "Goal",
    "ServiceRequest",
)
STAGE_BATCH = 10_000
NOT_FROM_FHIR = {
    "Practitioner": "staff come from staff.csv, not Practitioner resources",
    "PractitionerRole": "staff come from staff.csv, not PractitionerRole resources",
    "Organization": "provider details come from provider.csv, not Organization resources",
    "RelatedPerson": "a carer is recognised from the reference to a RelatedPerson; the resource itself is not needed",
}
# The canonical tables whose rows name the resource they came from (``_ref``): one id, one content.
REF_TABLES = ("patients", "conditions", "assessments", "conversations", "care_plans")
MANIFEST_LIMIT = 16 * 1024 * 1024  # bytes: a Bulk Data manifest lists files, it is never large


class FhirAdapter(Adapter):
    name = "fhir"
    description = "HL7 FHIR R4: a Bundle JSON file, a folder of Bundles, or a Bulk Data export folder of NDJSON files"
    tables = ("patients", "conditions", "assessments", "conversations", "care_plans")
    options = (
        AdapterOption(
            "identifier_system",
            "Patient.identifier system whose value is the patient's id (default the NHS number system). "
            "The values are still checked as NHS numbers (10 digits, Modulus 11 check digit), so choose another "
            "system only for test data whose ids are NHS-number shaped",
            NHS_NUMBER_SYSTEM,
        ),
        AdapterOption(
            "episodes",
            "Where the time under the provider's care comes from: episodeofcare (EpisodeOfCare.period) or "
            "encounters (each Encounter.period is an episode, for exports without EpisodeOfCare)",
            "episodeofcare",
            ("episodeofcare", "encounters"),
        ),
    )

    def detect(self, path: Path) -> bool:
        if not path.is_dir():
            return is_data_file(path)
        return any(is_data_file(p) for p in path.iterdir())

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        files, skipped = find_files(path)
        for why in skipped:
            builder.note(why)
        manifest = check_manifest(path, files)
        load = _Load(builder, options)
        if path.is_dir():
            load.bases |= _manifest_bases(path / "manifest.json")
        load.run(files)
        if manifest is not None:
            manifest.report(builder)


def _manifest_bases(manifest: Path) -> set[str]:
    """The server base a Bulk Data manifest's ``request`` names (references on it are this export's own)."""
    try:
        if not manifest.is_file() or manifest.stat().st_size > MANIFEST_LIMIT:
            return set()
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()  # the manifest only helps resolve absolute references; without it they stay unresolved
    base = export_base(doc.get("request")) if isinstance(doc, dict) else None
    return {base} if base else set()


@dataclass
class _Patient:
    file: str
    line: int
    key: str
    details: PatientDetails
    episodes: int = 0


@dataclass
class _Episode:
    file: str
    line: int
    key: str
    patient: Any  # the Reference, resolved once every Patient is known
    start: str | None
    end: str | None
    refusal: Refusal | None


@dataclass
class _Pam:
    file: str
    line: int
    key: str
    patient_id: str
    respondent: str
    result: PamResult


@dataclass
class _Plan:
    """An agreed care plan (one that counts as a conversation), waiting for the resources it names."""

    key: str
    patient: _Patient
    plan_id: str
    agreed_on: str | None
    shared: str | None


@dataclass
class _Part:
    """A Condition (a need), Goal or ServiceRequest (a referral) with care-planning codings, to be linked to its plan."""

    file: str
    line: int
    key: str
    patient: _Patient
    entries: list[tuple[str, str]]
    based_on: list[str]  # ServiceRequest.basedOn CarePlan keys
    authored_on: str | None
    counted: bool = False  # a Condition that is also a conditions row (accepted whether or not a plan names it)


@dataclass
class _Load:
    """One load: two passes over the files (patients and episodes first, then everything that refers to them)."""

    builder: DatasetBuilder
    options: Mapping[str, str]
    full_urls: dict[str, str] = field(default_factory=dict)
    bases: set[str] = field(default_factory=set)  # this export's server base URLs
    patients: dict[str, _Patient] = field(default_factory=dict)
    by_nhs_number: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # Patient key -> why it was rejected (short)
    seen_patients: dict[str, tuple[str, int, PatientDetails | Refusal]] = field(default_factory=dict)  # key -> first read
    conflicting: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # Patient key -> every place read
    episodes: list[_Episode] = field(default_factory=list)
    pam: list[_Pam] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)
    staged: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    verification: Counter[str] = field(default_factory=Counter)  # NHS number verification status of accepted Patients
    plans: dict[str, _Plan] = field(default_factory=dict)  # agreed CarePlan key -> plan
    plan_refs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # resource key -> (CarePlan key, element)
    unagreed: dict[str, str] = field(default_factory=dict)  # CarePlan key -> why it is not an agreed plan
    parts: list[_Part] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.handlers = {
            "Condition": self.condition,
            "Observation": self.observation,
            "QuestionnaireResponse": self.questionnaire,
            "Procedure": self.conversation,
            "Encounter": self.conversation,
            "CarePlan": self.care_plan,
            "Goal": self.plan_part,
            "ServiceRequest": self.plan_part,
        }

    @property
    def identifier_system(self) -> str:
        return self.options.get("identifier_system") or NHS_NUMBER_SYSTEM

    @property
    def encounter_episodes(self) -> bool:
        return self.options.get("episodes") == "encounters"

    def run(self, files: list[FhirFile]) -> None:
        for f in files:
            self.builder.source(f.name, f.path)
        self.builder.unique_refs(*REF_TABLES)
        first = ("Patient", "EpisodeOfCare") + (("Encounter",) if self.encounter_episodes else ())
        marks = tuple(f'"{t}"' for t in first)
        for f in files:
            for rec in records(f, only_if_contains=marks):
                if rec.resource is None:
                    continue  # reported in the second pass
                if rec.full_url:
                    self.full_urls[rec.full_url] = resource_key(rec.resource, rec.full_url)
                    base = reference_base(rec.full_url)
                    if base:
                        self.bases.add(base)
                rtype = rec.resource["resourceType"]
                if rtype == "Patient":
                    self.patient(f, rec)
                elif rtype in first:
                    self.episode(f, rec)
        self.finish_patients()
        for f in files:
            for rec in records(f):
                self.second_pass(f, rec)
        self.finish_pam()
        self.finish_care_plans()
        self.flush()
        self.note_verification()
        if self.ignored:
            counts = ", ".join(f"{t} {n}" for t, n in sorted(self.ignored.items()))
            self.builder.note(
                f"FHIR: {sum(self.ignored.values())} resources cquin does not use are listed as rejected with a reason "
                f"starting 'ignored:' ({counts})"
            )

    def note_verification(self) -> None:
        """How many accepted Patients' NHS numbers are recorded as verified (UK Core verification status 01)."""
        if not self.verification:
            return
        total = sum(self.verification.values())
        shown = "; ".join(f"{code}: {n:,}" for code, n in sorted(self.verification.items()))
        unverified = total - self.verification.get("01", 0)
        self.builder.note(
            f"FHIR: NHS number verification status (UK Core) — {shown}. {unverified:,} of {total:,} NHS numbers are not "
            "recorded as verified (01, number present and verified); they are used as given"
        )

    # ------------------------------------------------------------------ helpers

    def stage(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Hand rows to the builder in batches (one call per record would dominate a large export's load time)."""
        buf = self.staged.setdefault(table, [])
        buf.extend(rows)
        if len(buf) >= STAGE_BATCH:
            self.flush(table)

    def flush(self, table: str | None = None) -> None:
        for name in [table] if table else list(self.staged):
            self.builder.add_rows(name, self.staged.get(name, []))
            self.staged[name] = []

    def refuse(self, f: FhirFile, rec: Record, key: str | None, refusal: Refusal) -> None:
        self.builder.reject(f.name, rec.line, refusal.column, refusal.value, refusal.reason, key)
        if refusal.ignored and rec.resource is not None:
            self.ignored[rec.resource["resourceType"]] += 1

    def patient_of(self, resource: dict[str, Any], *elements: str) -> _Patient | Refusal:
        """The Patient a resource is about (its first present reference among ``elements``)."""
        element = next((e for e in elements if resource.get(e)), None)
        if element is None:
            return Refusal(
                f"no {elements[0]}: a {resource['resourceType']} must reference its Patient ({elements[0]})", elements[0]
            )
        ref = resource[element]
        contained = self.contained(resource, ref)
        if contained is not None:
            return self.contained_patient(contained, element)
        key = reference_key(ref, self.full_urls, self.bases)
        if key is None:
            ident = ref.get("identifier") if isinstance(ref, dict) else None
            if isinstance(ident, dict) and ident.get("system") == self.identifier_system and ident.get("value"):
                # Written with or without spaces or hyphens (999 000 0018, 999-000-0018).
                key = self.by_nhs_number.get(nhs_number.compact(str(ident["value"])))
                if key is None:
                    return Refusal(
                        "unknown patient: no Patient has the NHS number in the identifier", element, str(ident["value"])
                    )
            else:
                return Refusal(f"{element} has no reference: a {resource['resourceType']} must reference its Patient", element)
        if key in self.patients:
            return self.patients[key]
        if key in self.refused:
            return Refusal(f"unknown patient {quoted(key)}: that Patient record was rejected ({self.refused[key]})", element, key)
        rtype = reference_type(ref, key)
        if rtype is not None and rtype != "Patient":
            return Refusal(f"{element} {quoted(key)} is not a Patient", element, key)
        if key.startswith("urn:"):
            return Refusal(f"unknown patient: reference {quoted(key)} matches no entry's fullUrl in the bundle", element, key)
        if is_remote(key):
            return Refusal(
                f"unknown patient: reference {quoted(key)} is to a resource on another server; cquin links only this "
                "export's own resources (Type/id, a Bundle entry's fullUrl, or a URL on the export's own server)",
                element,
                key,
            )
        return Refusal(f"unknown patient {quoted(key)}: no Patient resource with that id was read", element, key)

    @staticmethod
    def contained(resource: dict[str, Any], ref: Any) -> dict[str, Any] | None:
        """The contained resource a local reference (``#id``) points to, if ``ref`` is one and it is there."""
        target = ref.get("reference") if isinstance(ref, dict) else None
        if not isinstance(target, str) or not target.startswith("#"):
            return None
        for inner in resource.get("contained") or []:
            if isinstance(inner, dict) and inner.get("id") == target[1:]:
                return inner
        return {"resourceType": "(missing)", "id": target[1:]}

    def contained_patient(self, inner: dict[str, Any], element: str) -> _Patient | Refusal:
        """A contained Patient is the Patient read elsewhere in the export with the same NHS number."""
        if inner.get("resourceType") != "Patient":
            what = (
                "no contained resource"
                if inner.get("resourceType") == "(missing)"
                else f"a contained {inner.get('resourceType')}"
            )
            return Refusal(f"{element} '#{inner.get('id')}' is {what}, not a Patient", element, f"#{inner.get('id')}")
        details = patient_details(inner, self.identifier_system)
        if isinstance(details, Refusal):
            return Refusal(f"the contained Patient '#{inner.get('id')}' cannot be used: {details.reason}", element)
        key = self.by_nhs_number.get(details.nhs_number)
        if key is None or key not in self.patients:
            why = (
                "that Patient record was rejected" if key in self.refused else "no Patient resource with that NHS number was read"
            )
            return Refusal(
                f"unknown patient: the contained Patient '#{inner.get('id')}' has NHS number {details.nhs_number}, and {why}",
                element,
                details.nhs_number,
            )
        return self.patients[key]

    def respondent(self, resource: dict[str, Any], *elements: str) -> str:
        """carer when any of ``elements`` references a RelatedPerson, else patient."""
        for element in elements:
            refs = resource.get(element)
            for ref in refs if isinstance(refs, list) else [refs]:
                if isinstance(ref, dict) and isinstance(ref.get("actor"), dict):
                    ref = ref["actor"]
                if reference_type(ref, reference_key(ref, self.full_urls, self.bases)) == "RelatedPerson":
                    return "carer"
        return "patient"

    current: dict[str, Any] | None = None  # the resource being mapped (for its contained resources)

    def practitioner(self, refs: Any, inner: str) -> str | None:
        """The id of the first Practitioner among ``refs`` (each a Reference, or an object holding one as ``inner``)."""
        for item in refs if isinstance(refs, list) else []:
            ref = item.get(inner) if isinstance(item, dict) else None
            found = self.contained(self.current, ref) if self.current is not None else None
            if found is not None and found.get("resourceType") == "Practitioner":
                ids = [i.get("value") for i in found.get("identifier") or [] if isinstance(i, dict) and i.get("value")]
                return str(ids[0]) if ids else (str(found["id"]) if found.get("id") else None)
            key = reference_key(ref, self.full_urls, self.bases)
            if key and reference_type(ref, key) == "Practitioner" and "/" in key and not is_remote(key):
                return key.split("/", 1)[1]
        return None

    # ------------------------------------------------------------------ first pass: patients and episodes

    def patient(self, f: FhirFile, rec: Record) -> None:
        res = rec.resource
        assert res is not None
        key = resource_key(res, rec.full_url)
        details = patient_details(res, self.identifier_system)
        if not isinstance(details, Refusal):
            details = _checked_details(details)
        if key in self.seen_patients and not key.endswith("/(no id)"):
            first_file, first_line, first = self.seen_patients[key]
            if first == details and key not in self.conflicting:
                self.builder.reject(
                    f.name, rec.line, "id", key, f"exact duplicate of {first_file} line {first_line} (counted once)", key
                )
            else:  # one id, two different patients: neither can be trusted (settled once every Patient is read)
                self.conflicting.setdefault(key, [(first_file, first_line)]).append((f.name, rec.line))
            return
        self.seen_patients[key] = (f.name, rec.line, details)
        if isinstance(details, Refusal):
            self.refuse(f, rec, key, details)
            self.refused[key] = details.reason.split(":", 1)[0].split(" (", 1)[0]
            return
        self.patients[key] = _Patient(f.name, rec.line, key, details)
        self.by_nhs_number.setdefault(details.nhs_number, key)

    def episode(self, f: FhirFile, rec: Record) -> None:
        res = rec.resource
        assert res is not None
        period: dict[str, Any] = res["period"] if isinstance(res.get("period"), dict) else {}
        element = "patient" if res["resourceType"] == "EpisodeOfCare" else "subject"
        self.episodes.append(
            _Episode(
                f.name,
                rec.line,
                resource_key(res, rec.full_url),
                {element: res.get(element), "resourceType": res["resourceType"], "contained": res.get("contained")},
                date_part(period.get("start")),
                date_part(period.get("end")),
                not_happened(res),
            )
        )

    def finish_patients(self) -> None:
        """One patients row per episode; then each Patient is accepted (it has an episode) or rejected."""
        for key, places in self.conflicting.items():
            where = ", ".join(f"{file} line {line}" for file, line in places)
            reason = f"conflicting Patient records for {quoted(key)} ({where}): one id with different details, so none is used"
            for file, line in places:
                self.builder.reject(file, line, "id", key, reason, key)
            self.patients.pop(key, None)
            self.refused[key] = "conflicting Patient records"
        rows = []
        for ep in self.episodes:
            if ep.refusal is not None:
                self.builder.reject(ep.file, ep.line, ep.refusal.column, ep.refusal.value, ep.refusal.reason, ep.key)
                self.ignored[ep.key.split("/", 1)[0]] += 1
                continue
            element = "patient" if ep.patient["resourceType"] == "EpisodeOfCare" else "subject"
            found = self.patient_of(ep.patient, element)
            if isinstance(found, Refusal):
                self.builder.reject(ep.file, ep.line, found.column, found.value, found.reason, ep.key)
                continue
            found.episodes += 1
            d = found.details
            rows.append(
                {
                    "patient_id": d.nhs_number,
                    "date_of_birth": d.date_of_birth,
                    "sex": d.sex,
                    "served_from": ep.start,
                    "served_to": ep.end,
                    "_file": ep.file,
                    "_line": ep.line,
                    "_ref": ep.key,
                }
            )
        self.stage("patients", rows)
        self.episodes.clear()
        source = "EpisodeOfCare or Encounter" if self.encounter_episodes else "EpisodeOfCare"
        for key, p in list(self.patients.items()):
            if key in self.conflicting:
                continue
            if p.episodes:
                self.builder.accept_record(p.file, p.line)
                self.verification[p.details.verification or "(not recorded)"] += 1
                continue
            reason = f"no {source}: the time under the provider's care is unknown"
            self.builder.reject(p.file, p.line, None, None, reason, key)
            self.refused[key] = f"no {source}"
            del self.patients[key]

    # ------------------------------------------------------------------ second pass: everything else

    def second_pass(self, f: FhirFile, rec: Record) -> None:
        if rec.resource is None:
            value = rec.text if rec.text is None or len(rec.text) <= 60 else rec.text[:57] + "..."
            self.builder.reject(f.name, rec.line, None, value, rec.error or "not a FHIR resource", rec.full_url)
            return
        res = rec.resource
        rtype = res["resourceType"]
        key = resource_key(res, rec.full_url)
        if rtype in ("Patient", "EpisodeOfCare"):
            return  # done in the first pass
        handler = self.handlers.get(rtype)
        if handler is None:
            why = NOT_FROM_FHIR.get(rtype, f"cquin does not use {rtype} resources (it reads {', '.join(READ_TYPES)})")
            self.refuse(f, rec, key, Refusal(f"ignored: {why}", None, None, True))
            return
        self.current = res
        handler(f, rec, res, key)

    def condition(self, f: FhirFile, rec: Record, res: dict[str, Any], key: str) -> None:
        # A Condition coded in the care-planning categories is a support need (a health concern a plan addresses).
        need = bool(plan_entries(part_codings(res), self.builder.vocabulary, "need"))
        outcome = not_happened(res) or condition_codes(res)
        if isinstance(outcome, Refusal):
            if need and not outcome.ignored:  # no SNOMED CT or ICD-10 code: a need and nothing else
                self.plan_part(f, rec, res, key)
            else:
                self.refuse(f, rec, key, outcome)
            return
        vocab = self.builder.vocabulary
        gone = resolved_before(res, vocab.resolved_before)
        if gone is not None:
            # Resolved before the ruleset's date: only codes of the excepted categories (e.g. cancer) still count.
            outcome = [(system, code) for system, code in outcome if vocab.resolved_exempt(system, code)]
            if not outcome:
                status, abated = gone
                self.refuse(
                    f,
                    rec,
                    key,
                    Refusal(
                        f"ignored: Condition clinicalStatus is {status!r}, abated {abated}, before "
                        f"{vocab.resolved_before}: a condition resolved then does not identify a long-term condition "
                        "(the ruleset's ltc.resolved_conditions)",
                        "clinicalStatus",
                        status,
                        True,
                    ),
                )
                return
        patient = self.patient_of(res, "subject")
        if isinstance(patient, Refusal):
            self.refuse(f, rec, key, patient)
            return
        when = condition_date(res)
        self.stage(
            "conditions",
            [
                {"patient_id": patient.details.nhs_number, "code_system": system, "code": code, "recorded_on": when}
                | {"_file": f.name, "_line": rec.line, "_ref": key}
                for system, code in outcome
            ],
        )
        if need:
            self.plan_part(f, rec, res, key, counted=True)

    def observation(self, f: FhirFile, rec: Record, res: dict[str, Any], key: str) -> None:
        result = pam_result(res)
        if not isinstance(result, Refusal):
            result = not_happened(res) or result
        if isinstance(result, Refusal):
            self.refuse(f, rec, key, result)
            return
        patient = self.patient_of(res, "subject")
        if isinstance(patient, Refusal):
            self.refuse(f, rec, key, patient)
            return
        self.pam.append(_Pam(f.name, rec.line, key, patient.details.nhs_number, self.respondent(res, "performer"), result))

    def finish_pam(self) -> None:
        """A level and a score for one patient, respondent and day make one row; anything else stays separate."""
        groups: dict[tuple[str, str, str | None], list[_Pam]] = {}
        for p in self._unique_pam():
            groups.setdefault((p.patient_id, p.respondent, p.result.assessed_on or f"?{p.file}:{p.line}"), []).append(p)
        rows = []
        for group in groups.values():
            kinds = Counter(p.result.kind for p in group)
            merge = len(group) == 2 and kinds["pam_level"] == 1 and kinds["pam_score"] == 1
            parts = [sorted(group, key=lambda p: p.result.kind)] if merge else [[p] for p in group]
            for part in parts:
                head = part[0]  # pam_level sorts first
                row = {
                    "patient_id": head.patient_id,
                    "assessed_on": head.result.assessed_on,
                    "respondent": head.respondent,
                    "instrument": "pam",
                    "_file": head.file,
                    "_line": head.line,
                    "_ref": head.key,
                }
                for p in part:
                    row[p.result.kind] = p.result.value
                for p in part[1:]:
                    self.builder.accept_record(p.file, p.line)
                rows.append(row)
        self.stage("assessments", rows)
        self.pam.clear()

    def _unique_pam(self) -> list[_Pam]:
        """The PAM observations with one per id: a same-content repeat counts once; differing copies are all rejected."""
        by_key: dict[str, list[_Pam]] = {}
        out = []
        for p in self.pam:
            if p.key.endswith("/(no id)"):
                out.append(p)
            else:
                by_key.setdefault(p.key, []).append(p)
        for key, group in by_key.items():
            first = group[0]
            same = all(
                (p.patient_id, p.respondent, p.result) == (first.patient_id, first.respondent, first.result) for p in group
            )
            if same:
                out.append(first)
                for p in group[1:]:
                    self.builder.reject(
                        p.file, p.line, "id", key, f"exact duplicate of {first.file} line {first.line} (counted once)", key
                    )
                continue
            where = ", ".join(f"{p.file} line {p.line}" for p in group)
            reason = f"conflicting records for {quoted(key)} ({where}): one id with different content, so none is used"
            for p in group:
                self.builder.reject(p.file, p.line, "id", key, reason, key)
        return sorted(out, key=lambda p: (p.file, p.line))

    def questionnaire(self, f: FhirFile, rec: Record, res: dict[str, Any], key: str) -> None:
        answers = gpps_answers(res, self.builder.vocabulary.gpps_options)
        if not isinstance(answers, Refusal):
            answers = not_happened(res) or answers
        if isinstance(answers, Refusal):
            self.refuse(f, rec, key, answers)
            return
        patient = self.patient_of(res, "subject", "source")
        if isinstance(patient, Refusal):
            self.refuse(f, rec, key, patient)
            return
        row = {
            "patient_id": patient.details.nhs_number,
            "assessed_on": date_part(res.get("authored")),
            "respondent": self.respondent(res, "source", "author"),
            "instrument": "gpps",
            **answers,
            "_file": f.name,
            "_line": rec.line,
            "_ref": key,
        }
        self.stage("assessments", [row])

    def conversation(self, f: FhirFile, rec: Record, res: dict[str, Any], key: str) -> None:
        rtype = res["resourceType"]
        episode_already = rtype == "Encounter" and self.encounter_episodes  # accounted for in the first pass
        found = conversation_codings(res)
        if not is_conversation(found, self.builder.vocabulary.conversation_codes):
            if not episode_already:
                self.refuse(
                    f,
                    rec,
                    key,
                    Refusal(
                        "ignored: not a care and support planning conversation "
                        f"(codes {', '.join(sorted({c.get('code') or '?' for c in found})) or 'none'} are not conversation codes)",
                        "code",
                        None,
                        True,
                    ),
                )
            return
        refusal = not_happened(res)
        patient = self.patient_of(res, "subject")
        if refusal is None and isinstance(patient, Refusal):
            refusal = patient
        if refusal is not None:
            if not episode_already:
                self.refuse(f, rec, key, refusal)
            return
        assert isinstance(patient, _Patient)
        if rtype == "Procedure":
            staff = self.practitioner(res.get("performer"), "actor")
        else:
            staff = self.practitioner(res.get("participant"), "individual")
        row = {
            "patient_id": patient.details.nhs_number,
            "held_on": conversation_date(res),
            "staff_id": staff,
            "_file": f.name,
            "_line": rec.line,
            "_ref": key,
        }
        self.stage("conversations", [row])

    def care_plan(self, f: FhirFile, rec: Record, res: dict[str, Any], key: str) -> None:
        """An agreed personalised care and support plan is a conversation held on the day it was agreed (ruleset care_plans).

        What it says becomes care_plans rows: its own activity.detail codes here, the Conditions, Goals and
        ServiceRequests it names (or that name it) once every resource is read (:meth:`finish_care_plans`).
        """
        for element, ref in plan_references(res):
            target = reference_key(ref, self.full_urls, self.bases)
            if target and not target.startswith("#"):
                self.plan_refs.setdefault(target, []).append((key, element))
        found = care_plan_codings(res)
        if not is_conversation(found, self.builder.vocabulary.care_plan_codes):
            codes = ", ".join(sorted({c.get("code") or "?" for c in found})) or "none"
            self.unagreed[key] = f"categories {codes} are not in the ruleset's care plan codes"
            self.refuse(
                f,
                rec,
                key,
                Refusal(
                    f"ignored: not a personalised care and support plan (categories {codes} are not in the ruleset's care plan codes)",
                    "category",
                    None,
                    True,
                ),
            )
            return
        refusal = care_plan_refusal(res) or not_happened(res)
        patient = self.patient_of(res, "subject")
        if refusal is None and isinstance(patient, Refusal):
            refusal = patient
        if refusal is not None:
            self.unagreed[key] = refusal.reason.removeprefix("ignored: ")
            self.refuse(f, rec, key, refusal)
            return
        assert isinstance(patient, _Patient)
        staff = self.practitioner(res.get("author") and [{"actor": res.get("author")}], "actor")
        row = {
            "patient_id": patient.details.nhs_number,
            "held_on": care_plan_date(res),
            "staff_id": staff,
            "_file": f.name,
            "_line": rec.line,
            "_ref": key,
        }
        self.stage("conversations", [row])
        plan = _Plan(key, patient, str(res.get("id") or key), care_plan_date(res), shared_with_patient(res))
        self.plans[key] = plan
        own: list[tuple[str, str, str | None]] = [(e, c, None) for e, c in activity_entries(res, self.builder.vocabulary)]
        for _element, ref in plan_references(res):
            inner = self.contained(res, ref)  # a Condition, Goal or ServiceRequest contained in the plan
            rtype = inner.get("resourceType") if inner is not None else None
            if inner is None or rtype not in PART_ENTRY or part_refusal(inner) or not_happened(inner):
                continue
            when = _later(date_part(inner.get("authoredOn")), plan.agreed_on)
            own += [(e, c, when) for e, c in plan_entries(part_codings(inner), self.builder.vocabulary, PART_ENTRY[rtype])]
        self.stage("care_plans", [self.plan_row(plan, *entry, f.name, rec.line, key) for entry in dict.fromkeys(own)])

    # ------------------------------------------------------------------ what care plans say

    def plan_part(self, f: FhirFile, rec: Record, res: dict[str, Any], key: str, counted: bool = False) -> None:
        """A Goal, ServiceRequest or need Condition, kept until every CarePlan is read (references go both ways).

        FHIR R4: CarePlan.goal -> Goal, CarePlan.addresses -> Condition, CarePlan.activity.reference ->
        ServiceRequest, and ServiceRequest.basedOn -> CarePlan; a record may come before or after its plan.
        """
        rtype = res["resourceType"]
        vocab = self.builder.vocabulary
        found = part_codings(res)
        entries = plan_entries(found, vocab, PART_ENTRY[rtype])
        if not entries:
            where = "category or description" if rtype == "Goal" else "category or code"
            self.refuse(
                f,
                rec,
                key,
                Refusal(
                    f"ignored: no care-planning coding on the {rtype} (its {where} codes are {codes_text(found)}); cquin reads "
                    f"{rtype} resources coded in {vocab.care_plan_category_system} or in the ruleset's care_planning code lists",
                    "category",
                    codes_text(found),
                    True,
                ),
            )
            return
        refusal = None if counted else part_refusal(res) or not_happened(res)
        patient = self.patient_of(res, "subject")
        if refusal is None and isinstance(patient, Refusal):
            refusal = patient
        if refusal is not None:
            self.refuse(f, rec, key, refusal)
            return
        assert isinstance(patient, _Patient)
        based_on = [k for r in as_list(res.get("basedOn")) if (k := reference_key(r, self.full_urls, self.bases))]
        authored = date_part(res.get("authoredOn")) if rtype == "ServiceRequest" else None
        self.parts.append(_Part(f.name, rec.line, key, patient, entries, based_on, authored, counted))

    def plan_row(
        self, plan: _Plan, entry: str, category: str, entry_on: str | None, file: str, line: int, ref: str
    ) -> dict[str, Any]:
        return {
            "patient_id": plan.patient.details.nhs_number,
            "plan_id": plan.plan_id,
            "agreed_on": plan.agreed_on,
            "shared_with_patient": plan.shared,
            "entry": entry,
            "category": category,
            "entry_on": entry_on,
            "_file": file,
            "_line": line,
            "_ref": ref,
        }

    def finish_care_plans(self) -> None:
        """Each need, goal and referral becomes a row of every agreed plan that names it; the rest are ignored with why."""
        rows = []
        unlinked: Counter[str] = Counter()
        for part in self.parts:
            rtype = part.key.split("/", 1)[0]
            keys = list(dict.fromkeys([k for k, _ in self.plan_refs.get(part.key, [])] + part.based_on))
            plans = [self.plans[k] for k in keys if k in self.plans]
            if not plans:
                if part.counted:
                    unlinked[rtype] += 1
                    continue
                self.builder.reject(part.file, part.line, None, None, self.unlinked_reason(part, keys), part.key)
                self.ignored[rtype] += 1
                continue
            nhs = part.patient.details.nhs_number
            other = next((p for p in plans if p.patient.details.nhs_number != nhs), None)
            if other is not None:
                reason = (
                    f"{rtype} {quoted(part.key)} is about patient {nhs}, but {quoted(other.key)}, which it belongs to, "
                    f"is about {other.patient.details.nhs_number}"
                )
                self.builder.reject(part.file, part.line, "subject", nhs, reason, part.key)
                continue
            for plan in plans:
                when = _later(part.authored_on, plan.agreed_on)
                rows += [self.plan_row(plan, e, c, when, part.file, part.line, part.key) for e, c in part.entries]
        self.stage("care_plans", rows)
        self.parts.clear()
        if unlinked:
            self.builder.note(
                f"FHIR: {sum(unlinked.values())} Condition(s) coded as care-planning needs are addressed by no agreed "
                "CarePlan (CarePlan.addresses): read as conditions only"
            )

    def unlinked_reason(self, part: _Part, keys: list[str]) -> str:
        rtype = part.key.split("/", 1)[0]
        refused = next((k for k in keys if k in self.unagreed), None)
        if refused is not None:
            return f"ignored: not part of an agreed care plan: {quoted(refused)} is not one ({self.unagreed[refused]})"
        missing = next((k for k in part.based_on if k not in self.plans), None)
        if missing is not None:
            return f"ignored: not part of an agreed care plan: its basedOn {quoted(missing)} is no CarePlan read in this export"
        via = PART_ELEMENT[rtype] + (" nor in its own basedOn" if rtype == "ServiceRequest" else "")
        return f"ignored: not part of an agreed care plan: no CarePlan names this {rtype} in {via}"


def _later(when: str | None, agreed: str | None) -> str | None:
    """An entry's own date when it is a full date later than the day the plan was agreed (else the plan's date)."""
    if when and agreed and len(when) == 10 and len(agreed) == 10 and when > agreed:
        return when
    return None


def _checked_details(details: PatientDetails) -> PatientDetails | Refusal:
    """A Patient's birth date and sex checked on the Patient itself, so a bad one is charged to the Patient's line.

    FHIR allows a partial birthDate (``1941``, ``1941-06``; R4 datatype ``date``); the canonical date of
    birth is a full date, so a partial one is refused here rather than on every episode's row.
    """
    birth = details.date_of_birth
    if birth is not None:
        text = birth.strip()
        try:
            day = dt.date.fromisoformat(text) if len(text) == 10 and text[4] == "-" and text[7] == "-" else None
        except ValueError:
            return Refusal(f"birthDate {quoted(text)} is not a real date", "date_of_birth", text)
        if day is None:
            partial = len(text) in (4, 7) and text.replace("-", "").isdigit()
            why = (
                "a partial date; cquin needs the full date of birth (YYYY-MM-DD)"
                if partial
                else "not a date (expected YYYY-MM-DD)"
            )
            return Refusal(f"birthDate {quoted(text)} is {why}", "date_of_birth", text)
        if not PLAUSIBLE_FROM <= text <= PLAUSIBLE_TO:
            return Refusal(
                f"birthDate {quoted(text)} is outside the plausible range {PLAUSIBLE_FROM} to {PLAUSIBLE_TO}",
                "date_of_birth",
                text,
            )
    if details.sex is not None and details.sex.strip().lower() not in FHIR_GENDER.values():
        return Refusal(
            f"gender {quoted(details.sex)} is not a FHIR administrative gender (male, female, other, unknown)", "sex", details.sex
        )
    return details


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(FhirAdapter)
