"""The mapped adapter: any export read by a YAML mapping, with the same results as the canonical copy."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import xlsxwriter
from typer.testing import CliRunner

from cquin.adapters.mapped import MappedAdapter
from cquin.cli import app
from cquin.dataset import TABLE_NAMES, CanonicalDataset, DatasetBuilder
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import ConfigError, UserError
from cquin.mapping import check_mapping
from cquin.testing import assert_conforms
from tests.adapters.test_excel import load as load_canonical

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mappings"
NAMES = ["systmone-style", "emis-style", "csds-flat"]
RULESET = load_ruleset("cquin_2017_19")
runner = CliRunner()


def load(folder: Path, mapping: Path | None = None) -> CanonicalDataset:
    adapter = MappedAdapter()
    builder = DatasetBuilder(RULESET.vocabulary())
    adapter.load(folder, builder, adapter.option_values({"mapping": str(mapping)} if mapping else {}))
    return builder.build()


def rows(ds: CanonicalDataset, name: str) -> list[tuple]:
    return ds.con.execute(f"SELECT * EXCLUDE (_file, _line, _ref) FROM {name} ORDER BY ALL").fetchall()


def records(path: Path, skip: int, delimiter: str) -> int:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return sum(1 for row in list(csv.reader(fh, delimiter=delimiter))[skip + 1 :] if row)


@pytest.fixture(scope="module", params=NAMES)
def example(request: pytest.FixtureRequest) -> tuple[Path, CanonicalDataset, CanonicalDataset]:
    folder = EXAMPLES / request.param
    return folder, load(folder), load_canonical(folder / "canonical")


def test_an_example_export_loads_with_balanced_counts(example) -> None:  # type: ignore[no-untyped-def]
    folder, ds, _ = example
    for name, stats in ds.ledger.files.items():
        assert stats.read == stats.accepted + stats.rejected, name
        file = Path(str(stats.path))
        skip = 3 if folder.name == "systmone-style" and file.suffix == ".csv" and file.name[0].isupper() else 0
        delimiter = {".txt": "\t" if folder.name == "emis-style" else "|"}.get(file.suffix, ",")
        assert stats.read == records(file, skip, delimiter), name
    # The only rows not used are those the mapping skips, each with the mapping's reason.
    assert all(r[5].startswith("ignored: ") for r in ds.ledger.rejection_rows())


def test_an_example_export_gives_the_canonical_copys_tables_and_results(example) -> None:  # type: ignore[no-untyped-def]
    _, ds, canonical = example
    for name in TABLE_NAMES:
        assert rows(ds, name) == rows(canonical, name), name
    a, b = evaluate(RULESET, ds), evaluate(RULESET, canonical)
    assert [c.as_dict() for c in a.components] == [c.as_dict() for c in b.components]
    assert (a.totals, a.cohorts, a.populations) == (b.totals, b.cohorts, b.populations)
    assert a.cohorts["year1"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_the_mapped_adapter_passes_the_conformance_kit(name: str) -> None:
    assert_conforms(MappedAdapter, EXAMPLES / name)


@pytest.mark.parametrize("name", NAMES)
def test_the_example_mappings_are_valid(name: str) -> None:
    mapping, problems = check_mapping(EXAMPLES / name / "cquin-mapping.yaml")
    assert problems == [] and mapping is not None


def test_evaluate_with_adapter_mapped_and_a_mapping_file(tmp_path: Path) -> None:
    folder = EXAMPLES / "systmone-style"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(folder),
            "--adapter",
            "mapped",
            "--mapping",
            str(folder / "cquin-mapping.yaml"),
            "--no-store",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["data_quality_check"]["status"] == "passed"
    assert doc["data_quality"]["Care Planning Contacts.csv"]["rejected"] == 7


BROKEN = """\
mapping_version: 1
tables:
  patients:
    file: caseload.csv
    colums:
      patient_id: {column: NHS Number}
  conditions:
    file: codes.csv
    columns:
      patient_id: {column: NHS Number}
      code_sytem: {constant: snomed}
      code: {column: Code}
      recorded_on: {column: Date, constant: "2017-01-01"}
