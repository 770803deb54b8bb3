"""The fhir adapter: FHIR R4 Bundles and Bulk Data exports into canonical rows, every record accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cquin import plugins
from cquin.adapters.fhir import FhirAdapter
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError
from cquin.loading import load_dataset

FIXTURES = Path(__file__).parent.parent / "fixtures" / "fhir"
UK_BUNDLE = FIXTURES / "uk-bundle.json"
UK_BULK = FIXTURES / "uk-bulk"
# A genuine Synthea bulk export (Apache-2.0; see its README and LICENSE), copied into the repository.
SYNTHEA = Path(__file__).parent.parent / "fixtures" / "synthea-bulk-10-patients"
NHS = "https://fhir.nhs.uk/Id/nhs-number"
SCT = "http://snomed.info/sct"
P1, P2, P3 = "9990000018", "9990000026", "9990000034"


@pytest.fixture(scope="module")
def vocab():
    return load_ruleset("cquin_2017_19").vocabulary()


@pytest.fixture(scope="module")
def bundle(vocab):
    ds, name = load_dataset(UK_BUNDLE, vocab, adapter="fhir")
    assert name == "fhir"
    return ds


@pytest.fixture(scope="module")
def bulk(vocab):
    ds, _ = load_dataset(UK_BULK, vocab, adapter="fhir")
    return ds


def rows(ds, table: str, columns: str) -> list[tuple]:
    return ds.con.execute(f"SELECT {columns} FROM {table} ORDER BY ALL").fetchall()


def rejections(ds) -> list[tuple]:
    """(file, line, ref, reason) of every rejection."""
    return [(f, line, ref, reason) for f, line, ref, _col, _val, reason in ds.ledger.rejection_rows()]


def assert_balanced(ds) -> None:
    for name, stats in ds.ledger.files.items():
        assert stats.read == stats.accepted + stats.rejected, name
        rejected_lines = {(f, line) for f, line, _ref, _reason in rejections(ds) if f == name}
        assert stats.rejected == len(rejected_lines), name


# ---------------------------------------------------------------------- a small export written by each test


def patient(pid: str, nhs: str | None = "9990000042", **extra) -> dict:
    ident = [{"system": NHS, "value": nhs}] if nhs else [{"system": "https://example.org/mrn", "value": "M1"}]
    return {"resourceType": "Patient", "id": pid, "identifier": ident, "gender": "female", "birthDate": "1950-02-03"} | extra


def episode(eid: str, pid: str, start: str = "2017-04-01", **extra) -> dict:
    return {
        "resourceType": "EpisodeOfCare",
        "id": eid,
        "status": "active",
        "patient": {"reference": f"Patient/{pid}"},
        "period": {"start": start},
    } | extra


def condition(cid: str, pid: str | None, coding: list[dict] | None = None) -> dict:
    res = {
        "resourceType": "Condition",
        "id": cid,
        "code": {"coding": coding or [{"system": SCT, "code": "44054006"}]},
        "recordedDate": "2017-05-01",
    }
    if pid:
        res["subject"] = {"reference": f"Patient/{pid}"}
    return res


def pam(oid: str, pid: str, code: str, value: dict, when: str = "2017-06-01") -> dict:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": SCT, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": when,
    } | value


def write_bulk(folder: Path, *resources: dict, raw_lines: dict[str, list[str]] | None = None) -> Path:
    """A Bulk Data export: one NDJSON file per resource type, plus any raw lines appended to a type's file."""
    folder.mkdir(parents=True, exist_ok=True)
    by_type: dict[str, list[str]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(json.dumps(r))
    for t, lines in (raw_lines or {}).items():
        by_type.setdefault(t, []).extend(lines)
    for t, lines in by_type.items():
        (folder / f"{t}.000.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def load(vocab, path: Path, **options: str):
    ds, _ = load_dataset(path, vocab, adapter="fhir", options=options)
    assert_balanced(ds)
    return ds


# ---------------------------------------------------------------------- detection


def test_detects_a_bundle_file_a_bulk_export_and_synthea_output(tmp_path):
    adapter = FhirAdapter()
    assert adapter.detect(UK_BUNDLE)
    assert adapter.detect(UK_BULK)
    assert adapter.detect(SYNTHEA)
    assert plugins.detect_adapter(UK_BULK).name == "fhir"


def test_does_not_detect_csv_folders_or_json_that_is_not_a_bundle(tmp_path):
    (tmp_path / "patients.csv").write_text("patient_id,served_from\n", encoding="utf-8")
    (tmp_path / "manifest.json").write_text('{"transactionTime": "2019-01-01T00:00:00Z"}', encoding="utf-8")
    (tmp_path / "settings.json").write_text('{"colour": "blue"}', encoding="utf-8")
    assert not FhirAdapter().detect(tmp_path)


# ---------------------------------------------------------------------- the UK-shaped fixture


def test_uk_bundle_every_record_is_counted_and_balances(bundle):
    stats = bundle.ledger.files["uk-bundle.json"]
    assert (stats.read, stats.accepted, stats.rejected) == (23, 20, 3)
    assert_balanced(bundle)


def test_each_episode_of_care_is_one_patients_row_with_the_patients_demographics(bundle):
    assert rows(
        bundle,
        "patients",
        "patient_id, CAST(date_of_birth AS VARCHAR), sex, CAST(served_from AS VARCHAR), CAST(served_to AS VARCHAR)",
    ) == [
        (P1, "1948-03-14", "female", "2017-04-03", None),
        (P2, "1939-09-30", "male", "2017-01-09", "2017-08-31"),
        (P2, "1939-09-30", "male", "2018-02-01", None),
        (P3, "1960-01-01", "indeterminate", "2018-04-01", "2019-03-31"),  # FHIR gender "other"
    ]


def test_conditions_give_one_row_per_snomed_or_icd10_coding_dated_recorded_else_onset(bundle):
    assert rows(bundle, "conditions", "patient_id, code_system, code, CAST(recorded_on AS VARCHAR)") == [
        (P1, "icd10", "I10", "2015-06-01"),  # no recordedDate: onsetDateTime
        (P1, "icd10", "J44.9", "2017-09-18"),  # one Condition coded in both systems: two rows
        (P1, "snomed", "13645005", "2017-09-18"),
        (P1, "snomed", "44054006", "2016-11-02"),  # date part of a dateTime
        (P2, "snomed", "195967001", "2012-02-20"),
        (P3, "icd10", "E11.9", "2018-05-04"),  # icd-10-uk system
    ]


def test_pam_level_and_score_on_the_same_day_merge_and_a_related_person_performer_is_a_carer(bundle):
    pam_rows = rows(
        bundle,
        "assessments WHERE instrument = 'pam'",
        "patient_id, CAST(assessed_on AS VARCHAR), respondent, CAST(pam_score AS DOUBLE), pam_level",
    )
    assert pam_rows == [
        (P1, "2017-06-12", "patient", 52.3, 2),  # two Observations, one assessment
        (P1, "2018-06-20", "patient", None, 3),  # valueCodeableConcept text "Level 3"
        (P2, "2018-03-02", "carer", 47.0, None),  # performer is a RelatedPerson
    ]


def test_gpps_answers_come_from_questionnaire_items_q32_and_q33(bundle):
    gpps_rows = rows(
        bundle,
        "assessments WHERE instrument = 'gpps'",
        "patient_id, CAST(assessed_on AS VARCHAR), respondent, gpps_q32, gpps_q33",
    )
    assert gpps_rows == [
        (P1, "2017-07-01", "patient", "Yes, to some extent", "Fairly confident"),  # valueCoding display, valueString
        (P2, "2018-03-02", "carer", "Yes, definitely", "Not very confident"),  # source is a RelatedPerson
    ]


def test_conversations_come_from_coded_procedures_and_encounters_with_the_practitioner_as_staff(bundle):
    assert rows(bundle, "conversations", "patient_id, CAST(held_on AS VARCHAR), staff_id") == [
        (P1, "2017-05-10", "staff-017"),  # Procedure pcsp-conversation
        (P2, "2018-03-02", "staff-022"),  # Encounter type pcsp-review
    ]


def test_resources_cquin_does_not_use_are_rejected_as_ignored_and_counted_in_a_note(bundle):
    reasons = {ref.split("/")[0]: reason for _f, _line, ref, reason in rejections(bundle)}
    assert set(reasons) == {"Practitioner", "RelatedPerson", "Observation"}
    assert all(r.startswith("ignored: ") for r in reasons.values())
    assert "staff come from staff.csv" in reasons["Practitioner"]
    assert "not a PAM observation (code http://snomed.info/sct|27113001)" in reasons["Observation"]
    assert any("3 resources cquin does not use" in n and "Practitioner 1" in n for n in bundle.ledger.notes)


def test_the_bulk_export_of_the_same_records_loads_the_same_rows(bundle, bulk):
    for table, cols in [
        ("patients", "patient_id, date_of_birth, sex, served_from, served_to"),
        ("conditions", "patient_id, code_system, code, recorded_on"),
        ("assessments", "patient_id, assessed_on, respondent, instrument, pam_score, pam_level, gpps_q32, gpps_q33"),
        ("conversations", "patient_id, held_on, staff_id"),
    ]:
        assert rows(bulk, table, cols) == rows(bundle, table, cols), table
    assert_balanced(bulk)


def test_bulk_rows_point_at_their_ndjson_file_line_and_resource(bulk):
    assert rows(bulk, "patients", "_file, _line, _ref")[0] == (
        "EpisodeOfCare.000.ndjson",
        1,
        "EpisodeOfCare/6f1c2a9e-3b7d-4e51-9a0c-000000000011",
    )
    assert "manifest.json" not in bulk.ledger.files  # export metadata, not records
    assert bulk.ledger.files["Patient.000.ndjson"].as_dict() == {"read": 3, "accepted": 3, "rejected": 0}
    assert bulk.ledger.files["Observation.000.ndjson"].as_dict() == {"read": 5, "accepted": 4, "rejected": 1}


# ---------------------------------------------------------------------- Synthea: real data without NHS numbers


@pytest.fixture(scope="module")
def synthea(vocab):
    ds, _ = load_dataset(SYNTHEA, vocab, adapter="fhir")
    return ds


def test_synthea_patients_are_all_rejected_for_having_no_nhs_number_identifier(synthea):
    stats = synthea.ledger.files["Patient.000.ndjson"]
    assert (stats.read, stats.accepted, stats.rejected) == (13, 0, 13)
    reasons = [r for f, _line, _ref, r in rejections(synthea) if f == "Patient.000.ndjson"]
    assert len(reasons) == 13
    for reason in reasons:
        assert reason.startswith(f"no NHS number: the Patient has no identifier with system {NHS}")
        assert "http://hl7.org/fhir/sid/us-ssn" in reason  # names the systems it does have
        assert "cquin keys patients by NHS number" in reason


def test_synthea_conditions_are_all_rejected_as_for_an_unknown_patient(synthea):
    lines = sum(1 for line in (SYNTHEA / "Condition.000.ndjson").open() if line.strip())
    stats = synthea.ledger.files["Condition.000.ndjson"]
    assert (stats.read, stats.accepted, stats.rejected) == (lines, 0, lines)
    resolved = 0
    for _f, _line, ref, reason in rejections(synthea):
        if ref.startswith("Condition/") and reason.startswith("ignored: Condition clinicalStatus is 'resolved'"):
            resolved += 1  # resolved before Year 1 began: ignored before its patient is looked up
        elif ref.startswith("Condition/"):
            assert reason.startswith("unknown patient 'Patient/")
            assert reason.endswith("that Patient record was rejected (no NHS number)")
    assert 0 < resolved < lines


def test_synthea_nothing_is_dropped_and_the_export_log_is_not_read(synthea):
    assert_balanced(synthea)
    assert set(synthea.ledger.files) == {"Patient.000.ndjson", "Condition.000.ndjson"}
    assert synthea.count("patients") == synthea.count("conditions") == 0


def test_choosing_another_identifier_system_still_requires_valid_nhs_numbers(vocab):
    ds = load(vocab, SYNTHEA, identifier_system="https://github.com/synthetichealth/synthea")
    reasons = {r for f, _line, _ref, r in rejections(ds) if f == "Patient.000.ndjson"}
    assert reasons and all(
        r.startswith("NHS number '") and r.endswith(("is not 10 digits", "fails the Modulus 11 check digit")) for r in reasons
    )


# ---------------------------------------------------------------------- patients and episodes


def test_a_patient_with_no_episode_of_care_is_rejected_and_so_are_its_records(vocab, tmp_path):
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), condition("c1", "p1")))
    assert rejections(ds) == [
        (
            "Condition.000.ndjson",
            1,
            "Condition/c1",
            "unknown patient 'Patient/p1': that Patient record was rejected (no EpisodeOfCare)",
        ),
        ("Patient.000.ndjson", 1, "Patient/p1", "no EpisodeOfCare: the time under the provider's care is unknown"),
    ]


