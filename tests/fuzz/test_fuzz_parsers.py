"""Fuzz targets for every parser: whatever bytes arrive, only a CquinError escapes, and no record is lost.

Each target feeds generated input (raw bytes, text full of the characters
that matter to the format, or structure-aware mutations of a good input) to
one parser and asserts:

- nothing but a :class:`~cquin.exceptions.CquinError` subclass escapes (a
  ``DataError`` or ``RulesetError`` naming the file; never a raw exception);
- when the input is read, every record is accounted for: each record's line
  is staged, merged or rejected (with a reason), and good records placed
  around the damage still arrive.

The adapters are driven through :class:`tests.fuzz.recording.RecordingBuilder`
(no database), the canonical CSV reader through a real builder's staging.
Runs are bounded for CI; set ``CQUIN_FUZZ_EXAMPLES`` (e.g. 5000) for a long run.
"""

from __future__ import annotations

import copy
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cquin.adapters.csds import MPI, REFERRAL, CsdsAdapter, read_csds_csv
from cquin.adapters.fhir import FhirAdapter
from cquin.config.yaml_source import load_yaml_file, load_yaml_text
from cquin.dataset import DatasetBuilder
from cquin.engine.ruleset import BUNDLED_DIR, check_ruleset, load_ruleset
from cquin.exceptions import CquinError, DataError, RulesetError
from tests.fuzz.recording import RecordingBuilder

VOCAB = load_ruleset("cquin_2017_19").vocabulary()


def fuzz(default: int) -> settings:
    return settings(
        max_examples=int(os.environ.get("CQUIN_FUZZ_EXAMPLES", default)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


# Text made of what matters to CSV and JSON readers, plus anything else.
SPECIAL = ',"\n\r\x00\t {}[]:\\\ufeff\u2028é“”0123456789-/'
format_text = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(exclude_categories=("Cs",))), max_size=300)
payload = st.one_of(
    st.binary(max_size=400),
    format_text.map(lambda t: t.encode("utf-8")),
    format_text.map(lambda t: t.encode("cp1252", "ignore")),
)


# --------------------------------------------------------------------------- canonical CSV reader

CANONICAL_HEADER = b"patient_id,date_of_birth,sex,served_from,served_to\n"
FIRST = b"9990000018,1963-03-07,male,2018-03-18,\n"


@fuzz(60)
@given(body=payload)
def test_fuzz_canonical_csv_reader(tmp_path_factory, body: bytes):
    path = tmp_path_factory.mktemp("csv") / "patients.csv"
    path.write_bytes(CANONICAL_HEADER + FIRST + body)
    builder = DatasetBuilder(VOCAB, threads=1, memory_limit="256MB")
    try:
        builder.add_csv("patients", path)
    except DataError as exc:
        assert "patients.csv" in str(exc)
        return
    builder.ledger.finish()
    stats = builder.ledger.files["patients.csv"]
    assert stats.read == stats.accepted + stats.rejected
    staged = builder.con.execute("SELECT _line, patient_id FROM raw_patients WHERE _line = 2").fetchall()
    assert staged == [(2, "9990000018")], "the good first row did not arrive"
    lines = builder.con.execute("SELECT _line FROM raw_patients UNION ALL SELECT line FROM rejections ORDER BY 1").fetchall()
    assert len(lines) == len(set(lines)) == stats.read, "a record was counted twice"


# --------------------------------------------------------------------------- CSDS reader and adapter

MPI_HEADER = b"LocalPatientId,NHSNumber,PersonBirthDate,PersonStatedGenderCode\n"
REFERRALS = b"ServiceRequestId,LocalPatientId,ReferralReceivedDate,ServiceDischargeDate\nR1,P1,2017-05-02,\nR2,P2,2017-05-02,\n"


