"""How single FHIR R4 resources become canonical values: the ``fhir`` adapter's mapping rules.

Each function looks at one resource and returns the canonical values it
carries, or a :class:`Refusal` saying in plain words why the resource cannot
be used.  Nothing here knows about files, references between resources or the
dataset builder; :mod:`cquin.adapters.fhir` does that.

Long because each FHIR resource type has its own short mapping function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stdnum.gb import nhs as nhs_number

from cquin.adapters.fhir_read import date_part
from cquin.dataset.checks import nhs_number_problem

if TYPE_CHECKING:
    from cquin.dataset import Vocabulary

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
ICD10_SYSTEMS = ("http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-uk")
CONDITION_SYSTEMS = {SNOMED: "snomed", **{s: "icd10" for s in ICD10_SYSTEMS}}

# The FHIR mapping convention for PAM (adapter conventions, not CQUIN policy):
# an Observation coded with one of these SNOMED CT concepts is a PAM result.
PAM_LEVEL_CODE = "962851000000103"  # |Patient Activation Measure level (observable entity)|, used by NHS Digital for CSDS
PAM_SCORE_CODE = "925431000000109"  # PAM-13 score, as used in UK Renal Data Collaboration extracts

# GPPS answers are QuestionnaireResponse items with these linkIds.
GPPS_LINK_IDS = {"q32": "gpps_q32", "q33": "gpps_q33"}

FHIR_GENDER = {"male": "male", "female": "female", "other": "indeterminate", "unknown": "unknown"}

# Statuses meaning the thing was not done or was recorded by mistake.
NOT_HAPPENED = {
    "EpisodeOfCare": {"entered-in-error", "planned", "waitlist", "cancelled"},
    "Encounter": {"entered-in-error", "planned", "cancelled"},
    "Procedure": {"entered-in-error", "not-done", "preparation"},
    "Observation": {"entered-in-error", "cancelled"},
    "QuestionnaireResponse": {"entered-in-error", "in-progress", "stopped"},
}


@dataclass(frozen=True)
class Refusal:
    """Why a resource cannot be used: ``ignored`` marks resources cquin has no use for (not errors in them)."""

    reason: str
    column: str | None = None
    value: str | None = None
    ignored: bool = False


def quoted(text: Any, limit: int = 60) -> str:
    s = str(text)
    return "'" + (s if len(s) <= limit else s[: limit - 3] + "...") + "'"


def as_list(value: Any) -> list[Any]:
    """A repeating element as a list: a lone object is one item; any other malformed value is none."""
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def codings(concepts: Any) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept, or of a list of them."""
    if isinstance(concepts, dict):
        concepts = [concepts]
    out: list[dict[str, Any]] = []
    for concept in concepts if isinstance(concepts, list) else []:  # malformed shapes have no codings
        coding = concept.get("coding") if isinstance(concept, dict) else None
        out.extend(c for c in (coding if isinstance(coding, list) else []) if isinstance(c, dict))
    return out


def codes_text(found: Iterable[dict[str, Any]]) -> str:
    return ", ".join(f"{c.get('system') or '(no system)'}|{c.get('code') or '(no code)'}" for c in found) or "none"


def not_happened(resource: dict[str, Any]) -> Refusal | None:
    """A refusal when the resource's status says it did not happen or was recorded in error."""
    rtype = resource["resourceType"]
    status = resource.get("status")
    if isinstance(status, str) and status in NOT_HAPPENED.get(rtype, ()):
        return Refusal(
            f"ignored: {rtype} status is {status!r}, so it did not happen (or was recorded in error)", "status", status, True
        )
    if rtype == "Condition":
        for c in codings(resource.get("verificationStatus")):
            if c.get("code") in ("entered-in-error", "refuted"):
                return Refusal(f"ignored: Condition verification status is {c['code']!r}", "verificationStatus", c["code"], True)
    return None


# ---------------------------------------------------------------------- Patient


