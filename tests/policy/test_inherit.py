"""Inheritance: a ruleset that extends another states only what differs, and is checked as resolved."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cquin import cli
from cquin.engine.inherit import resolve_document
from cquin.engine.ruleset import check_ruleset, load_ruleset

from .conftest import BUNDLED, BUNDLED_TEXT, CHILD_HEAD, EXAMPLE, line_of, write

runner = CliRunner()


def errors(problems):
    return [p for p in problems if p.severity == "error"]


# --------------------------------------------------------------------------- the merge


def test_mappings_merge_key_by_key(folder: Path):
    child = write(folder, "child.yaml", CHILD_HEAD + "periods:\n  year1:\n    label: Year 1 (renamed)\n")
    doc = resolve_document(child).data
    assert doc["periods"]["year1"]["label"] == "Year 1 (renamed)"
    assert doc["periods"]["year1"]["from"] == "2017-04-01"  # inherited beside the changed label
    assert "year2" in doc["periods"]


def test_lists_of_items_with_ids_merge_by_id_and_new_items_are_appended(folder: Path):
    child = write(
        folder,
        "child.yaml",
        CHILD_HEAD
        + "milestones:\n"
        + "  - {id: y1.q4.cohort, due: year1.Q3.end}\n"
        + "  - {id: y2.q1.check, year: year2, due: year2.Q1.end, description: New, check: {provider_date: plan_agreed_on},\n"
        + "     citation: {source: indicator, section: s, quote: q}}\n",
    )
    ids = [m["id"] for m in resolve_document(child).data["milestones"]]
    assert ids == ["y1.q2.plan", "y1.q3.cohort", "y1.q4.training", "y1.q4.cohort", "y2.q1.check"]
    merged = resolve_document(child).data["milestones"][3]
    assert merged["due"] == "year1.Q3.end"
    assert merged["description"] == "Number of patients in the Year 1 cohort"  # inherited


def test_other_lists_are_replaced_whole(folder: Path):
    child = write(
        folder,
        "child.yaml",
        CHILD_HEAD
        + "components:\n  - id: y2.conversations\n    bands:\n      - {below: 60, pays_percent: 0}\n      - {at_least: 60, pays_percent: 100}\n",
    )
    comp = next(c for c in resolve_document(child).data["components"] if c["id"] == "y2.conversations")
    assert [b["pays_percent"] for b in comp["bands"]] == [0, 100]


def test_remove_true_drops_an_inherited_item(folder: Path):
    child = write(folder, "child.yaml", CHILD_HEAD + "milestones:\n  - {id: y1.q2.plan, remove: true}\n")
    assert "y1.q2.plan" not in [m["id"] for m in resolve_document(child).data["milestones"]]


def test_removing_something_that_is_not_inherited_is_an_error(folder: Path):
    text = CHILD_HEAD + "milestones:\n  - {id: y9.none, remove: true}\n"
    child = write(folder, "child.yaml", text)
    _, problems = check_ruleset(child)
    assert any(p.location.line == line_of(text, "- {id: y9.none") and "y9.none" in p.message for p in errors(problems))


def test_a_relative_file_path_can_be_extended(folder: Path):
    write(folder, "base/parent.yaml", BUNDLED_TEXT)
    (folder / "base" / "codelists").symlink_to(BUNDLED.parent / "codelists")
    child = write(folder, "child.yaml", CHILD_HEAD.replace("cquin_2017_19@1.x", "base/parent.yaml"))
    ruleset = load_ruleset(child)
    assert [lid for lid, _, _ in ruleset.lineage] == ["cquin_child", "cquin_2017_19"]
    assert len(ruleset.code_lists["diabetes_snomed"].codes) > 0  # paths resolve from the parent's folder


def test_the_example_resolves_to_a_valid_ruleset_whose_sha256_covers_the_resolved_document():
    child = load_ruleset(EXAMPLE)
    parent = load_ruleset("cquin_2017_19")
    assert child.id == "cquin_2019_20" and child.status == "draft"
    assert "stroke" in child.category_ids and child.category_ids[:14] == parent.category_ids
    assert child.sha256 != parent.sha256
    assert child.code_lists["stroke_icd10"].path.parent.name == "cquin_2019_20"
    assert child.code_lists["diabetes_snomed"].path == parent.code_lists["diabetes_snomed"].path


# --------------------------------------------------------------------------- show --resolved


def test_show_resolved_prints_the_whole_resolved_ruleset_as_yaml():
    result = runner.invoke(cli.app, ["ruleset", "show", "--resolved", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    ruleset = load_ruleset(EXAMPLE)
    assert "extends" not in shown
    assert [c["id"] for c in shown["components"]] == [c["id"] for c in ruleset.doc["components"]]
    assert shown["periods"]["year2"]["quarters"][3] == {"id": "Q4", "from": "2021-01-01", "to": "2021-03-31"}
    assert f"sha256 {ruleset.sha256}" in result.stdout
    inherited = Path(shown["code_lists"]["diabetes_snomed"]["file"])
    assert (EXAMPLE.parent / inherited).resolve() == ruleset.code_lists["diabetes_snomed"].path


def test_show_without_resolved_still_renders_for_a_policy_reader():
    result = runner.invoke(cli.app, ["ruleset", "show", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "from 35% to 60% inclusive" in result.stdout
    assert "extends: cquin_2019_20 1.0.0" in result.stdout


# --------------------------------------------------------------------------- line numbers in the right file


def test_a_problem_in_a_value_the_child_sets_points_at_the_child_file(folder: Path):
    text = (
        CHILD_HEAD
        + "components:\n  - id: y2.conversations\n    bands:\n      - {below: 60, pays_percent: 0}\n      - {above: 65, pays_percent: 100}\n"
    )
    child = write(folder, "child.yaml", text)
    _, problems = check_ruleset(child)
    found = [p for p in errors(problems) if "y2.conversations" in p.message]
    assert found, problems
    assert found[0].location.file == str(child)
    assert found[0].location.line == line_of(text, "- {above: 65")


def test_a_problem_the_child_causes_in_an_inherited_value_points_at_the_parent_file(folder: Path):
    child = write(folder, "child.yaml", CHILD_HEAD + "populations:\n  trained_staff: {remove: true}\n")
    _, problems = check_ruleset(child)
    found = [p for p in errors(problems) if "unknown population 'trained_staff'" in p.message]
    assert found, problems
    assert found[0].location.file == str(BUNDLED)
    assert found[0].location.line == line_of(BUNDLED_TEXT, "numerator: trained_staff")


@pytest.mark.parametrize(
    ("extends", "words"),
    [
        ("cquin_2099_00@1.x", "no ruleset cquin_2099_00"),
        ("cquin_2017_19@7.x", "versions found: 1.2.0 (published)"),
        ("missing/parent.yaml", "no such ruleset file"),
    ],
)
def test_an_extends_that_points_nowhere_fails_with_the_line_of_extends(folder: Path, extends: str, words: str):
    text = "# a child\n" + CHILD_HEAD.replace("cquin_2017_19@1.x", extends)
    child = write(folder, "child.yaml", text)
    result = runner.invoke(cli.app, ["ruleset", "validate", str(child)])
    assert result.exit_code == 3, result.output
    assert f"{child}:{line_of(text, 'extends:')}:" in result.stdout
    assert words in result.stdout


def test_a_child_must_state_its_own_id_version_and_status(folder: Path):
    text = "extends: cquin_2017_19@1.x\nid: cquin_child\n"
    child = write(folder, "child.yaml", text)
    _, problems = check_ruleset(child)
    assert problems[0].location.line == 1
    assert "version, status" in problems[0].message