def test_with_episodes_from_encounters_each_encounter_period_is_an_episode(vocab, tmp_path):
    enc = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2017-05-02T10:00:00Z", "end": "2017-05-02T11:00:00Z"},
    }
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), enc), episodes="encounters")
    assert rows(ds, "patients", "patient_id, CAST(served_from AS VARCHAR), CAST(served_to AS VARCHAR)") == [
        ("9990000042", "2017-05-02", "2017-05-02")
    ]
    assert rejections(ds) == []


def test_an_episode_for_an_unknown_patient_is_rejected(vocab, tmp_path):
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), episode("ep2", "nobody")))
    assert rejections(ds) == [
        (
            "EpisodeOfCare.000.ndjson",
            2,
            "EpisodeOfCare/ep2",
            "unknown patient 'Patient/nobody': no Patient resource with that id was read",
        )
    ]


def test_a_planned_episode_is_ignored_because_care_has_not_started(vocab, tmp_path):
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), episode("ep2", "p1", status="planned")))
    assert ds.count("patients") == 1
    assert rejections(ds)[0][3].startswith("ignored: EpisodeOfCare status is 'planned'")


def test_an_invalid_nhs_number_rejects_the_patient_and_everything_about_them(vocab, tmp_path):
    ds = load(vocab, write_bulk(tmp_path, patient("p1", nhs="9990000019"), episode("ep1", "p1")))
    assert rejections(ds) == [
        (
            "EpisodeOfCare.000.ndjson",
            1,
            "EpisodeOfCare/ep1",
            "unknown patient 'Patient/p1': that Patient record was rejected (NHS number '9990000019' fails the Modulus 11 check digit)",
        ),
        (
            "Patient.000.ndjson",
            1,
            "Patient/p1",
            "NHS number '9990000019' fails the Modulus 11 check digit",  # the row checks' own words
        ),
    ]