@dataclass(frozen=True)
class PatientDetails:
    nhs_number: str
    date_of_birth: str | None
    sex: str | None
    verification: str | None = None  # UK Core NHS number verification status code (01 = present and verified)


# UK Core (and CareConnect before it) carry the NHS number's verification status as an extension on the
# identifier: https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus, coded
# in https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland (01-08, the NHS Data
# Dictionary's NHS NUMBER STATUS INDICATOR CODE).
VERIFICATION_EXTENSIONS = ("Extension-UKCore-NHSNumberVerificationStatus", "Extension-CareConnect-NHSNumberVerificationStatus")


def verification_status(identifier: dict[str, Any]) -> str | None:
    """The verification status code on an NHS number identifier, if it has one."""
    for ext in as_list(identifier.get("extension")):
        url = ext.get("url") if isinstance(ext, dict) else None
        if isinstance(url, str) and any(name in url for name in VERIFICATION_EXTENSIONS):
            for c in codings(ext.get("valueCodeableConcept")):
                if isinstance(c.get("code"), str):
                    return c["code"].strip()
    return None


def patient_details(resource: dict[str, Any], identifier_system: str) -> PatientDetails | Refusal:
    """The NHS number (from the identifier with ``identifier_system``), date of birth and sex of a Patient."""
    identifiers = [i for i in as_list(resource.get("identifier")) if isinstance(i, dict)]
    values = sorted({str(i.get("value")).strip() for i in identifiers if i.get("system") == identifier_system and i.get("value")})
    if not values:
        systems = sorted({str(i.get("system")) for i in identifiers if i.get("system")})
        has = f"its identifier systems are: {', '.join(systems)}" if systems else "it has no identifiers with a system"
        return Refusal(
            f"no NHS number: the Patient has no identifier with system {identifier_system} ({has}); "
            "cquin keys patients by NHS number",
            "identifier",
            "; ".join(systems) or None,
        )
    if len(values) > 1:
        return Refusal(f"several different NHS numbers ({', '.join(values)}): one patient must have one", "identifier", values[0])
    value = values[0]
    problem = nhs_number_problem(value)
    if problem is not None:
        return Refusal(problem, "patient_id", value)
    gender = resource.get("gender")
    sex = FHIR_GENDER.get(gender, gender) if isinstance(gender, str) else None
    birth = resource.get("birthDate")
    status = next(
        (s for i in identifiers if i.get("system") == identifier_system and (s := verification_status(i)) is not None), None
    )
    return PatientDetails(nhs_number.compact(value), birth if isinstance(birth, str) else None, sex, status)


# ---------------------------------------------------------------------- Condition


def condition_codes(resource: dict[str, Any]) -> list[tuple[str, str]] | Refusal:
    """(code_system, code) for each SNOMED CT or ICD-10 coding of a Condition."""
    found = codings(resource.get("code"))
    usable = []
    for c in found:
        system, code = c.get("system"), c.get("code")
        if isinstance(system, str) and system in CONDITION_SYSTEMS and isinstance(code, str) and code.strip():
            usable.append((CONDITION_SYSTEMS[system], code.strip()))
    if usable:
        return list(dict.fromkeys(usable))
    systems = sorted({str(c.get("system") or "(no system)") for c in found})
    if systems:
        what = f"its codes are in {', '.join(systems)}"
    else:
        text = (resource.get("code") or {}).get("text") if isinstance(resource.get("code"), dict) else None
        what = f"it has no coded code (text {quoted(text)})" if text else "it has no code"
    return Refusal(
        f"no SNOMED CT or ICD-10 code: {what}; cquin reads conditions coded in {SNOMED} or {ICD10_SYSTEMS[0]}",
        "code",
        codes_text(found),
    )


NO_LONGER_PRESENT = ("inactive", "remission", "resolved")  # FHIR R4 condition-clinical codes


