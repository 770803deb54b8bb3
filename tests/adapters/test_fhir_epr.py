"""FHIR as EPRs send it (issue 14 item 3): clinical status and abatement, CarePlan, NHS number
verification status, contained resources, and paged Bulk exports listed by a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cquin.exceptions import DataError
from tests.adapters.test_fhir import (
    NHS,
    assert_balanced,
    condition,
    episode,
    load,
    patient,
    rejections,
    rows,
    vocab,  # noqa: F401 - the module-scoped fixture
    write_bulk,
)

ICD10 = "http://hl7.org/fhir/sid/icd-10"
CARE_PLANNING = "https://cquin.example/CodeSystem/care-planning"
VERIFICATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
VERIFICATION_CODES = "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"


def with_status(res: dict, status: str, abated: str | None = None) -> dict:
    res = res | {"clinicalStatus": {"coding": [{"system": CLINICAL, "code": status}]}}
    return res | ({"abatementDateTime": abated} if abated else {})


def base(*more: dict) -> tuple[dict, ...]:
    return (patient("p1"), episode("ep1", "p1", "2016-01-01"), *more)


# ---------------------------------------------------------------- clinicalStatus and abatement


def test_a_condition_resolved_before_year_1_does_not_identify_an_ltc(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(with_status(condition("c1", "p1"), "resolved", "2016-12-31"))))
    assert rows(ds, "conditions", "code") == []
    [(_f, _l, ref, reason)] = rejections(ds)
    assert ref == "Condition/c1" and reason.startswith("ignored: Condition clinicalStatus is 'resolved', abated 2016-12-31")


def test_a_condition_resolved_during_year_1_still_counts(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(with_status(condition("c1", "p1"), "inactive", "2017-04-01"))))
    assert rows(ds, "conditions", "code") == [("44054006",)]


def test_a_resolved_condition_without_an_abatement_date_still_counts(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(with_status(condition("c1", "p1"), "resolved"))))
    assert rows(ds, "conditions", "code") == [("44054006",)]


def test_a_resolved_cancer_counts_by_its_recorded_date(vocab, tmp_path: Path) -> None:  # noqa: F811
    cancer = with_status(condition("c1", "p1", [{"system": ICD10, "code": "C50.9"}]), "remission", "2015-01-01")
    ds = load(vocab, write_bulk(tmp_path, *base(cancer)))
    assert rows(ds, "conditions", "code_system, code") == [("icd10", "C50.9")]
    assert rejections(ds) == []


# ---------------------------------------------------------------- CarePlan


def care_plan(cid: str, code: str = "pcsp-agreed", **extra: object) -> dict:
    return {
        "resourceType": "CarePlan",
        "id": cid,
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": CARE_PLANNING, "code": code}]}],
        "subject": {"reference": "Patient/p1"},
        "created": "2018-05-04T09:00:00+01:00",
    } | extra


def test_a_care_plan_in_the_rulesets_list_is_a_conversation_on_the_day_it_was_created(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(care_plan("cp1", author={"reference": "Practitioner/S7"}))))
    assert rows(ds, "conversations", "patient_id, CAST(held_on AS VARCHAR), staff_id") == [("9990000042", "2018-05-04", "S7")]


def test_a_care_plan_of_another_category_is_ignored(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(care_plan("cp1", code="735324008"))))
    assert rows(ds, "conversations", "patient_id") == []
    assert rejections(ds)[0][3].startswith("ignored: not a personalised care and support plan")


@pytest.mark.parametrize("change", [{"status": "draft"}, {"status": "revoked"}, {"intent": "proposal"}])
def test_a_care_plan_not_agreed_is_ignored(vocab, tmp_path: Path, change: dict) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(care_plan("cp1", **change))))
    assert rows(ds, "conversations", "patient_id") == []
    assert "not an agreed plan" in rejections(ds)[0][3]


# ---------------------------------------------------------------- NHS number verification status


def verified(pid: str, nhs: str, code: str) -> dict:
    ext = [{"url": VERIFICATION, "valueCodeableConcept": {"coding": [{"system": VERIFICATION_CODES, "code": code}]}}]
    return patient(pid, nhs) | {"identifier": [{"system": NHS, "value": nhs, "extension": ext}]}


def test_nhs_number_verification_status_is_reported_and_unverified_numbers_counted(vocab, tmp_path: Path) -> None:  # noqa: F811
    export = write_bulk(
        tmp_path,
        verified("p1", "9990000042", "01"),
        verified("p2", "9990000018", "02"),
        patient("p3", "9990000026"),
        episode("e1", "p1"),
        episode("e2", "p2"),
        episode("e3", "p3"),
    )
    ds = load(vocab, export)
    note = next(n for n in ds.ledger.notes if "NHS number verification status" in n)
    assert "01: 1" in note and "02: 1" in note and "(not recorded): 1" in note
    assert "2 of 3 NHS numbers are not recorded as verified" in note


# ---------------------------------------------------------------- contained resources


def test_a_contained_patient_is_matched_to_the_patient_with_its_nhs_number(vocab, tmp_path: Path) -> None:  # noqa: F811
    inner = {"resourceType": "Patient", "id": "pp", "identifier": [{"system": NHS, "value": "9990000042"}]}
    cond = condition("c1", None) | {"contained": [inner], "subject": {"reference": "#pp"}}
    ds = load(vocab, write_bulk(tmp_path, *base(cond)))
    assert rows(ds, "conditions", "patient_id, code") == [("9990000042", "44054006")]


def test_a_contained_practitioner_gives_the_staff_id(vocab, tmp_path: Path) -> None:  # noqa: F811
    proc = {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "contained": [{"resourceType": "Practitioner", "id": "dr", "identifier": [{"value": "S00042"}]}],
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": CARE_PLANNING, "code": "pcsp-conversation"}]},
        "performedDateTime": "2017-09-01",
        "performer": [{"actor": {"reference": "#dr"}}],
    }
    ds = load(vocab, write_bulk(tmp_path, *base(proc)))
    assert rows(ds, "conversations", "staff_id") == [("S00042",)]


def test_a_local_reference_to_nothing_contained_is_rejected_saying_so(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, write_bulk(tmp_path, *base(condition("c1", None) | {"subject": {"reference": "#gone"}})))
    assert rejections(ds)[0][3] == "subject '#gone' is no contained resource, not a Patient"


# ---------------------------------------------------------------- paged Bulk exports


def paged(folder: Path, pages: int = 3, missing: int | None = None) -> Path:
    write_bulk(folder, *base())
    outputs = [{"type": "Patient", "url": "https://x.example/Patient.000.ndjson"}]
    outputs.append({"type": "EpisodeOfCare", "url": "https://x.example/EpisodeOfCare.000.ndjson"})
    for n in range(pages):
        name = f"Condition.{n:03d}.ndjson"
        outputs.append({"type": "Condition", "url": f"https://x.example/{name}", "count": 2})
        if n != missing:
            lines = [json.dumps(condition(f"c{n}{k}", "p1") | {"recordedDate": f"2017-0{n + 1}-1{k}"}) for k in range(2)]
            (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"transactionTime": "2019-04-01T00:00:00Z", "output": outputs}))
    return folder


def test_every_page_a_manifest_lists_is_read(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, paged(tmp_path))
    assert rows(ds, "conditions", "count(*)") == [(6,)]
    assert sorted(f for f in ds.ledger.files if f.startswith("Condition")) == [f"Condition.{n:03d}.ndjson" for n in range(3)]
    assert_balanced(ds)


def test_a_page_the_manifest_lists_but_the_folder_lacks_stops_the_load(vocab, tmp_path: Path) -> None:  # noqa: F811
    with pytest.raises(DataError, match=r"manifest.json lists 1 file\(s\) that are not in the folder \(Condition.001.ndjson\)"):
        load(vocab, paged(tmp_path, missing=1))