@pytest.mark.parametrize("birth", ["1941", "1941-06"])
def test_a_partial_birth_date_rejects_the_patient_at_its_own_line_and_its_episodes_as_of_a_rejected_patient(
    vocab, tmp_path, birth
):
    ds = load(vocab, write_bulk(tmp_path, patient("p1", birthDate=birth), episode("ep1", "p1")))
    assert rejections(ds) == [
        (
            "EpisodeOfCare.000.ndjson",
            1,
            "EpisodeOfCare/ep1",
            f"unknown patient 'Patient/p1': that Patient record was rejected (birthDate '{birth}' is a partial date; "
            "cquin needs the full date of birth)",
        ),
        (
            "Patient.000.ndjson",
            1,
            "Patient/p1",
            f"birthDate '{birth}' is a partial date; cquin needs the full date of birth (YYYY-MM-DD)",
        ),
    ]
    assert ds.ledger.files["Patient.000.ndjson"].as_dict() == {"read": 1, "accepted": 0, "rejected": 1}


def test_an_impossible_birth_date_or_unknown_gender_is_charged_to_the_patient(vocab, tmp_path):
    ds = load(
        vocab,
        write_bulk(
            tmp_path,
            patient("p1", birthDate="1950-02-30"),
            patient("p2", nhs="9990000018", gender="robot"),
            episode("ep1", "p1"),
            episode("ep2", "p2"),
        ),
    )
    by_file = {(f, line): reason for f, line, _, reason in rejections(ds)}
    assert by_file[("Patient.000.ndjson", 1)] == "birthDate '1950-02-30' is not a real date"
    assert by_file[("Patient.000.ndjson", 2)].startswith("gender 'robot' is not a FHIR administrative gender")
    assert ds.ledger.files["Patient.000.ndjson"].as_dict() == {"read": 2, "accepted": 0, "rejected": 2}