def abatement_date(resource: dict[str, Any]) -> str | None:
    """When the record says the condition abated: abatementDateTime, else abatementPeriod's end (or start)."""
    when = date_part(resource.get("abatementDateTime"))
    period = resource.get("abatementPeriod")
    if when is None and isinstance(period, dict):
        when = date_part(period.get("end")) or date_part(period.get("start"))
    return when


def resolved_before(resource: dict[str, Any], before: Any) -> tuple[str, str] | None:
    """(clinical status, abatement date) when the Condition is recorded as no longer present since before ``before``."""
    if before is None:
        return None
    status = next((c.get("code") for c in codings(resource.get("clinicalStatus")) if c.get("code") in NO_LONGER_PRESENT), None)
    if status is None:
        return None
    when = abatement_date(resource)
    if when is None or len(when) != 10 or when >= before.isoformat():
        return None
    return str(status), when


def condition_date(resource: dict[str, Any]) -> str | None:
    """recordedDate, else onsetDateTime: the date the condition was on the record."""
    return date_part(resource.get("recordedDate")) or date_part(resource.get("onsetDateTime"))


# ---------------------------------------------------------------------- Observation (PAM)


@dataclass(frozen=True)
class PamResult:
    kind: str  # "pam_level" or "pam_score"
    value: str
    assessed_on: str | None


def pam_result(resource: dict[str, Any]) -> PamResult | Refusal:
    """The PAM level or score an Observation records (by its SNOMED CT code)."""
    found = codings(resource.get("code"))
    kinds = {c.get("code") for c in found if c.get("system") == SNOMED and isinstance(c.get("code"), str)}
    if PAM_LEVEL_CODE in kinds:
        kind, value = "pam_level", _level_value(resource)
    elif PAM_SCORE_CODE in kinds:
        kind, value = (
            "pam_score",
            _number(resource.get("valueQuantity", {}).get("value") if isinstance(resource.get("valueQuantity"), dict) else None),
        )
        value = value or _number(resource.get("valueDecimal")) or _number(resource.get("valueInteger"))
    else:
        return Refusal(
            f"ignored: not a PAM observation (code {codes_text(found)}); cquin reads only PAM scores ({SNOMED}|{PAM_SCORE_CODE}) "
            f"and levels ({SNOMED}|{PAM_LEVEL_CODE})",
            "code",
            codes_text(found),
            True,
        )
    if value is None:
        expected = (
            "valueInteger, valueQuantity or valueCodeableConcept" if kind == "pam_level" else "valueQuantity or valueDecimal"
        )
        return Refusal(f"PAM {'level' if kind == 'pam_level' else 'score'} observation has no value ({expected} expected)", kind)
    when = date_part(resource.get("effectiveDateTime"))
    if when is None and isinstance(resource.get("effectivePeriod"), dict):
        when = date_part(resource["effectivePeriod"].get("start"))
    return PamResult(kind, value, when)


def _number(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal | float):
        d = Decimal(str(value))
        if not d.is_finite() or abs(d.adjusted()) > 30:
            # Far outside any score (1e5000, 1e30000000): passed on as written, for the builder to reject as out of
            # range; never expanded to its digits, which for a large exponent would take hours.
            return str(d)
        return str(int(d)) if d == d.to_integral_value() else format(d.normalize(), "f")
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _level_value(resource: dict[str, Any]) -> str | None:
    direct = _number(resource.get("valueInteger"))
    if direct is None and isinstance(resource.get("valueQuantity"), dict):
        direct = _number(resource["valueQuantity"].get("value"))
    if direct is not None:
        return direct
    texts: list[str] = []
    concept = resource.get("valueCodeableConcept")
    if isinstance(concept, dict):
        for c in codings(concept):
            texts += [t for t in (c.get("code"), c.get("display")) if isinstance(t, str)]
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
    if isinstance(resource.get("valueString"), str):
        texts.append(resource["valueString"])
    for t in texts:  # "2", "Level 2", "PAM level 2"
        m = re.fullmatch(r"\s*(?:(?:pam\s+)?level\s*)?(\d+)\s*", t, re.IGNORECASE)
        if m:
            return m.group(1)
    return texts[0].strip() if texts else None  # the builder says why it is not a level


