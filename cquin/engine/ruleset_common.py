"""What the ruleset model and its checker share: problems at a place, code lists as loaded, date references.

Below both :mod:`cquin.engine.ruleset` (the model and loading) and :mod:`cquin.engine.ruleset_check`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from cquin.config.yaml_source import Location

# A code list is matched against every condition record in every evaluation: the largest real lists (whole
# SNOMED CT reference sets for a condition group) hold thousands of codes; far more is the wrong file.
MAX_CODES_PER_LIST = 100_000
MAX_CODE_LIST_BYTES = 16_000_000
DATE_REF = re.compile(r"^(?P<period>[a-z][a-z0-9_]*)(\.(?P<quarter>[A-Za-z][A-Za-z0-9_]*))?\.(?P<edge>start|end)$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a ruleset, at a place in a file."""

    location: Location
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.location}: {tag}{self.message}"


@dataclass(frozen=True)
class CodeList:
    """A code list file as loaded: its codes (normalised) and where each came from."""

    id: str
    system: str
    path: Path
    codes: dict[str, int]  # normalised code -> line in the file
    terms: dict[str, str]
    sha256: str


def provider_dates() -> list[str]:
    """The provider table's date columns in its schema's order: what an attainment level may require by a date."""
    from cquin.dataset.tables import table

    return [c.name for c in table("provider").columns if c.kind == "date"]


def normalise_answer(text: str) -> str:
    """GPPS answers match case-insensitively, ignoring surrounding white space."""
    return " ".join(text.split()).casefold()


def resolve_date(doc: dict[str, Any], ref: str) -> dt.date:
    if ISO_DATE.match(ref):
        return dt.date.fromisoformat(ref)
    m = DATE_REF.match(ref)
    if not m:
        raise KeyError(ref)
    period = doc["periods"][m["period"]]
    if m["quarter"]:
        quarter = next(q for q in period.get("quarters", []) if q["id"] == m["quarter"])
        return dt.date.fromisoformat(quarter["from" if m["edge"] == "start" else "to"])
    return dt.date.fromisoformat(period["from" if m["edge"] == "start" else "to"])


def schema() -> dict[str, Any]:
    text = resources.files("cquin.schemas").joinpath("ruleset.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))