# ---------------------------------------------------------------------- bad input


def test_a_malformed_json_line_is_rejected_with_the_json_error_and_the_rest_is_read(vocab, tmp_path):
    path = write_bulk(
        tmp_path,
        patient("p1"),
        episode("ep1", "p1"),
        condition("c1", "p1"),
        raw_lines={"Condition": ['{"resourceType": "Condition", "id": "c2",']},
    )
    ds = load(vocab, path)
    assert ds.count("conditions") == 1
    [(file, line, ref, reason)] = rejections(ds)
    assert (file, line, ref) == ("Condition.000.ndjson", 2, None)
    assert reason.startswith("malformed JSON: Expecting property name enclosed in double quotes at column")
    assert ds.ledger.files["Condition.000.ndjson"].as_dict() == {"read": 2, "accepted": 1, "rejected": 1}


def test_a_condition_without_a_subject_is_rejected(vocab, tmp_path):
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), condition("c1", None)))
    assert rejections(ds) == [
        ("Condition.000.ndjson", 1, "Condition/c1", "no subject: a Condition must reference its Patient (subject)")
    ]


def test_an_unknown_resource_type_is_rejected_as_ignored(vocab, tmp_path):
    claim = {"resourceType": "Claim", "id": "cl1", "patient": {"reference": "Patient/p1"}}
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), claim, claim | {"id": "cl2"}))
    reasons = [r for _f, _l, _ref, r in rejections(ds)]
    assert (
        reasons
        == [
            f"ignored: cquin does not use Claim resources (it reads {', '.join(['Patient', 'EpisodeOfCare', 'Condition', 'Observation', 'QuestionnaireResponse', 'Procedure', 'Encounter', 'CarePlan', 'Goal', 'ServiceRequest'])})"
        ]
        * 2
    )
    assert any("Claim 2" in n for n in ds.ledger.notes)


