"""The fhir adapter against the bad-input corpus: every hostile FHIR file gives a clear error or reasoned rejections.

Two people (Patient and EpisodeOfCare files) and one hostile file beside them,
as NDJSON (one resource a line) or a Bundle; see :mod:`tests.hostile.corpus`
for what is asserted.  An NDJSON line that cannot be read is one rejected
record; a Bundle is one JSON document, so a Bundle that cannot be parsed is
refused whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cquin.dataset import Vocabulary
from tests.hostile.corpus import Case, Read, Refused, check

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SNOMED = "http://snomed.info/sct"
DIABETES = "44054006"  # |Diabetes mellitus type 2 (disorder)|
HYPERTENSION = "38341003"  # |Hypertensive disorder, systemic arterial (disorder)|


def patient(n: int, nhs: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": NHS, "value": nhs}],
        "gender": "female",
        "birthDate": "1941-06-12",
    }


def episode(n: int, start: str = "2016-11-03") -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "id": f"e{n}",
        "status": "active",
        "patient": {"reference": f"Patient/p{n}"},
        "period": {"start": start},
    }


def condition(n: int, subject: Any = None, code: str = DIABETES) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": f"c{n}",
        "code": {"coding": [{"system": SNOMED, "code": code}]},
        "recordedDate": "2015-03-10",
    }
    if subject is not None:
        res["subject"] = subject
    return res


def ndjson(*items: dict[str, Any] | str) -> bytes:
    return "".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items).encode()


def bundle(*resources: Any, full_urls: bool = False) -> bytes:
    entries = [{"resource": r} | ({"fullUrl": f"urn:uuid:{i}"} if full_urls else {}) for i, r in enumerate(resources, 1)]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


PEOPLE = {
    "Patient.000.ndjson": ndjson(patient(1, "9991000011"), patient(2, "9991000038")),
    "EpisodeOfCare.000.ndjson": ndjson(episode(1), episode(2)),
}
C1 = condition(1, {"reference": "Patient/p1"})
CONDITIONS = "SELECT patient_id, code FROM conditions ORDER BY _line"
C1_ARRIVES = (CONDITIONS, [("9991000011", DIABETES)])
IDS = "SELECT patient_id FROM patients ORDER BY 1"


def beside_people(name: str, data: bytes, case_id: str, expect: Read | Refused) -> Case:
    return Case(case_id, "fhir", {**PEOPLE, name: data}, name, expect)


def alone(name: str, data: bytes, case_id: str, expect: Read | Refused) -> Case:
    return Case(case_id, "fhir", {name: data}, name, expect, source=name)


CASES = [
    # ------------------------------------------------------------------ references and resource types
    beside_people(
        "Condition.000.ndjson",
        ndjson(
            C1,
            condition(2, {"reference": "Patient/nobody"}),
            condition(3),
            condition(4, {"display": "a name but no reference"}),
            condition(5, {"reference": "Practitioner/p1"}),
            condition(6, {"reference": "urn:uuid:0d4c-not-in-any-bundle"}),
        ),
        "missing-and-wrong-references",
        Read(
            6,
            (
                (2, "unknown patient 'Patient/nobody': no Patient resource with that id was read"),
                (3, "no subject: a Condition must reference its Patient"),
                (4, "subject has no reference"),
                (5, "subject 'Practitioner/p1' is not a Patient"),
                (6, "matches no entry's fullUrl in the bundle"),
            ),
            C1_ARRIVES,
        ),
    ),
    beside_people(
        "Other.000.ndjson",
        ndjson(
            {"resourceType": "Spaceship", "id": "x1"},
            {"resourceType": "Immunization", "id": "i1"},
            {"resourceType": "Practitioner", "id": "n1"},
            C1,
        ),
        "unknown-resource-types-are-ignored-with-a-reason",
        Read(
            4,
            (
                (1, "ignored: cquin does not use Spaceship resources"),
                (2, "ignored: cquin does not use Immunization resources"),
                (3, "ignored: staff come from staff.csv"),
            ),
            C1_ARRIVES,
            "resources cquin does not use",
        ),
    ),
    alone(
        "bundle.json",
        bundle(
            {**patient(1, "9991000011"), "id": None},
            {**episode(1), "patient": {"reference": "urn:uuid:1"}},
            {**episode(2), "patient": {"reference": "urn:uuid:404"}},
            full_urls=True,
        ),
        "bundle-urn-reference-to-no-entry",
        Read(
            3,
            ((3, "unknown patient: reference 'urn:uuid:404' matches no entry's fullUrl in the bundle"),),
            (IDS, [("9991000011",)]),
        ),
    ),
    alone(
        "bundle.json",
        json.dumps(
            {
                "resourceType": "Bundle",
                "entry": [
                    7,
                    None,
                    "text",
                    {"resource": 5},
                    {"resource": {"id": "no-type"}},
                    {"resource": patient(1, "9991000011")},
                    {"resource": episode(1)},
                ],
            }
        ).encode(),
        "bundle-entries-that-are-not-resources",
        Read(7, tuple((i, "Bundle entry has no resource") for i in range(1, 6)), (IDS, [("9991000011",)])),
    ),
    alone(
        "bundle.json",
        b'{"resourceType": "Bundle", "entry": {"resource": {}}}',
        "bundle-entry-not-a-list",
        Refused("Bundle.entry is not a list"),
    ),
    # ------------------------------------------------------------------ truncated and malformed
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1) + json.dumps(condition(2, {"reference": "Patient/p2"})).encode()[:-25],
        "ndjson-truncated-mid-line",
        Read(2, ((2, "malformed JSON: Unterminated string"),), C1_ARRIVES),
    ),
    alone("bundle.json", bundle(patient(1, "9991000011"), episode(1))[:-30], "bundle-truncated", Refused("not JSON")),
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1, "{not json", "[1, 2]", "null", '{"resourceType": 5}'),
        "lines-that-are-not-resources",
        Read(
            5,
            (
                (2, "malformed JSON"),
                (3, "not a FHIR resource"),
                (4, "not a FHIR resource"),
                (5, "not a FHIR resource"),
            ),
            C1_ARRIVES,
        ),
    ),
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1, "[" * 100_000 + "]" * 100_000),
        "a-line-nested-100000-deep",
        Read(2, ((2, "malformed JSON: nested too deeply to read"),), C1_ARRIVES),
    ),
    alone(
        "bundle.json",
        b'{"resourceType": "Bundle", "entry": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "bundle-nested-100000-deep",
        Refused("nested too deeply to read"),
    ),
    beside_people(
        "Observation.000.ndjson",
        ndjson(
            {"resourceType": "Observation", "id": "o1", "status": "final"},
            '{"resourceType": "Observation", "id": "o2", "valueInteger": ' + "9" * 5000 + "}",
        ),
        "a-5000-digit-number",
        Read(2, ((1, "ignored: not a PAM observation"), (2, "malformed JSON: a value cannot be read"))),
    ),
    # ------------------------------------------------------------------ encodings, line endings, NULs
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1) + b'{"resourceType": "Condition", "id": "c\x002"}\n',
        "nul-inside-a-line",
        Read(2, ((2, "malformed JSON: Invalid control character"),), C1_ARRIVES),
    ),
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1) + '{"resourceType": "Condition", "id": "café"}\n'.encode("latin-1"),
        "latin-1-text",
        Refused("not UTF-8 text"),
    ),
    beside_people("Condition.000.ndjson", ndjson(C1).decode().encode("utf-16"), "utf-16", Refused("not UTF-8 text")),
    beside_people(
        "Condition.000.ndjson", b"\xef\xbb\xbf" + ndjson(C1, condition(2, {"reference": "Patient/p2"})), "utf-8-bom", Read(2)
    ),
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1).replace(b"\n", b"\r")
        + ndjson(condition(2, {"reference": "Patient/p2"})).replace(b"\n", b"\r\n")
        + ndjson(condition(3, {"reference": "Patient/p2"}, HYPERTENSION)),
        "mixed-line-endings",
        Read(3, (), (CONDITIONS, [("9991000011", DIABETES), ("9991000038", DIABETES), ("9991000038", HYPERTENSION)])),
    ),
    # ------------------------------------------------------------------ values
    alone(
        "Patient.000.ndjson",
        ndjson(patient(1, "9991000011"), patient(2, "99910000AB"), episode(1), episode(2)),
        "nhs-number-with-letters",
        Read(
            4,
            (
                (2, "NHS number '99910000AB' is not 10 digits"),
                (4, "unknown patient 'Patient/p2': that Patient record was rejected"),
            ),
            (IDS, [("9991000011",)]),
        ),
    ),
    alone(
        "Patient.000.ndjson",
        ndjson(
            patient(1, "9991000011"),
            patient(2, "9991000038"),
            patient(3, "9991000046"),
            episode(1),
            episode(2, "31/02/2018"),
            episode(3, "2018-13-01"),
        ),
        "impossible-dates",
        Read(
            6,
            ((5, "'31/02/2018' is not a date (expected YYYY-MM-DD)"), (6, "'2018-13-01' is not a real date")),
            (IDS, [("9991000011",)]),
        ),
    ),
    beside_people(
        "Condition.000.ndjson",
        ndjson(C1, {**condition(2, {"reference": "Patient/p2"}), "note": [{"text": "n" * 100_000}]}),
        "100000-character-text-in-an-unused-element",
        Read(2, (), (CONDITIONS, [("9991000011", DIABETES), ("9991000038", DIABETES)])),
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_hostile_fhir_file(case: Case, tmp_path: Path, vocab: Vocabulary):
    check(case, tmp_path / "source", vocab)
