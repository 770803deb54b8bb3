"""The canonical dataset's tables, read from their JSON Schemas in ``cquin/schemas``.

The schemas are the contract every adapter produces: column names and order,
which columns are required (a required column must be present in the header and
non-empty in every row), and what kind of value each holds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

TABLE_NAMES = (
    "patients",
    "conditions",
    "assessments",
    "conversations",
    "care_plans",
    "staff",
    "training",
    "overrides",
    "provider",
)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # nhs_number, date, enum, text, boolean, pam_score, pam_level, gpps_answer, code, care_plan_category
    required: bool
    values: tuple[str, ...] = ()  # for enum
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    columns: tuple[Column, ...]
    # "organisation": the provider's own records (plan dates, staff list, training, agreed overrides), which no
    # patient-record export carries; every adapter's run reads them from the export folder or ``--org DIR``.
    source: str = "records"

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def organisational(self) -> bool:
        return self.source == "organisation"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


def table_schema(name: str) -> dict:
    text = resources.files("cquin.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


@cache
def table(name: str) -> Table:
    schema = table_schema(name)
    required = set(schema.get("required", []))
    cols = tuple(
        Column(
            name=col,
            kind=spec["x-cquin-kind"],
            required=col in required,
            values=tuple(v for v in spec.get("enum", []) if v),
            description=spec.get("description", ""),
        )
        for col, spec in schema["properties"].items()
    )
    return Table(name, schema.get("description", ""), cols, schema.get("x-cquin-source", "records"))


def tables() -> list[Table]:
    return [table(n) for n in TABLE_NAMES]


def organisation_tables() -> tuple[str, ...]:
    """The tables that hold the organisation's own records rather than patient records."""
    return tuple(n for n in TABLE_NAMES if table(n).organisational)
