"""One population in every real rendering: canonical CSV, FHIR, and CSDS as TOS, pipeline and NCDR extracts.

``tests/fixtures/renderings`` (written by its ``build_renderings.py`` from the demo
generator's population) holds the same patients, conditions, PAM assessments and
conversations in each format, with the organisation's files in ``org/``.  Whatever
the rendering, cquin must build the same canonical tables and pay the same CQUIN;
the NCDR copy is keyed by pseudonymous PERSON IDs, so its tables are compared
after mapping NHS numbers to PERSON IDs (``person-ids.csv``, test data only).
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import Ruleset, load_ruleset
from cquin.loading import load_dataset
from tests.adapters.ledger_checks import records_in

HERE = Path(__file__).parent.parent / "fixtures" / "renderings"
ORG = HERE / "org"
# folder -> (adapter, options)
FORMATS = {
    "canonical": ("canonical", {}),
    "fhir": ("fhir", {}),
    "csds-tos": ("csds", {}),
    "csds-pipeline": ("csds", {}),
    "csds-ncdr": ("csds", {"dates": "uk"}),
}
RECORD_TABLES = ("patients", "conditions", "assessments", "conversations")
RENDERING_NOTES = {
    "csds-tos": "Technical Output Specification item names",
    "csds-pipeline": "NHS Digital pipeline names",
    "csds-ncdr": "NCDR / data-lake rendering",
}


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset("cquin_2017_19")


@pytest.fixture(scope="module")
def vocab(ruleset: Ruleset) -> Vocabulary:
    return ruleset.vocabulary()


@pytest.fixture(scope="module")
def datasets(vocab: Vocabulary) -> dict[str, CanonicalDataset]:
    out = {}
    for folder, (adapter, options) in FORMATS.items():
        ds, name = load_dataset(HERE / folder, vocab, adapter, options, org=ORG)
        assert name == adapter
        out[folder] = ds
    return out


@pytest.fixture(scope="module")
def person_ids() -> dict[str, str]:
    with (HERE / "person-ids.csv").open(encoding="utf-8") as fh:
        return {r["nhs_number"]: r["person_id"] for r in csv.DictReader(fh)}


def rows(ds: CanonicalDataset, table: str) -> list[tuple]:
    return ds.con.execute(f"SELECT * EXCLUDE (_file, _line, _ref) FROM {table} ORDER BY ALL").fetchall()


def pseudonymised(found: list[tuple], ids: dict[str, str]) -> list[tuple]:
    """Rows with the NHS number (always the first column) replaced by its PERSON ID, re-sorted."""
    return sorted((ids[r[0]], *r[1:]) for r in found)


def test_the_fixtures_hold_a_few_thousand_records_in_each_csds_rendering() -> None:
    for folder in ("csds-tos", "csds-pipeline", "csds-ncdr"):
        records = sum(len(p.read_text(encoding="utf-8").splitlines()) - 1 for p in (HERE / folder).glob("*.csv"))
        assert 2_000 <= records <= 6_000, (folder, records)


@pytest.mark.parametrize("folder", list(FORMATS))
def test_every_record_is_read_and_counts_balance(datasets: dict[str, CanonicalDataset], folder: str) -> None:
    files = datasets[folder].ledger.files
    data = sorted(p.name for p in (HERE / folder).iterdir() if p.suffix in (".csv", ".ndjson"))
    assert sorted(files) == sorted(data + [p.name for p in ORG.iterdir()])
    for name, stats in files.items():
        path = HERE / folder / name if (HERE / folder / name).exists() else ORG / name
        expected = (
            sum(1 for line in path.open(encoding="utf-8") if line.strip()) if path.suffix == ".ndjson" else records_in(path)
        )
        assert (stats.read, stats.accepted + stats.rejected) == (expected, expected), name


@pytest.mark.parametrize("folder", list(FORMATS))
def test_nothing_is_rejected_but_what_cquin_does_not_use(datasets: dict[str, CanonicalDataset], folder: str) -> None:
    found = datasets[folder].con.execute("SELECT file, reason FROM rejections").fetchall()
    assert [f for f in found if not f[1].startswith("ignored:")] == []
    if folder.startswith("csds"):  # the care activities at which PAM was recorded are not conversations
        assert {file for file, _ in found} == {"CYP202CareActivity.csv"}


@pytest.mark.parametrize("folder", [f for f in RENDERING_NOTES])
def test_each_csds_rendering_is_detected_from_its_headers(datasets: dict[str, CanonicalDataset], folder: str) -> None:
    assert any(RENDERING_NOTES[folder] in n for n in datasets[folder].ledger.notes), datasets[folder].ledger.notes


@pytest.mark.parametrize("table", RECORD_TABLES)
@pytest.mark.parametrize("folder", ["fhir", "csds-tos", "csds-pipeline"])
def test_each_table_is_identical_to_the_canonical_one(datasets: dict[str, CanonicalDataset], folder: str, table: str) -> None:
    assert rows(datasets[folder], table) == rows(datasets["canonical"], table)


@pytest.mark.parametrize("table", RECORD_TABLES)
def test_the_ncdr_copy_is_the_same_population_under_person_ids(
    datasets: dict[str, CanonicalDataset], person_ids: dict[str, str], table: str
) -> None:
    assert rows(datasets["csds-ncdr"], table) == pseudonymised(rows(datasets["canonical"], table), person_ids)


def test_the_ncdr_copy_says_its_identifiers_are_pseudonymous(datasets: dict[str, CanonicalDataset]) -> None:
    assert datasets["csds-ncdr"].pseudonymous and "pseudonymous" in datasets["csds-ncdr"].pseudonymous
    assert datasets["csds-tos"].pseudonymous is None


def test_nhs_number_status_is_reported(datasets: dict[str, CanonicalDataset]) -> None:
    note = next(n for n in datasets["csds-tos"].ledger.notes if "NHS number status" in n)
    assert "01 number present and verified" in note and "02 number present but not traced" in note


def test_every_format_pays_the_same(ruleset: Ruleset, vocab: Vocabulary) -> None:
    results = {}
    for folder, (adapter, options) in FORMATS.items():
        ds, _ = load_dataset(HERE / folder, vocab, adapter, options, org=ORG)
        results[folder] = [c.as_dict() for c in evaluate(ruleset, ds, contract_value=Decimal("2000000")).components]
    for folder in FORMATS:
        assert results[folder] == results["canonical"], folder
    # The population exercises every component: each has people (or staff) in its denominator.
    assert all(c["denominator"] for c in results["canonical"] if c["id"] != "y1.plan")