# ---------------------------------------------------------------------- QuestionnaireResponse (GPPS)


def gpps_answers(resource: dict[str, Any], options: Mapping[str, tuple[str, ...]]) -> dict[str, str | None] | Refusal:
    """The answers to GPPS Q32 and Q33 (items by linkId), preferring the answer text that is one of the options."""
    answers: dict[str, str | None] = {}
    for item in _items(resource.get("item")):
        link = str(item.get("linkId") or "").strip().lower()
        if link in GPPS_LINK_IDS and GPPS_LINK_IDS[link] not in answers:
            field = GPPS_LINK_IDS[link]
            answers[field] = _answer(item, options.get(field, ()))
    if not answers:
        return Refusal("ignored: not a GPPS questionnaire response (no items with linkId Q32 or Q33)", "item", None, True)
    return {field: answers.get(field) for field in GPPS_LINK_IDS.values()}


def _items(items: Any) -> Iterable[dict[str, Any]]:
    for item in as_list(items):
        if not isinstance(item, dict):
            continue
        yield item
        yield from _items(item.get("item"))
        for answer in as_list(item.get("answer")):
            if isinstance(answer, dict):
                yield from _items(answer.get("item"))


def normalise_answer(text: str) -> str:
    return " ".join(text.split()).casefold()


def _answer(item: dict[str, Any], options: tuple[str, ...]) -> str | None:
    candidates: list[str] = []
    for answer in as_list(item.get("answer")):
        if not isinstance(answer, dict):
            continue
        if isinstance(answer.get("valueString"), str):
            candidates.append(answer["valueString"])
        coding = answer.get("valueCoding")
        if isinstance(coding, dict):
            candidates += [t for t in (coding.get("display"), coding.get("code")) if isinstance(t, str)]
    candidates = [c for c in candidates if c.strip()]
    for c in candidates:
        if normalise_answer(c) in options:
            return c
    return candidates[0] if candidates else None


# ---------------------------------------------------------------------- Procedure / Encounter (conversations)


def is_conversation(found: Iterable[dict[str, Any]], conversation_codes: Mapping[str, frozenset[str]]) -> bool:
    """True when a coding is a care and support planning conversation code (SNOMED CT, or a local system by URI)."""
    for c in found:
        system, code = c.get("system"), c.get("code")
        key = "snomed" if system == SNOMED else system
        if isinstance(key, str) and isinstance(code, str) and code in conversation_codes.get(key, ()):
            return True
    return False


CARE_PLAN_DONE = {"draft", "revoked", "entered-in-error", "unknown", "on-hold"}  # not (or no longer) an agreed plan


def care_plan_codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The codings that may mark a personalised care and support plan: CarePlan.category (and a non-standard code)."""
    return codings(resource.get("category")) + codings(resource.get("code"))


def care_plan_refusal(resource: dict[str, Any]) -> Refusal | None:
    status, intent = resource.get("status"), resource.get("intent")
    if isinstance(status, str) and status in CARE_PLAN_DONE:
        return Refusal(f"ignored: CarePlan status is {status!r}, so it is not an agreed plan", "status", status, True)
    if isinstance(intent, str) and intent not in ("plan", "order"):
        return Refusal(f"ignored: CarePlan intent is {intent!r}, not an agreed plan (plan or order)", "intent", intent, True)
    return None


def care_plan_date(resource: dict[str, Any]) -> str | None:
    """When the plan was agreed: CarePlan.created, else period.start."""
    when = date_part(resource.get("created"))
    if when is None and isinstance(resource.get("period"), dict):
        when = date_part(resource["period"].get("start"))
    return when


def conversation_codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The codings that may mark a conversation: Procedure.code; Encounter.type and reasonCode."""
    if resource["resourceType"] == "Procedure":
        return codings(resource.get("code"))
    return codings(resource.get("type")) + codings(resource.get("reasonCode"))