"""


def test_a_broken_mapping_is_reported_at_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    _, problems = check_mapping(path)
    assert any(p.startswith(f"{path}:5:") and "colums" in p for p in problems), problems
    result = runner.invoke(app, ["mapping", "check", str(path)])
    assert result.exit_code == 2
    assert f"{path}:5:" in result.stdout


def test_meaning_problems_are_reported_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN.replace("colums", "columns"), encoding="utf-8")
    _, problems = check_mapping(path)
    assert any(p.startswith(f"{path}:11:") and "'code_sytem' is not a column of the conditions table" in p for p in problems)
    assert any(p.startswith(f"{path}:13:") and "exactly one of column, constant or patient_key" in p for p in problems)
    assert any("the conditions table needs code_system (required)" in p for p in problems)


def test_a_mapping_is_data_nothing_in_it_is_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("mapping_version: 1\ntables: !!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="evil.yaml:2"):
        check_mapping(path)


def test_a_column_the_file_lacks_is_reported_at_the_mapping_line(tmp_path: Path) -> None:
    (tmp_path / "caseload.csv").write_text("NHS No,Referred\n9990000018,2017-01-01\n", encoding="utf-8")
    (tmp_path / "m.yaml").write_text(
        "mapping_version: 1\ntables:\n  patients:\n    file: caseload.csv\n    columns:\n"
        "      patient_id: {column: NHS Number}\n      served_from: {column: Referred}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"m\.yaml:6:\d+: the mapping names column\(s\) 'nhs number', which caseload\.csv does not have"
    ):
        load(tmp_path, tmp_path / "m.yaml")


def test_a_mapping_reads_a_worksheet_and_locates_rejections_to_the_cell(tmp_path: Path) -> None:
    wb = xlsxwriter.Workbook(str(tmp_path / "extract.xlsx"))
    ws = wb.add_worksheet("Caseload")
    ws.write_row(0, 0, ["Caseload report"])
    ws.write_row(2, 0, ["NHS Number", "Referral Date", "Gender"])
    ws.write_row(3, 0, ["9990000018", "05/03/2017", "F"])
    ws.write_row(4, 0, ["9990000026", "31/02/2017", "M"])
    wb.close()
    (tmp_path / "m.yaml").write_text(
        "mapping_version: 1\ndefaults: {date_formats: [DD/MM/YYYY]}\ntables:\n  patients:\n    file: extract.xlsx\n"
        "    sheet: Caseload\n    skip_lines: 2\n    columns:\n      patient_id: {column: NHS Number}\n"
        "      served_from: {column: Referral Date}\n      sex: {column: Gender, values: {F: female, M: male}}\n",
        encoding="utf-8",
    )
    ds = load(tmp_path, tmp_path / "m.yaml")
    assert ds.con.execute("SELECT patient_id, CAST(served_from AS VARCHAR), sex FROM patients").fetchall() == [
        ("9990000018", "2017-03-05", "female")
    ]
    ((file, line, ref, column, _, _),) = ds.ledger.rejection_rows()
    assert (file, line, ref, column) == ("extract.xlsx!Caseload", 5, "extract.xlsx!Caseload!B5", "served_from")


def test_mapping_draft_proposes_a_mapping_from_the_headers(tmp_path: Path) -> None:
    result = runner.invoke(app, ["mapping", "draft", str(EXAMPLES / "systmone-style"), "--out", str(tmp_path / "draft.yaml")])
    assert result.exit_code == 0, result.output
    mapping, problems = check_mapping(tmp_path / "draft.yaml")
    assert problems == [], problems
    assert mapping is not None
    patients = mapping.tables["patients"]
    assert (patients.file, patients.skip_lines) == ("Caseload.csv", 3)
    assert patients.columns["patient_id"].column == "nhs number"
    assert patients.columns["served_from"].column == "referral date"


def test_mapping_draft_never_overwrites_a_file(tmp_path: Path) -> None:
    (tmp_path / "draft.yaml").write_text("mine\n", encoding="utf-8")
    result = runner.invoke(app, ["mapping", "draft", str(EXAMPLES / "systmone-style"), "--out", str(tmp_path / "draft.yaml")])
    assert isinstance(result.exception, UserError) and "already exists" in str(result.exception)
    assert (tmp_path / "draft.yaml").read_text(encoding="utf-8") == "mine\n"
