"""`cquin ruleset import-codelist`: OpenCodelists downloads become checked code lists with their source recorded."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cquin import cli
from cquin.engine.codelist_import import read_download
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import UserError

from .conftest import CHILD_HEAD, write

runner = CliRunner()

# Rows copied from the bundled lists (which came from OpenCodelists downloads).
SNOMED_ROWS = [("44054006", "Diabetes mellitus type 2"), ("46635009", "Diabetes mellitus type 1")]


@pytest.mark.parametrize(
    ("header", "rows"),
    [
        ("code,term", [f"{c},{t}" for c, t in SNOMED_ROWS]),
        ("id,name", [f"{c},{t}" for c, t in SNOMED_ROWS]),
        ("dmd_type,dmd_id,dmd_name,bnf_code", [f"VMP,{c},{t},0601" for c, t in SNOMED_ROWS]),
        ("code,term,extra", [f"{c},{t},x" for c, t in SNOMED_ROWS]),
    ],
    ids=["code-term", "id-name", "dmd", "extra-columns"],
)
def test_the_common_opencodelists_shapes_are_read(folder: Path, header: str, rows: list[str]):
    download = write(folder, "download.csv", "\n".join([header, *rows]) + "\n")
    got = read_download(download, "snomed")
    assert got.rows == SNOMED_ROWS
    assert not got.problems


def test_icd10_codes_are_written_dotted_and_checked(folder: Path):
    download = write(
        folder, "icd.csv", "code,term\nI10,Essential hypertension\nI120,Hypertensive renal disease with renal failure\n"
    )
    assert [c for c, _ in read_download(download, "icd10").rows] == ["I10", "I12.0"]


def test_import_writes_code_term_source_and_prints_the_yaml_entry(folder: Path):
    download = write(
        folder, "opensafely-diabetes.csv", "code,term\n" + "\n".join(f"{c},{t}" for c, t in SNOMED_ROWS) + "\n44054006,again\n"
    )
    out = folder / "codelists" / "diabetes.snomed.csv"
    result = runner.invoke(
        cli.app,
        [
            "ruleset",
            "import-codelist",
            str(download),
            "--system",
            "snomed",
            "--out",
            str(out),
            "--source",
            "opensafely/diabetes/2020-04-15",
        ],
    )
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["code"] for r in rows] == ["44054006", "46635009"]
    assert {r["source"] for r in rows} == {"opensafely/diabetes/2020-04-15"}
    assert "duplicate dropped: line 4: 44054006 is listed twice (first on line 2)" in result.stderr
    entry = yaml.safe_load(result.stdout.split("or pass --ruleset):\n")[1])
    spec = entry["code_lists"]["diabetes_snomed"]
    assert spec["sources"] == [{"id": "opensafely/diabetes/2020-04-15", "publisher": "OpenCodelists", "version": "2020-04-15"}]
    assert spec["version"] == "2020-04-15" and spec["system"] == "snomed"


def test_a_code_that_fails_its_check_refuses_the_import(folder: Path):
    download = write(folder, "bad.csv", "code,term\n44054006,ok\n44054007,typo\n")
    out = folder / "bad.snomed.csv"
    result = runner.invoke(cli.app, ["ruleset", "import-codelist", str(download), "--system", "snomed", "--out", str(out)])
    assert isinstance(result.exception, UserError)
    assert "line 3: '44054007' fails the SNOMED CT Verhoeff check digit" in str(result.exception)
    assert not out.exists()


def test_an_imported_list_loads_in_a_ruleset_as_printed(folder: Path):
    download = write(folder, "stroke.csv", "code,term\n33301000119105,Sequela of cardioembolic stroke\n")
    child = folder / "child.yaml"
    out = folder / "codelists" / "stroke.snomed.csv"
    result = runner.invoke(
        cli.app,
        ["ruleset", "import-codelist", str(download), "--system", "snomed", "--out", str(out), "--source", "t/stroke/1"]
        + ["--ruleset", str(child)],
    )
    assert result.exit_code == 0, result.output
    entry = result.stdout.split(f"Paste into {child}:\n")[1]
    assert "file: codelists/stroke.snomed.csv" in entry
    write(
        folder,
        "child.yaml",
        CHILD_HEAD
        + entry
        + "ltc:\n  categories:\n    - {id: stroke, label: Stroke, code_lists: [stroke_snomed], citation: {source: indicator, section: s, quote: q}}\n"
        + '  shared_codes:\n    - {code: "33301000119105", system: snomed, categories: [angina_heart, stroke], why: "heart and stroke"}\n',
    )
    ruleset = load_ruleset(child)
    assert list(ruleset.code_lists["stroke_snomed"].codes) == ["33301000119105"]
