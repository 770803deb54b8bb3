"""One population, three formats: canonical CSV, FHIR and CSDS load to the same canonical dataset.

``tests/fixtures/equivalence`` holds five people (six episodes of care) written
as a canonical CSV folder, a FHIR Bulk Data export and a CSDS submission; its
README is the specification of every row and how each format expresses it.
Whatever format a provider exports, cquin must see the same patients,
conditions, assessments and conversations, and so pay the same CQUIN.  Tables
are compared by their canonical columns (``_file``, ``_line`` and ``_ref`` say
where a row came from, which differs by format), as sorted rows of typed values.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import Ruleset, load_ruleset
from cquin.loading import load_dataset

POPULATION = Path(__file__).parent.parent / "fixtures" / "equivalence"
FORMATS = ("canonical", "fhir", "csds")  # each is both the adapter's name and the fixture folder
TABLES = ("patients", "conditions", "assessments", "conversations", "staff", "training", "overrides", "provider")
# Rows per table, as described in the fixture README: one patients row per episode of care.
EXPECTED_ROWS = {"patients": 6, "conditions": 7, "assessments": 5, "conversations": 2}
# What care plans say, as far as each format can say it (see the README): FHIR every row; CSDS only the entries
# the ruleset gives SNOMED CT codes for, and never whether the plan was shared (no CSDS item records it).
CARE_PLAN_ROWS = {"canonical": 7, "fhir": 7, "csds": 1}


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset("cquin_2017_19")


@pytest.fixture(scope="module")
def vocab(ruleset: Ruleset) -> Vocabulary:
    return ruleset.vocabulary()


@pytest.fixture(scope="module")
def datasets(vocab: Vocabulary) -> dict[str, CanonicalDataset]:
    return {fmt: load(fmt, vocab) for fmt in FORMATS}


def load(fmt: str, vocab: Vocabulary) -> CanonicalDataset:
    ds, name = load_dataset(POPULATION / fmt, vocab, adapter=fmt)
    assert name == fmt
    return ds


def canonical_rows(ds: CanonicalDataset, table: str) -> tuple[list[str], list[tuple]]:
    """The table's canonical column names and its rows, sorted, without where each row came from."""
    cur = ds.con.execute(f"SELECT * EXCLUDE (_file, _line, _ref) FROM {table} ORDER BY ALL")
    rows = cur.fetchall()
    return [d[0] for d in cur.description], rows


def records_in(path: Path) -> int:
    """Records in one source file: CSV rows after the header, or non-blank NDJSON lines."""
    lines = [line for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if path.suffix == ".ndjson":
        for line in lines:
            json.loads(line)  # the fixture itself must be well formed
        return len(lines)
    return len(lines) - 1


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_record_of_any_format_is_rejected(datasets: dict[str, CanonicalDataset], fmt: str) -> None:
    rejections = datasets[fmt].con.execute("SELECT file, line, column_name, value, reason FROM rejections").fetchall()
    assert rejections == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_record_of_every_file_is_read_and_accepted(datasets: dict[str, CanonicalDataset], fmt: str) -> None:
    files = datasets[fmt].ledger.files
    data_files = sorted(p.name for p in (POPULATION / fmt).iterdir() if p.suffix in (".csv", ".ndjson"))
    assert sorted(files) == data_files
    for name, stats in files.items():
        assert stats.read == records_in(POPULATION / fmt / name), name
        assert stats.read == stats.accepted + stats.rejected, name
        assert stats.rejected == 0, name


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_the_rows_the_readme_describes(datasets: dict[str, CanonicalDataset], fmt: str) -> None:
    counts = {t: datasets[fmt].con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in (*TABLES, "care_plans")}
    assert counts == {**dict.fromkeys(TABLES, 0), **EXPECTED_ROWS, "care_plans": CARE_PLAN_ROWS[fmt]}


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("fmt", ["fhir", "csds"])
def test_each_table_is_identical_to_the_canonical_csv_one(datasets: dict[str, CanonicalDataset], fmt: str, table: str) -> None:
    assert canonical_rows(datasets[fmt], table) == canonical_rows(datasets["canonical"], table)


def test_the_bundled_ruleset_scores_each_format_identically(ruleset: Ruleset, vocab: Vocabulary) -> None:
    # Fresh loads: evaluation adds its own tables to the dataset's connection.
    results = {}
    for fmt in FORMATS:
        result = evaluate(ruleset, load(fmt, vocab), contract_value=Decimal("1000000"))
        results[fmt] = [c.as_dict() for c in result.components]
    assert results["fhir"] == results["canonical"]
    assert results["csds"] == results["canonical"]
    # The population exercises the indicator: every patient-based component has people in its denominator.
    assert all(c["denominator"] for c in results["canonical"] if c["id"] not in ("y1.plan", "y1.staff_training"))


def test_fhir_says_everything_the_canonical_care_plans_say(datasets: dict[str, CanonicalDataset]) -> None:
    assert canonical_rows(datasets["fhir"], "care_plans") == canonical_rows(datasets["canonical"], "care_plans")


def test_csds_says_the_coded_care_plan_entries_the_canonical_ones_say_without_the_shared_flag(
    datasets: dict[str, CanonicalDataset], vocab: Vocabulary
) -> None:
    """CSDS codes care activities in SNOMED CT only: it carries the entries the ruleset has SNOMED CT codes for."""
    coded = {pair for codes in vocab.care_plan_category_codes.values() for pair in codes.values()}
    assert coded  # the bundled ruleset codes at least one kind of entry
    columns, rows = canonical_rows(datasets["canonical"], "care_plans")
    at = {name: i for i, name in enumerate(columns)}
    expressible = sorted(
        tuple(None if c == "shared_with_patient" else v for c, v in zip(columns, row, strict=True))
        for row in rows
        if (row[at["entry"]], row[at["category"]]) in coded
    )
    assert canonical_rows(datasets["csds"], "care_plans") == (columns, expressible)