@fuzz(200)
@given(body=payload)
def test_fuzz_csds_reader(tmp_path_factory, body: bytes):
    path = tmp_path_factory.mktemp("csds") / "CYP001MPI.csv"
    path.write_bytes(MPI_HEADER + b"P1,9990000018,1948-03-12,2\n" + body)
    builder = RecordingBuilder(VOCAB)
    builder.source(path.name, path)
    try:
        records = read_csds_csv(path, MPI, builder).records  # type: ignore[arg-type]
    except DataError as exc:
        assert path.name in str(exc)
        return
    assert records[0].line == 2 and records[0].get("nhs") == "9990000018"
    lines = [r.line for r in records] + sorted(builder.rejected.get(path.name, set()))
    assert len(lines) == len(set(lines)), "a record was both read and rejected"


@fuzz(100)
@given(body=payload)
def test_fuzz_csds_adapter_accounts_for_every_record(tmp_path_factory, body: bytes):
    folder = tmp_path_factory.mktemp("csds")
    (folder / "CYP001MPI.csv").write_bytes(MPI_HEADER + b"P1,9990000018,1948-03-12,2\n" + body)
    (folder / "CYP101Referral.csv").write_bytes(REFERRALS)
    builder = RecordingBuilder(VOCAB)
    try:
        CsdsAdapter().load(folder, builder, {"dates": "iso"})  # type: ignore[arg-type]
    except DataError:
        return
    for name, path in builder.files.items():
        assert path is not None
        again = RecordingBuilder(VOCAB)
        again.source(name, path)
        records = read_csds_csv(path, MPI if name.startswith("CYP001") else REFERRAL, again).records  # type: ignore[arg-type]
        expected = {r.line for r in records} | again.rejected.get(name, set())
        assert builder.touched.get(name, set()) == expected, name
    assert 2 in builder.touched["CYP001MPI.csv"]


# --------------------------------------------------------------------------- FHIR NDJSON and Bundles

NHS = "https://fhir.nhs.uk/Id/nhs-number"
PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "identifier": [{"system": NHS, "value": "9991000011"}],
    "birthDate": "1941-06-12",
}
EPISODE = {"resourceType": "EpisodeOfCare", "id": "e1", "patient": {"reference": "Patient/p1"}, "period": {"start": "2016-11-03"}}


def fhir_lines(path: Path) -> set[int]:
    """The numbers of the non-blank lines of an NDJSON file, as the reader numbers them."""
    with path.open(encoding="utf-8") as fh:
        return {n for n, line in enumerate(fh, 1) if line.strip() and (n > 1 or line.strip().lstrip("\ufeff"))}


@fuzz(150)
@given(body=payload)
def test_fuzz_fhir_ndjson_reader(tmp_path_factory, body: bytes):
    path = tmp_path_factory.mktemp("fhir") / "Export.000.ndjson"
    path.write_bytes(json.dumps(PATIENT).encode() + b"\n" + json.dumps(EPISODE).encode() + b"\n" + body)
    builder = RecordingBuilder(VOCAB)
    try:
        FhirAdapter().load(path, builder, {})  # type: ignore[arg-type]
    except DataError as exc:
        assert path.name in str(exc)
        return
    assert builder.touched[path.name] == fhir_lines(path)
    assert {1, 2} <= builder.touched[path.name] - builder.rejected.get(path.name, set())


