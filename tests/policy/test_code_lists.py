"""Code list care: bad SNOMED CT ids and undeclared codes in two categories fail validation with the line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cquin import cli
from cquin.engine.ruleset import check_ruleset, load_ruleset

from .conftest import CHILD_HEAD, line_of, write

runner = CliRunner()

NEW_LIST = """code_lists:
  stroke_snomed:
    system: snomed
    file: codelists/stroke.snomed.csv
    title: Stroke (SNOMED CT)
    sources: [{id: test}]
    version: "1"
ltc:
  categories:
    - id: stroke
      label: Stroke
      code_lists: [stroke_snomed]
      citation: {source: indicator, section: s, quote: q}
"""


def errors(problems):
    return [p for p in problems if p.severity == "error"]


def child_with_codes(folder: Path, rows: str, extra: str = "") -> tuple[Path, str]:
    write(folder, "codelists/stroke.snomed.csv", "code,term,source\n" + rows)
    text = CHILD_HEAD + NEW_LIST + extra
    return write(folder, "child.yaml", text), text


def test_a_bad_snomed_check_digit_fails_validation_with_the_line(folder: Path):
    child, text = child_with_codes(folder, "33301000119105,Sequela of cardioembolic stroke,test\n33301000119106,typo,test\n")
    result = runner.invoke(cli.app, ["ruleset", "validate", str(child)])
    assert result.exit_code == 3, result.output
    line = line_of(text, "file: codelists/stroke.snomed.csv")
    assert f"{child}:{line}:" in result.stdout
    assert "stroke.snomed.csv:3: '33301000119106' fails the SNOMED CT Verhoeff check digit" in result.stdout


def test_a_code_in_two_categories_that_is_not_declared_fails_validation_with_the_line(folder: Path):
    child, text = child_with_codes(folder, "33301000119105,Sequela of cardioembolic stroke,test\n")
    _, problems = check_ruleset(child)
    found = [p for p in errors(problems) if "33301000119105" in p.message]
    assert len(found) == 1, problems
    assert found[0].location.file == str(child)
    assert found[0].location.line == line_of(text, "file: codelists/stroke.snomed.csv")
    assert "angina_heart (angina_heart_snomed, angina_heart.snomed.csv:" in found[0].message
    assert "stroke (stroke_snomed, stroke.snomed.csv:2)" in found[0].message
    assert "ltc.shared_codes" in found[0].message


def test_a_declared_shared_code_is_accepted_and_counted(folder: Path):
    declared = (
        "  shared_codes:\n"
        '    - {code: "33301000119105", system: snomed, categories: [angina_heart, stroke], why: "A stroke caused by a heart condition."}\n'
    )
    child, _ = child_with_codes(folder, "33301000119105,Sequela of cardioembolic stroke,test\n", declared)
    ruleset = load_ruleset(child)
    summary = [w.message for w in ruleset.warnings if "as ltc.shared_codes declares" in w.message]
    assert summary and "angina_heart and stroke: 1" in summary[0]


def test_a_declaration_naming_too_few_categories_fails(folder: Path):
    declared = '  shared_codes:\n    - {code: "33301000119105", system: snomed, categories: [stroke, dementia], why: "wrong"}\n'
    child, text = child_with_codes(folder, "33301000119105,Sequela of cardioembolic stroke,test\n", declared)
    _, problems = check_ruleset(child)
    found = [p for p in errors(problems) if "the declaration names" in p.message]
    assert found and found[0].location.line == line_of(text, '- {code: "33301000119105"')


def test_icd10_prefixes_overlap_across_categories(folder: Path):
    write(folder, "codelists/renal.icd10.csv", "code,term,source\nI12.9,Hypertensive renal disease without renal failure,test\n")
    text = CHILD_HEAD + NEW_LIST.replace("stroke_snomed", "renal_icd10").replace("snomed", "icd10").replace(
        "stroke.icd10.csv", "renal.icd10.csv"
    )
    child = write(folder, "child.yaml", text)
    _, problems = check_ruleset(child)
    assert any("icd10 code I129" in p.message and "high_blood_pressure" in p.message for p in errors(problems)), problems


def test_the_bundled_overlaps_are_all_declared():
    ruleset = load_ruleset("cquin_2017_19")
    assert not [w for w in ruleset.warnings if "not in more than one category" in w.message]
    declared = ruleset.doc["ltc"]["shared_codes"]
    assert all(entry["why"].strip() for entry in declared)
    assert "707551007" not in ruleset.code_lists["kidney_liver_snomed"].codes  # a lung disease, moved out
    assert "707551007" in ruleset.code_lists["asthma_chest_snomed"].codes


def test_a_code_listed_twice_in_one_list_is_reported(folder: Path):
    child, _ = child_with_codes(folder, "1259499007,a,test\n1259499007,again,test\n")
    _, problems = check_ruleset(child)
    assert any("1259499007 is listed twice (first on line 2)" in p.message for p in problems)


def test_validate_warns_when_a_ruleset_has_no_tests_file(folder: Path):
    declared = (
        "  shared_codes:\n"
        '    - {code: "33301000119105", system: snomed, categories: [angina_heart, stroke], why: "A stroke caused by a heart condition."}\n'
    )
    child, _ = child_with_codes(folder, "33301000119105,Sequela of cardioembolic stroke,test\n", declared)
    result = runner.invoke(cli.app, ["ruleset", "validate", str(child)])
    assert result.exit_code == 0, result.output
    assert f"{child}:1:1: warning: no tests file beside the ruleset (expected child.tests.yaml)" in result.stdout
    write(folder, "child.tests.yaml", "ruleset: child.yaml\ncases: []\n")
    again = runner.invoke(cli.app, ["ruleset", "validate", str(child)])
    assert "no tests file" not in again.stdout


def test_a_code_list_path_too_long_for_the_file_system_is_a_validation_error_not_a_crash(folder: Path):
    """Found by the ruleset fuzzer: a file name of thousands of characters made the checker raise."""
    text = CHILD_HEAD + NEW_LIST.replace("codelists/stroke.snomed.csv", "x" * 5000 + ".csv")
    child = write(folder, "child.yaml", text)
    _, problems = check_ruleset(child)
    assert any("code list stroke_snomed: the file" in p.message and "cannot be read" in p.message for p in errors(problems))