def conversation_date(resource: dict[str, Any]) -> str | None:
    """Procedure performedDateTime or performedPeriod.start; Encounter period.start."""
    if resource["resourceType"] == "Procedure":
        when = date_part(resource.get("performedDateTime"))
        period = resource.get("performedPeriod")
    else:
        when, period = None, resource.get("period")
    if when is None and isinstance(period, dict):
        when = date_part(period.get("start"))
    return when


# ---------------------------------------------------------------------- What agreed care plans say (care_plans)
#
# FHIR R4 (v4.0.1) spreads a care plan over several resources (https://hl7.org/fhir/R4/careplan.html):
# CarePlan.addresses is "Reference(Condition)", the health concerns the plan deals with; CarePlan.goal is
# "Reference(Goal)"; CarePlan.activity.reference is an activity done as its own request (Appointment,
# ServiceRequest, Task, ...), and CarePlan.activity.detail (with detail.code) an activity described within the
# plan.  A Goal (https://hl7.org/fhir/R4/goal.html) is categorised by Goal.category and described by
# Goal.description (a CodeableConcept); a ServiceRequest (https://hl7.org/fhir/R4/servicerequest.html, whose
# alternate names include "referral") names the plan it carries out in ServiceRequest.basedOn
# ("Reference(CarePlan | ServiceRequest | MedicationRequest)") and its date in authoredOn.  Which care-planning
# category a need, goal, action or referral is in is a coding in the ruleset's care_planning.category_system
# (code = the category id), a conversation element one in its element_system (code = the element id), or a code
# of care_planning's code lists (cquin.dataset.Vocabulary.care_plan_category_codes).

# Neither FHIR R4 nor UK Core has an element saying a care plan was shared with (given to) the patient, so cquin
# defines this extension on CarePlan, valueBoolean (absent: not recorded).
SHARED_WITH_PATIENT_EXTENSION = "https://cquin.example/fhir/StructureDefinition/care-plan-shared-with-patient"

GOAL_NOT_AGREED = {"cancelled", "entered-in-error", "rejected"}  # R4 GoalLifecycleStatus codes
ACTIVITY_NOT_DONE = {"cancelled", "entered-in-error"}  # R4 CarePlanActivityStatus codes
REFERRAL_STATUSES = {"active", "completed"}  # R4 RequestStatus: a referral that was made
# R4 RequestIntent: plan, order, and order's specialisations (original-, reflex-, filler-, instance-order).
REFERRAL_INTENTS = {"plan", "order", "original-order", "reflex-order", "filler-order", "instance-order"}
PART_ELEMENT = {"Condition": "CarePlan.addresses", "Goal": "CarePlan.goal", "ServiceRequest": "CarePlan.activity.reference"}
PART_ENTRY = {"Condition": "need", "Goal": "goal", "ServiceRequest": "referral"}


def plan_entries(found: Iterable[dict[str, Any]], vocab: Vocabulary, entry: str | None) -> list[tuple[str, str]]:
    """(entry, category or element id) for each care-planning coding among ``found``, without repeats.

    ``entry`` is what the resource records (need for a Condition, goal for a Goal, referral for a
    ServiceRequest); None for a CarePlan.activity.detail.code, which is an ``action`` when coded in the category
    system, an ``element`` when coded in the element system, and what the code list says for a listed code.
    A code in the category or element system is passed on as written, so a code that is not one of the ruleset's
    ids is rejected by the dataset checks with its value shown.
    """
    out: list[tuple[str, str]] = []
    for c in found:
        system, code = c.get("system"), c.get("code")
        if not isinstance(system, str) or not isinstance(code, str) or not code.strip():
            continue
        code = code.strip()
        if system == vocab.care_plan_category_system:
            out.append((entry or "action", code))
        elif system == vocab.care_plan_element_system:
            if entry is None:
                out.append(("element", code))
        else:
            listed = vocab.care_plan_category_codes.get("snomed" if system == SNOMED else system, {}).get(code)
            if listed is not None:
                kind, ident = listed
                if entry is None:
                    out.append((kind, ident))
                elif kind != "element":
                    out.append((entry, ident))
    return list(dict.fromkeys(out))