# Structure-aware: resources of the types the adapter reads, with any JSON at the elements it looks at.
ELEMENTS = (
    "reference", "system", "code", "value", "coding", "start", "end", "actor", "individual", "linkId", "answer",
    "valueString", "valueCoding", "display", "type", "identifier", "item",
)  # fmt: skip
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**12),
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(float),
        st.text(max_size=20),
        st.sampled_from(["Patient/p1", "urn:uuid:1", "2017-05-03", "2017-05", "31/02/2018", NHS, "http://snomed.info/sct"]),
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.sampled_from(ELEMENTS), children, max_size=4)),
    max_leaves=12,
)
RESOURCE_ELEMENTS = (
    "id", "identifier", "birthDate", "gender", "patient", "subject", "source", "author", "period", "status", "code",
    "recordedDate", "onsetDateTime", "verificationStatus", "effectiveDateTime", "valueInteger", "valueQuantity",
    "valueDecimal", "valueCodeableConcept", "performer", "authored", "item", "performedDateTime", "performedPeriod",
    "participant", "type", "reasonCode",
)  # fmt: skip
TYPES = ("Patient", "EpisodeOfCare", "Condition", "Observation", "QuestionnaireResponse", "Procedure", "Encounter", "Spaceship")
resources = st.builds(
    lambda rtype, fields: {"resourceType": rtype, **fields},
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(RESOURCE_ELEMENTS), json_values, max_size=6),
)


@fuzz(150)
@given(entries=st.lists(st.one_of(resources, json_values), max_size=8), episodes=st.sampled_from(["episodeofcare", "encounters"]))
def test_fuzz_fhir_bundle_mapping(tmp_path_factory, entries: list[Any], episodes: str):
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": PATIENT}, {"resource": EPISODE}]
        + [{"resource": e, "fullUrl": f"urn:uuid:{i}"} if i % 2 else {"resource": e} for i, e in enumerate(entries)],
    }
    path = tmp_path_factory.mktemp("fhir") / "bundle.json"
    path.write_text(json.dumps(bundle))
    builder = RecordingBuilder(VOCAB)
    FhirAdapter().load(path, builder, {"episodes": episodes})  # type: ignore[arg-type]
    assert builder.touched[path.name] == set(range(1, len(bundle["entry"]) + 1))


# --------------------------------------------------------------------------- YAML ruleset loader


@fuzz(300)
@given(text=st.one_of(format_text, st.text(alphabet=st.sampled_from(":-[]{}&*!|>'\"#%@`?,\n \t abc1"), max_size=200)))
def test_fuzz_yaml_reader(text: str):
    try:
        load_yaml_text(text, "rules.yaml")
    except RulesetError as exc:
        assert str(exc).startswith("rules.yaml")


BUNDLED = BUNDLED_DIR / "cquin_2017_19.yaml"


def _plain(x: Any) -> Any:
    if isinstance(x, Decimal):
        return float(x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


RULESET_DOC = _plain(load_yaml_file(BUNDLED).data)


def _paths(x: Any, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(x, dict):
        for k, v in x.items():
            out += _paths(v, here + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += _paths(v, here + (i,))
    return out


PATHS = _paths(RULESET_DOC)[1:]
REPLACEMENTS = st.one_of(
    st.sampled_from([None, 0, -1, 10**30, 1.5, "", "x", "year1.end", "2017-02-30", True, [], {}, [None], {"a": 1}]),
    st.sampled_from([{"all_of": []}, {"population": "nowhere"}, {"not": None}, [1, 2], "x" * 500]),
)


@pytest.fixture(scope="module")
def ruleset_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ruleset")
    (folder / "codelists").symlink_to(BUNDLED_DIR / "codelists")
    return folder


@fuzz(25)
@given(mutations=st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.just("delete"), REPLACEMENTS)), min_size=1, max_size=3))
def test_fuzz_ruleset_checker_with_mutated_policy(ruleset_folder: Path, mutations):
    doc = copy.deepcopy(RULESET_DOC)
    for path, value in mutations:
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if value == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    target = ruleset_folder / "mutated.yaml"
    target.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    ruleset, problems = check_ruleset(target)
    assert ruleset is not None or any(p.severity == "error" for p in problems)
    try:
        load_ruleset(target)
    except RulesetError as exc:
        assert str(target) in str(exc)
    except CquinError as exc:  # pragma: no cover - a failure message for any other CquinError
        raise AssertionError(f"load_ruleset raised {type(exc).__name__}, not RulesetError: {exc}") from None
