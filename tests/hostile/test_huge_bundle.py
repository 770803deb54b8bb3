"""A huge FHIR Bundle (50,000 resources, generated here) loads with every resource accounted for.

A Bundle is one JSON document, read whole; this checks that a large one is
read without losing or double-counting an entry, with one in a thousand
conditions pointing at a Patient that is not there (each rejected with its
reason) and one in a hundred of a type cquin does not use (ignored, with a
reason).  Bulk Data NDJSON is the format for exports larger than memory; see
docs/scaling.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from cquin.dataset import Vocabulary
from cquin.loading import load_dataset
from tests.properties.populations import nhs_number

PATIENTS = 10_000
CONDITIONS = 29_500
OTHERS = 500  # Immunization resources: read, ignored with a reason
NHS = "https://fhir.nhs.uk/Id/nhs-number"
CODES = ("44054006", "38341003", "26929004", "195967001")


def huge_bundle() -> dict:
    entries = []
    for i in range(PATIENTS):
        entries.append(
            {
                "resource": {
                    "resourceType": "Patient",
                    "id": f"p{i}",
                    "identifier": [{"system": NHS, "value": nhs_number(i + 1)}],
                    "birthDate": "1950-01-01",
                }
            }
        )
        entries.append(
            {
                "resource": {
                    "resourceType": "EpisodeOfCare",
                    "id": f"e{i}",
                    "patient": {"reference": f"Patient/p{i}"},
                    "period": {"start": "2016-04-01"},
                }
            }
        )
    for j in range(CONDITIONS):
        subject = f"Patient/p{j % PATIENTS}" if j % 1000 else f"Patient/missing{j}"
        code = CODES[(j // PATIENTS) % len(CODES)]
        entries.append(
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c{j}",
                    "subject": {"reference": subject},
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
                    "recordedDate": "2016-05-01",
                }
            }
        )
    entries += [{"resource": {"resourceType": "Immunization", "id": f"i{k}"}} for k in range(OTHERS)]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def test_a_50000_resource_bundle_loads_with_every_entry_accounted_for(tmp_path: Path, vocab: Vocabulary):
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(huge_bundle()))
    ds, adapter = load_dataset(path, vocab, adapter="fhir")
    stats = ds.ledger.files["huge.json"]
    total = 2 * PATIENTS + CONDITIONS + OTHERS
    assert total == 50_000
    assert stats.read == total
    assert stats.read == stats.accepted + stats.rejected
    missing = CONDITIONS // 1000 + (1 if CONDITIONS % 1000 else 0)
    assert stats.rejected == missing + OTHERS
    assert ds.count("patients") == PATIENTS
    assert ds.count("conditions") == CONDITIONS - missing
    reasons = ds.con.execute(
        "SELECT count(*) FILTER (WHERE reason LIKE 'unknown patient %'), count(*) FILTER (WHERE reason LIKE 'ignored: %') FROM rejections"
    ).fetchone()
    assert reasons == (missing, OTHERS)