def part_codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The codings that may say a need's, goal's or referral's category (Condition code and category, Goal
    category and description, ServiceRequest category and code)."""
    first = {"Condition": "code", "Goal": "category", "ServiceRequest": "category"}[resource["resourceType"]]
    second = {"Condition": "category", "Goal": "description", "ServiceRequest": "code"}[resource["resourceType"]]
    return codings(resource.get(first)) + codings(resource.get(second))


def part_refusal(resource: dict[str, Any]) -> Refusal | None:
    """Why a Goal or ServiceRequest does not record an agreed goal or a referral made (None when it does)."""
    rtype = resource["resourceType"]
    if rtype == "Goal":
        status = resource.get("lifecycleStatus")
        if isinstance(status, str) and status in GOAL_NOT_AGREED:
            return Refusal(
                f"ignored: Goal lifecycleStatus is {status!r}, so it is not an agreed goal", "lifecycleStatus", status, True
            )
        return None
    if rtype != "ServiceRequest":
        return None
    status, intent = resource.get("status"), resource.get("intent")
    if status not in REFERRAL_STATUSES:
        return Refusal(
            f"ignored: ServiceRequest status is {status!r}, so it is not a referral made (active or completed)",
            "status",
            str(status),
            True,
        )
    if intent not in REFERRAL_INTENTS:
        return Refusal(
            f"ignored: ServiceRequest intent is {intent!r}, not a referral made (plan or order)", "intent", str(intent), True
        )
    if resource.get("doNotPerform") is True:
        return Refusal("ignored: ServiceRequest doNotPerform is true, so nothing was referred", "doNotPerform", "true", True)
    return None


def activity_entries(resource: dict[str, Any], vocab: Vocabulary) -> list[tuple[str, str]]:
    """The actions and conversation elements a CarePlan records in its own activity.detail.code."""
    out: list[tuple[str, str]] = []
    for activity in as_list(resource.get("activity")):
        detail = activity.get("detail") if isinstance(activity, dict) else None
        if not isinstance(detail, dict) or detail.get("doNotPerform") is True or detail.get("status") in ACTIVITY_NOT_DONE:
            continue
        out += plan_entries(codings(detail.get("code")), vocab, None)
    return list(dict.fromkeys(out))


def plan_references(resource: dict[str, Any]) -> list[tuple[str, Any]]:
    """(element, Reference) for each resource the plan names as a concern, goal or activity."""
    refs: list[tuple[str, Any]] = [("CarePlan.addresses", r) for r in as_list(resource.get("addresses"))]
    refs += [("CarePlan.goal", r) for r in as_list(resource.get("goal"))]
    for activity in as_list(resource.get("activity")):
        if isinstance(activity, dict) and isinstance(activity.get("reference"), dict):
            refs.append(("CarePlan.activity.reference", activity["reference"]))
    return refs


def shared_with_patient(resource: dict[str, Any]) -> str | None:
    """true / false from the cquin extension on the CarePlan; None when not recorded.

    A value that is not a boolean is passed on as written, for the dataset checks to reject with it shown.
    """
    for ext in as_list(resource.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == SHARED_WITH_PATIENT_EXTENSION:
            value = ext.get("valueBoolean")
            if isinstance(value, bool):
                return "true" if value else "false"
            return None if value is None else str(value)
    return None