def test_a_condition_in_an_unknown_code_system_is_rejected_naming_the_systems_found(vocab, tmp_path):
    read_v2 = [{"system": "http://read.info/readv2", "code": "C10..", "display": "Diabetes mellitus"}]
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), condition("c1", "p1", read_v2)))
    [(_f, _line, _ref, reason)] = rejections(ds)
    assert reason == (
        "no SNOMED CT or ICD-10 code: its codes are in http://read.info/readv2; "
        "cquin reads conditions coded in http://snomed.info/sct or http://hl7.org/fhir/sid/icd-10"
    )


def test_a_bundle_that_is_not_json_stops_the_load_naming_the_file(vocab, tmp_path):
    bad = tmp_path / "extract.json"
    bad.write_text('{"resourceType": "Bundle", "entry": [\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"extract.json: not JSON \(.*\); expected a FHIR Bundle"):
        load_dataset(bad, vocab, adapter="fhir")


def test_an_ndjson_file_with_no_json_at_all_stops_the_load(vocab, tmp_path):
    (tmp_path / "Patient.000.ndjson").write_text("NHS number,date of birth\n9990000042,1950-02-03\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"Patient.000.ndjson: not NDJSON: no line is JSON"):
        load_dataset(tmp_path, vocab, adapter="fhir")


def test_an_unresolvable_urn_uuid_reference_in_a_bundle_is_rejected(vocab, tmp_path):
    entries = [
        {"fullUrl": "urn:uuid:aaaa", "resource": patient("p1")},
        {"fullUrl": "urn:uuid:bbbb", "resource": episode("ep1", "p1") | {"patient": {"reference": "urn:uuid:aaaa"}}},
        {"fullUrl": "urn:uuid:cccc", "resource": condition("c1", "p1") | {"subject": {"reference": "urn:uuid:ffff"}}},
    ]
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}), encoding="utf-8")
    ds = load(vocab, path)
    assert ds.count("patients") == 1
    assert rejections(ds) == [
        ("b.json", 3, "Condition/c1", "unknown patient: reference 'urn:uuid:ffff' matches no entry's fullUrl in the bundle")
    ]


