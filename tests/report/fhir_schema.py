"""The official FHIR R4 JSON schema (vendored, see tests/fixtures/fhir-r4-schema/README.md) as a validator."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft6Validator

from cquin.measure import json_default

SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "fhir-r4-schema" / "fhir.schema.json.gz"


@functools.cache
def _schema() -> dict[str, Any]:
    return json.loads(gzip.decompress(SCHEMA.read_bytes()))


@functools.cache
def _validator(resource_type: str) -> Draft6Validator:
    # The schema's root is a oneOf over every resource; naming the definition gives errors with their paths.
    schema = {k: v for k, v in _schema().items() if k not in ("oneOf", "discriminator")}
    schema["$ref"] = f"#/definitions/{resource_type}"
    return Draft6Validator(schema)


def schema_errors(resource: dict[str, Any]) -> list[str]:
    """Every way ``resource`` breaks the R4 JSON schema (``[]`` when it is valid)."""
    doc = json.loads(json.dumps(resource, default=json_default))
    if doc.get("resourceType") not in _schema()["definitions"]:
        return [f"unknown resourceType {doc.get('resourceType')!r}"]
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in _validator(doc["resourceType"]).iter_errors(doc)]
