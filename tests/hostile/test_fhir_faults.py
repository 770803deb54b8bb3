"""FHIR exports under real faults: no record or file is lost without a word, one bad value is one rejected record.

Found by fault injection (issue 12): a text pre-filter fooled by a JSON-escaped
``resourceType``; ``Condition.000.NDJSON`` and ``*.ndjson.gz`` files skipped;
repeated ids with different content both kept; a reference to another server
linked to a local resource; a partial ``birthDate`` charged to the episodes;
``NaN``, ``Infinity`` and huge exponents aborting or hanging the load.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from tests.hostile.corpus import balance

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SCT = "http://snomed.info/sct"
PAM_SCORE = "925431000000109"
P1, P2 = "9990000018", "9990000026"


def patient(n: int, nhs: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": f"p{n}",
        "identifier": [{"system": NHS, "value": nhs}],
        "gender": "female",
        "birthDate": "1941-06-12",
    } | extra


def episode(n: int, patient_ref: str | None = None, start: str = "2016-11-03", eid: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "EpisodeOfCare",
        "id": eid or f"e{n}",
        "status": "active",
        "patient": {"reference": patient_ref or f"Patient/p{n}"},
        "period": {"start": start},
    }


def condition(cid: str, subject: dict[str, Any], code: str = "44054006", recorded: str = "2017-05-01") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": subject,
        "code": {"coding": [{"system": SCT, "code": code}]},
        "recordedDate": recorded,
    }


def lines(*items: dict[str, Any] | str) -> str:
    return "".join((i if isinstance(i, str) else json.dumps(i)) + "\n" for i in items)


PEOPLE = {
    "Patient.000.ndjson": lines(patient(1, P1), patient(2, P2)),
    "EpisodeOfCare.000.ndjson": lines(episode(1), episode(2)),
}


def export(folder: Path, files: dict[str, str | bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return folder


def load(vocab: Vocabulary, path: Path) -> CanonicalDataset:
    ds, _ = load_dataset(path, vocab, adapter="fhir")
    balance(ds)
    return ds


def rejected(ds: CanonicalDataset, file: str) -> dict[int, str]:
    return {line: reason for f, line, _ref, _col, _val, reason in ds.ledger.rejection_rows() if f == file}


def counts(ds: CanonicalDataset, file: str) -> dict[str, object]:
    return ds.ledger.files[file].as_dict()


def conditions(ds: CanonicalDataset) -> list[tuple]:
    return ds.con.execute("SELECT patient_id, code, CAST(recorded_on AS VARCHAR) FROM conditions ORDER BY ALL").fetchall()


# ---------------------------------------------------------------------- item 3: every line, every file


def test_a_json_escaped_resource_type_is_parsed_and_counted_not_lost_to_a_text_filter(vocab, tmp_path):
    escaped = json.dumps(patient(2, P2)).replace('"Patient"', '"\\u0050atient"')
    assert '"Patient"' not in escaped  # the line names its type only through the escape
    ds = load(vocab, export(tmp_path, {**PEOPLE, "Patient.000.ndjson": lines(patient(1, P1), escaped)}))
    assert counts(ds, "Patient.000.ndjson") == {"read": 2, "accepted": 2, "rejected": 0}
    assert ds.con.execute("SELECT patient_id FROM patients ORDER BY 1").fetchall() == [(P1,), (P2,)]


@pytest.mark.parametrize("name", ["Condition.000.NDJSON", "condition.000.Ndjson"])
def test_an_ndjson_file_is_read_whatever_the_case_of_its_name(vocab, tmp_path, name):
    ds = load(vocab, export(tmp_path, {**PEOPLE, name: lines(condition("c1", {"reference": "Patient/p1"}))}))
    assert counts(ds, name) == {"read": 1, "accepted": 1, "rejected": 0}
    assert conditions(ds) == [(P1, "44054006", "2017-05-01")]


def test_gzip_ndjson_as_bulk_data_servers_serve_it_is_read(vocab, tmp_path):
    files: dict[str, str | bytes] = {
        "Patient.000.ndjson.gz": gzip.compress(PEOPLE["Patient.000.ndjson"].encode()),
        "EpisodeOfCare.000.ndjson": PEOPLE["EpisodeOfCare.000.ndjson"],
        "Condition.000.ndjson.gz": gzip.compress(lines(condition("c1", {"reference": "Patient/p2"}), "{broken").encode()),
    }
    ds = load(vocab, export(tmp_path, files))
    assert counts(ds, "Patient.000.ndjson.gz") == {"read": 2, "accepted": 2, "rejected": 0}
    assert counts(ds, "Condition.000.ndjson.gz") == {"read": 2, "accepted": 1, "rejected": 1}
    assert rejected(ds, "Condition.000.ndjson.gz")[2].startswith("malformed JSON")
    assert conditions(ds) == [(P2, "44054006", "2017-05-01")]


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"this is not gzip at all", "not a readable gzip file"),
        (gzip.compress(b'{"resourceType": "Condition"}\n' * 50)[:-20], "ends before the compressed data does"),
    ],
    ids=["not-gzip", "truncated"],
)
def test_a_damaged_gzip_file_stops_the_load_naming_the_file(vocab, tmp_path, data, fragment):
    with pytest.raises(DataError, match=rf"Condition.000.ndjson.gz: .*{fragment}"):
        load_dataset(export(tmp_path, {**PEOPLE, "Condition.000.ndjson.gz": data}), vocab, adapter="fhir")


def test_every_file_not_read_is_listed_in_the_load_report_with_why(vocab, tmp_path):
    folder = export(
        tmp_path,
        {
            **PEOPLE,
            "Condition.000.ndjson.bak": lines(condition("c1", {"reference": "Patient/p1"})),
            "README.txt": "export notes",
            "settings.json": '{"not": "fhir"}',
            "manifest.json": json.dumps({"request": "https://ehr.example/fhir/$export", "output": []}),
        },
    )
    (folder / "older").mkdir()
    os.mkfifo(folder / "Observation.000.ndjson")  # a pipe must be listed, never opened (it would hang)
    ds = load(vocab, folder)
    notes = "\n".join(ds.ledger.notes)
    for fragment in (
        "Condition.000.ndjson.bak: not a FHIR file",
        "README.txt: not a FHIR file",
        "settings.json: not a FHIR resource or Bundle",
        "manifest.json: Bulk Data export metadata",
        "older: a folder",
        "Observation.000.ndjson: not a regular file",
    ):
        assert fragment in notes


# ---------------------------------------------------------------------- item 6: one bad value, one rejected record


def pam_score(oid: str, value: str) -> str:
    return (
        '{"resourceType": "Observation", "id": "' + oid + '", "status": "final", '
        '"code": {"coding": [{"system": "' + SCT + '", "code": "' + PAM_SCORE + '"}]}, '
        '"subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2017-06-01", '
        '"valueQuantity": {"value": ' + value + "}}"
    )


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_or_infinity_in_a_pam_score_is_one_malformed_line(vocab, tmp_path, value):
    ds = load(
        vocab, export(tmp_path, {**PEOPLE, "Observation.000.ndjson": lines(pam_score("o1", value), pam_score("o2", "52.5"))})
    )
    assert rejected(ds, "Observation.000.ndjson") == {
        1: f"malformed JSON: {value} is not a JSON value (each line of an NDJSON file must be one FHIR resource)"
    }
    assert ds.con.execute("SELECT CAST(pam_score AS VARCHAR) FROM assessments").fetchall() == [("52.500000",)]


@pytest.mark.parametrize("value", ["1e5000", "1e30000000", "-1e30000000"])
def test_a_pam_score_with_a_huge_exponent_is_rejected_as_out_of_range_at_once(vocab, tmp_path, value):
    # Expanding 1e30000000 to its digits ran for over half an hour; the value is kept as written and refused.
    ds = load(
        vocab, export(tmp_path, {**PEOPLE, "Observation.000.ndjson": lines(pam_score("o1", value), pam_score("o2", "52.5"))})
    )
    reason = rejected(ds, "Observation.000.ndjson")[1]
    assert reason.startswith("PAM score '") and reason.endswith("' is outside 0-100")
    assert counts(ds, "Observation.000.ndjson") == {"read": 2, "accepted": 1, "rejected": 1}


def test_a_huge_exponent_in_an_element_cquin_does_not_use_costs_nothing(vocab, tmp_path):
    c1 = condition("c1", {"reference": "Patient/p1"}) | {"extension": [{"url": "x", "valueDecimal": "PLACEHOLDER"}]}
    line = json.dumps(c1).replace('"PLACEHOLDER"', "1e30000000")
    ds = load(vocab, export(tmp_path, {**PEOPLE, "Condition.000.ndjson": lines(line)}))
    assert conditions(ds) == [(P1, "44054006", "2017-05-01")]


def test_malformed_lines_before_good_ones_are_each_rejected_and_the_file_is_read(vocab, tmp_path):
    bad = [f"{{not json {i}" for i in range(20)]
    good = [condition(f"c{i}", {"reference": f"Patient/p{1 + i % 2}"}, recorded=f"2017-05-{1 + i:02d}") for i in range(28)]
    ds = load(vocab, export(tmp_path, {**PEOPLE, "Condition.000.ndjson": lines(*bad, *good)}))
    assert counts(ds, "Condition.000.ndjson") == {"read": 48, "accepted": 28, "rejected": 20}
    assert sorted(rejected(ds, "Condition.000.ndjson")) == list(range(1, 21))
    assert len(conditions(ds)) == 28


# ---------------------------------------------------------------------- item 5: duplicates and references


def test_a_condition_read_twice_with_the_same_content_counts_once(vocab, tmp_path):
    c1 = condition("c1", {"reference": "Patient/p1"})
    ds = load(vocab, export(tmp_path, {**PEOPLE, "Condition.000.ndjson": lines(c1, c1)}))
    assert rejected(ds, "Condition.000.ndjson") == {2: "exact duplicate of Condition.000.ndjson line 1 (counted once)"}
    assert conditions(ds) == [(P1, "44054006", "2017-05-01")]


def test_a_condition_id_read_twice_with_different_content_is_rejected_both_times(vocab, tmp_path):
    ds = load(
        vocab,
        export(
            tmp_path,
            {
                **PEOPLE,
                "Condition.000.ndjson": lines(
                    condition("c1", {"reference": "Patient/p1"}),
                    condition("c2", {"reference": "Patient/p2"}),
                    condition("c1", {"reference": "Patient/p1"}, recorded="2018-01-09"),
                ),
            },
        ),
    )
    reasons = rejected(ds, "Condition.000.ndjson")
    assert sorted(reasons) == [1, 3]
    assert (
        reasons[1]
        == reasons[3]
        == (
            "conflicting records for 'Condition/c1' (Condition.000.ndjson line 1, Condition.000.ndjson line 3): "
            "one id with different content, so none is used"
        )
    )
    assert conditions(ds) == [(P2, "44054006", "2017-05-01")]


def test_an_episode_of_care_id_read_twice_with_different_periods_is_rejected_both_times(vocab, tmp_path):
    episodes = lines(episode(1), episode(2), episode(2, start="2018-02-01"))
    ds = load(vocab, export(tmp_path, {**PEOPLE, "EpisodeOfCare.000.ndjson": episodes}))
    assert sorted(rejected(ds, "EpisodeOfCare.000.ndjson")) == [2, 3]
    assert "conflicting records for 'EpisodeOfCare/e2'" in rejected(ds, "EpisodeOfCare.000.ndjson")[2]
    assert ds.con.execute("SELECT patient_id FROM patients").fetchall() == [(P1,)]


def test_a_patient_id_read_twice_counts_once_when_the_same_and_not_at_all_when_different(vocab, tmp_path):
    same = load(
        vocab, export(tmp_path / "same", {**PEOPLE, "Patient.000.ndjson": lines(patient(1, P1), patient(2, P2), patient(1, P1))})
    )
    assert rejected(same, "Patient.000.ndjson") == {3: "exact duplicate of Patient.000.ndjson line 1 (counted once)"}
    differ = load(
        vocab,
        export(
            tmp_path / "differ",
            {**PEOPLE, "Patient.000.ndjson": lines(patient(1, P1), patient(2, P2), patient(1, P1, birthDate="1950-01-01"))},
        ),
    )
    reasons = rejected(differ, "Patient.000.ndjson")
    assert sorted(reasons) == [1, 3]
    assert reasons[1].startswith("conflicting Patient records for 'Patient/p1'")
    assert "that Patient record was rejected (conflicting Patient records)" in rejected(differ, "EpisodeOfCare.000.ndjson")[1]
    assert differ.con.execute("SELECT patient_id FROM patients").fetchall() == [(P2,)]


def test_a_reference_to_another_server_is_not_linked_to_the_local_resource_of_that_id(vocab, tmp_path):
    remote = condition("c1", {"reference": "http://other.example/fhir/Patient/p1"})
    ds = load(
        vocab, export(tmp_path, {**PEOPLE, "Condition.000.ndjson": lines(remote, condition("c2", {"reference": "Patient/p2"}))})
    )
    reason = rejected(ds, "Condition.000.ndjson")[1]
    assert reason.startswith(
        "unknown patient: reference 'http://other.example/fhir/Patient/p1' is to a resource on another server"
    )
    assert conditions(ds) == [(P2, "44054006", "2017-05-01")]


def test_an_absolute_reference_on_the_exports_own_server_resolves(vocab, tmp_path):
    manifest = json.dumps({"transactionTime": "2019-04-01T00:00:00Z", "request": "https://ehr.example/fhir/Patient/$export"})
    local = condition("c1", {"reference": "https://ehr.example/fhir/Patient/p1/_history/3"})
    ds = load(vocab, export(tmp_path, {**PEOPLE, "manifest.json": manifest, "Condition.000.ndjson": lines(local)}))
    assert conditions(ds) == [(P1, "44054006", "2017-05-01")]


def test_a_bundle_entrys_full_url_gives_the_server_its_absolute_references_resolve_on(vocab, tmp_path):
    base = "https://ehr.example/fhir"
    entries = [
        {"fullUrl": f"{base}/Patient/p1", "resource": patient(1, P1)},
        {"fullUrl": f"{base}/EpisodeOfCare/e1", "resource": episode(1, f"{base}/Patient/p1")},
        {"fullUrl": f"{base}/Condition/c1", "resource": condition("c1", {"reference": f"{base}/Patient/p1"})},
        {
            "fullUrl": f"{base}/Condition/c2",
            "resource": condition("c2", {"reference": "https://elsewhere.example/fhir/Patient/p1"}),
        },
    ]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}), encoding="utf-8")
    ds = load(vocab, path)
    assert conditions(ds) == [(P1, "44054006", "2017-05-01")]
    assert "another server" in rejected(ds, "bundle.json")[4]


@pytest.mark.parametrize("written", ["999-000-0018", "999 000 0018", "9990000018"])
def test_a_reference_by_nhs_number_matches_with_or_without_spaces_or_hyphens(vocab, tmp_path, written):
    by_number = condition("c1", {"identifier": {"system": NHS, "value": written}})
    ds = load(vocab, export(tmp_path, {**PEOPLE, "Condition.000.ndjson": lines(by_number)}))
    assert conditions(ds) == [(P1, "44054006", "2017-05-01")]
