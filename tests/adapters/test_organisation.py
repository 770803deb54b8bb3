"""The organisation's own records beside any export (issue 14 item 2).

A FHIR or CSDS export never carries the plan dates, the staff list or the
training records, so whatever adapter reads the export, cquin reads
``provider.csv``, ``staff.csv``, ``training.csv`` and ``overrides.csv`` from
``--org DIR`` or from beside the export, checked and ledgered like any input.
Without them every output starts by saying what is missing and what it costs.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.dataset import Vocabulary
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import DataError
from cquin.loading import load_dataset
from cquin.render.files import write_submission
from cquin.runner import run_evaluation, verify_run

FIXTURES = Path(__file__).parent.parent / "fixtures"
POPULATION = FIXTURES / "equivalence"
ORG_FILES = ("provider.csv", "staff.csv", "training.csv")
PROVIDER = "provider_code,provider_name,plan_agreed_on,recording_system_live_on\nRYX,Test Community Trust,2017-09-15,2018-01-10\n"
STAFF = "staff_id,role,cares_for_cohort\nS1,District nurse,true\nS2,Physiotherapist,true\nS3,Receptionist,false\n"
TRAINING = "staff_id,completed_on,course\nS1,2017-10-02,PCSP e-learning\nS2,2018-02-20,Health coaching\n"
VALUE = Decimal("1000000")


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return load_ruleset("cquin_2017_19").vocabulary()


def write_org(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in zip(ORG_FILES, (PROVIDER, STAFF, TRAINING), strict=True):
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def export_copy(tmp_path: Path, fmt: str) -> Path:
    out = tmp_path / f"export-{fmt}"
    shutil.copytree(POPULATION / fmt, out)
    return out


def payments(source: Path, **kw: object) -> dict[str, Decimal]:
    ev = run_evaluation(source, contract_value=VALUE, **kw)  # type: ignore[arg-type]
    return {c.id: c.payment for c in ev.result.components}


@pytest.mark.parametrize("fmt", ["fhir", "csds"])
def test_org_files_beside_the_export_pay_the_plan_and_training(tmp_path: Path, fmt: str) -> None:
    export = export_copy(tmp_path, fmt)
    before = payments(export)
    write_org(export)
    after = payments(export)
    assert before["y1.plan"] == 0 and before["y1.staff_training"] == 0
    assert after["y1.plan"] == Decimal("625.00")  # plan and recording system by year end: 100% of 25%
    assert after["y1.staff_training"] == Decimal("750.00")  # 2 of 2 relevant staff trained: 100% of 30%


@pytest.mark.parametrize("fmt", ["fhir", "csds"])
def test_org_dir_option_gives_the_same_result_as_files_beside_the_export(tmp_path: Path, fmt: str) -> None:
    org = write_org(tmp_path / "org")
    beside = export_copy(tmp_path, fmt)
    write_org(beside)
    assert payments(POPULATION / fmt, org=org) == payments(beside)


def test_org_files_are_ledgered_and_hashed_like_any_input(tmp_path: Path, vocab: Vocabulary) -> None:
    org = write_org(tmp_path / "org")
    ds, _ = load_dataset(POPULATION / "fhir", vocab, "fhir", org=org)
    staff = ds.ledger.files["staff.csv"]
    assert (staff.read, staff.accepted, staff.rejected) == (3, 3, 0)
    assert staff.sha256 is not None and len(staff.sha256) == 64
    assert Path(staff.path or "").resolve() == (org / "staff.csv").resolve()
    assert ds.count("staff") == 3 and ds.count("provider") == 1


def test_a_bad_org_row_is_rejected_with_its_own_file_and_line(tmp_path: Path, vocab: Vocabulary) -> None:
    org = write_org(tmp_path / "org")
    (org / "training.csv").write_text(TRAINING + "S3,31/02/2018,Bad date\n", encoding="utf-8")
    ds, _ = load_dataset(POPULATION / "csds", vocab, "csds", org=org)
    rows = ds.con.execute("SELECT file, line, column_name FROM rejections").fetchall()
    assert rows == [("training.csv", 4, "completed_on")]


def test_a_file_both_beside_the_export_and_in_org_is_refused(tmp_path: Path, vocab: Vocabulary) -> None:
    export = write_org(export_copy(tmp_path, "fhir"))
    org = write_org(tmp_path / "org")
    with pytest.raises(DataError, match="both beside the export"):
        load_dataset(export, vocab, "fhir", org=org)


def test_an_org_folder_that_does_not_exist_is_a_clear_error(tmp_path: Path, vocab: Vocabulary) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_dataset(POPULATION / "fhir", vocab, "fhir", org=tmp_path / "nowhere")


def test_missing_org_files_are_noted(tmp_path: Path, vocab: Vocabulary) -> None:
    ds, _ = load_dataset(POPULATION / "fhir", vocab, "fhir")
    assert "staff.csv: not supplied, so there are no staff records" in ds.ledger.notes
    (tmp_path / "org").mkdir()
    ds, _ = load_dataset(POPULATION / "fhir", vocab, "fhir", org=tmp_path / "org")
    assert (
        "staff.csv: not supplied (neither in --org DIR nor beside the export), so there are no staff records" in ds.ledger.notes
    )


def test_the_canonical_adapter_takes_org_files_from_org_too(tmp_path: Path) -> None:
    org = write_org(tmp_path / "org")
    assert payments(POPULATION / "canonical", org=org) == payments(POPULATION / "fhir", org=org)


# ---------------------------------------------------------------- missing evidence in every output


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_the_table_output_starts_with_what_is_missing_and_what_it_costs(tmp_path: Path) -> None:
    out = cli("evaluate", str(POPULATION / "fhir"), "--no-store", "--contract-value", "1000000")
    first = out.splitlines()[:3]
    assert first[0].startswith("Year 1 (2017/18): 55% of the year's value (£1,375.00 of £2,500.00) rests on missing evidence")
    assert "y1.plan" in first[1] and "no provider.csv" in first[1] and "£625.00" in first[1] and "--org DIR" in first[1]
    assert "y1.staff_training" in first[2] and "no staff.csv and no training.csv" in first[2] and "£750.00" in first[2]


def test_json_output_leads_with_missing_evidence_and_is_empty_when_supplied(tmp_path: Path) -> None:
    doc = json.loads(cli("evaluate", str(POPULATION / "csds"), "--no-store", "--format", "json"))
    assert list(doc)[:3] == ["data_quality_check", "identifiers", "evidence_missing"]
    assert [g["component"] for g in doc["evidence_missing"]["components"]] == ["y1.plan", "y1.staff_training"]
    org = write_org(tmp_path / "org")
    doc = json.loads(cli("evaluate", str(POPULATION / "csds"), "--no-store", "--format", "json", "--org", str(org)))
    assert doc["evidence_missing"] == {"summary": [], "components": []}


def test_csv_output_marks_each_component_whose_evidence_is_missing() -> None:
    rows = list(csv.DictReader(io.StringIO(cli("evaluate", str(POPULATION / "fhir"), "--no-store", "--format", "csv"))))
    marked = {r["component"] for r in rows if r["evidence_missing"]}
    assert marked == {"y1.plan", "y1.staff_training"}


def test_stored_outputs_show_missing_evidence_first(tmp_path: Path) -> None:
    store = tmp_path / "audit.sqlite"
    ev = run_evaluation(POPULATION / "fhir", store=store, contract_value=VALUE)
    assert ev.run_id
    shown = cli("runs", "show", ev.run_id, "--store", str(store)).splitlines()
    assert shown[0].startswith("EVIDENCE MISSING") and "y1.plan" in shown[0]  # before the run's own description
    out = tmp_path / "submission.csv"
    write_submission(store, ev.run_id, out)
    first = next(csv.reader(out.open(encoding="utf-8-sig"), delimiter=","), None)  # UTF-8 with BOM, for Excel
    lines = list(csv.reader(out.open(encoding="utf-8-sig")))
    assert first == ["item", "measure", "value", "disclosure"]
    assert lines[1][0] == "data_quality_check"  # the verdict on the data comes first, then what is missing
    assert lines[2][0] == "evidence_missing" and "y1.plan" in lines[2][2]


def test_a_run_with_org_files_verifies_identical(tmp_path: Path) -> None:
    org = write_org(tmp_path / "org")
    store = tmp_path / "audit.sqlite"
    ev = run_evaluation(POPULATION / "fhir", store=store, contract_value=VALUE, org=org)
    assert ev.run_id and not ev.result.evidence_gaps
    assert verify_run(store, ev.run_id).identical
    (org / "staff.csv").write_text(STAFF + "S4,Nurse,true\n", encoding="utf-8")
    v = verify_run(store, ev.run_id)
    assert not v.identical and any("staff.csv" in p for p in v.problems)


def test_cquin_load_writes_the_org_files_into_the_canonical_folder(tmp_path: Path, vocab: Vocabulary) -> None:
    org = write_org(tmp_path / "org")
    out = tmp_path / "canonical"
    cli("load", str(POPULATION / "csds"), "--adapter", "csds", "--org", str(org), "--out", str(out))
    for name in ORG_FILES:
        assert (out / name).is_file(), name
    assert payments(out) == payments(POPULATION / "csds", org=org)


def test_a_commissioners_manifest_names_each_providers_org_folder(tmp_path: Path) -> None:
    from cquin.many import evaluate_many, read_manifest

    write_org(tmp_path / "north-org")
    manifest = tmp_path / "providers.yaml"
    manifest.write_text(
        f"providers:\n  - name: North\n    source: {POPULATION / 'fhir'}\n    adapter: fhir\n"
        "    contract_value: 1000000\n    org: north-org\n",
        encoding="utf-8",
    )
    [run] = evaluate_many(read_manifest(manifest), store=tmp_path / "audit.sqlite")
    components = {c["component"]: c for c in load_run_components(tmp_path / "audit.sqlite", run.run_id)}
    assert components["y1.plan"]["payment"] == "625.00"


def load_run_components(store: Path, run_id: str) -> list[dict]:
    from cquin.store import load_run, open_store

    return list(load_run(open_store(store), run_id).components)