def test_a_procedure_that_is_not_a_conversation_is_ignored(vocab, tmp_path):
    proc = {
        "resourceType": "Procedure",
        "id": "pr1",
        "status": "completed",
        "code": {"coding": [{"system": SCT, "code": "430193006"}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2017-06-01",
    }
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), proc))
    assert rejections(ds) == [
        (
            "Procedure.000.ndjson",
            1,
            "Procedure/pr1",
            "ignored: not a care and support planning conversation (codes 430193006 are not conversation codes)",
        )
    ]


def test_pam_values_are_checked_by_the_builder_against_the_rulesets_range(vocab, tmp_path):
    ds = load(
        vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), pam("o1", "p1", "962851000000103", {"valueInteger": 7}))
    )
    assert rejections(ds) == [("Observation.000.ndjson", 1, "Observation/o1", "PAM level 7 is outside 1-4")]


def test_two_different_pam_levels_on_one_day_are_not_merged_and_conflict(vocab, tmp_path):
    two = [pam("o1", "p1", "962851000000103", {"valueInteger": 2}), pam("o2", "p1", "962851000000103", {"valueInteger": 3})]
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), *two))
    assert [r[3] for r in rejections(ds)] == [
        "conflicting assessments: two pam assessments of 9990000042 by the patient on 2017-06-01 with different results"
    ] * 2


def test_a_json_file_in_the_folder_that_is_not_fhir_is_skipped_with_a_note(vocab, tmp_path):
    write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"))
    (tmp_path / "export-settings.json").write_text('{"since": "2017-04-01"}', encoding="utf-8")
    ds = load(vocab, tmp_path)
    assert "export-settings.json" not in ds.ledger.files
    assert "export-settings.json: not a FHIR resource or Bundle (no resourceType), so not read" in ds.ledger.notes


def test_a_subject_given_only_as_an_nhs_number_identifier_finds_the_patient(vocab, tmp_path):
    cond = condition("c1", None) | {"subject": {"identifier": {"system": NHS, "value": "9990000042"}}}
    ds = load(vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), cond))
    assert rows(ds, "conditions", "patient_id, code") == [("9990000042", "44054006")]


def test_a_condition_recorded_in_error_is_ignored(vocab, tmp_path):
    ver = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "entered-in-error"}]}
    ds = load(
        vocab, write_bulk(tmp_path, patient("p1"), episode("ep1", "p1"), condition("c1", "p1") | {"verificationStatus": ver})
    )
    assert rejections(ds) == [
        ("Condition.000.ndjson", 1, "Condition/c1", "ignored: Condition verification status is 'entered-in-error'")
    ]


# ---------------------------------------------------------------------- the equivalence population

EQUIVALENCE = Path(__file__).parent.parent / "fixtures" / "equivalence"


@pytest.mark.skipif(not (EQUIVALENCE / "fhir").is_dir(), reason="no FHIR equivalence fixture")
def test_the_fhir_equivalence_export_gives_the_same_tables_as_the_canonical_csv(vocab):
    fhir = load(vocab, EQUIVALENCE / "fhir")
    canonical, _ = load_dataset(EQUIVALENCE / "canonical", vocab, adapter="canonical")
    assert fhir.ledger.rejection_count() == 0
    for table, expected in [("patients", 6), ("conditions", 7), ("assessments", 5), ("conversations", 2)]:
        got = fhir.con.execute(f"SELECT * EXCLUDE (_file, _line, _ref) FROM {table} ORDER BY ALL").fetchall()
        want = canonical.con.execute(f"SELECT * EXCLUDE (_file, _line, _ref) FROM {table} ORDER BY ALL").fetchall()
        assert len(got) == expected, table
        assert got == want, table
