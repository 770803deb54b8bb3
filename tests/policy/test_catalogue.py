"""The catalogue of rulesets, semantic version ranges, and choosing the ruleset in effect."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin import cli
from cquin.engine.catalogue import user_dirs, version_matches
from cquin.engine.selection import resolved_catalogue, select_ruleset
from cquin.exceptions import RulesetError

from .conftest import BUNDLED, CHILD_HEAD, write

runner = CliRunner()

NEXT_YEARS = CHILD_HEAD.replace("cquin_child", "cquin_2019_21") + "effective: {from: 2019-04-01, to: 2021-03-31}\n"


@pytest.mark.parametrize(
    ("version_range", "version", "matches"),
    [
        ("1.x", "1.0.0", True),
        ("1.x", "1.4.2", True),
        ("1.x", "2.0.0", False),
        ("1.2.x", "1.2.9", True),
        ("1.2.x", "1.3.0", False),
        ("1", "1.9.9", True),
        ("1.0.0", "1.0.0", True),
        ("1.0.0", "1.0.1", False),
        ("*", "3.1.4", True),
        ("1.x", "1.1.0-rc.1", False),  # a pre-release matches only when named exactly
        ("1.1.0-rc.1", "1.1.0-rc.1", True),
    ],
)
def test_version_ranges(version_range: str, version: str, matches: bool):
    assert version_matches(version_range, version) is matches


def test_the_catalogue_lists_bundled_and_user_rulesets_with_inherited_periods(folder: Path):
    write(folder, "cquin_2019_21.yaml", NEXT_YEARS)
    write(folder, "cquin_2019_21.tests.yaml", "ruleset: cquin_2019_21.yaml\ncases: []\n")  # not a ruleset
    entries = {e.id: e for e in resolved_catalogue(user_dirs([folder]))}
    assert set(entries) == {"cquin_2017_19", "cquin_2019_21"}
    assert entries["cquin_2017_19"].origin == "bundled" and entries["cquin_2017_19"].path == BUNDLED
    assert entries["cquin_2019_21"].status == "draft"
    assert entries["cquin_2019_21"].effective == "2019-04-01 to 2021-03-31"


def test_the_folder_named_in_cquin_rulesets_is_read(folder: Path, monkeypatch: pytest.MonkeyPatch):
    write(folder, "next.yaml", NEXT_YEARS)
    monkeypatch.setenv("CQUIN_RULESETS", str(folder))
    assert "cquin_2019_21" in {e.id for e in resolved_catalogue(user_dirs())}


def test_ruleset_list_shows_id_version_period_status_and_file(folder: Path):
    path = write(folder, "next.yaml", NEXT_YEARS)
    result = runner.invoke(cli.app, ["ruleset", "list", "--path", str(folder)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip().startswith("cquin_")}
    assert "1.2.0" in rows["cquin_2017_19"] and "2017-04-01 to 2019-03-31" in rows["cquin_2017_19"]
    assert "published" in rows["cquin_2017_19"]
    assert "draft" in rows["cquin_2019_21"] and "cquin_2017_19@1.x" in rows["cquin_2019_21"]
    assert str(path.relative_to(Path.cwd())) in rows["cquin_2019_21"]  # files inside the working folder are shown relative to it


def test_the_ruleset_in_effect_on_a_date_is_chosen(folder: Path):
    write(folder, "next.yaml", NEXT_YEARS)
    assert select_ruleset(dt.date(2018, 6, 1), dirs=[folder]) == BUNDLED


def test_a_draft_in_effect_is_refused_unless_drafts_are_allowed(folder: Path):
    path = write(folder, "next.yaml", NEXT_YEARS)
    with pytest.raises(RulesetError, match="--allow-draft"):
        select_ruleset(dt.date(2020, 1, 1), dirs=[folder])
    assert select_ruleset(dt.date(2020, 1, 1), allow_draft=True, dirs=[folder]) == path


def test_a_published_ruleset_wins_over_a_draft_for_the_same_period(folder: Path):
    published = write(folder, "published.yaml", NEXT_YEARS.replace("status: draft", "status: published"))
    write(folder, "draft.yaml", NEXT_YEARS.replace("version: 1.0.0", "version: 1.1.0"))
    assert select_ruleset(dt.date(2020, 1, 1), dirs=[folder]) == published


def test_no_ruleset_in_effect_says_which_there_are():
    with pytest.raises(RulesetError, match=r"no ruleset is in effect on 2010-01-01 .*cquin_2017_19 1\.2\.0"):
        select_ruleset(dt.date(2010, 1, 1), dirs=[])


def test_extends_picks_the_highest_published_version_in_the_range(folder: Path):
    from cquin.engine.inherit import resolve_document

    parent = BUNDLED.read_text(encoding="utf-8")
    (folder / "codelists").symlink_to(BUNDLED.parent / "codelists")
    write(
        folder,
        "p110.yaml",
        parent.replace("version: 1.2.0", "version: 1.3.0").replace("weighting_percent: 0.25", "weighting_percent: 0.5"),
    )
    write(folder, "p120.yaml", parent.replace("version: 1.2.0", "version: 1.4.0").replace("status: published", "status: draft"))
    child = write(folder, "child.yaml", CHILD_HEAD)
    resolved = resolve_document(child)
    assert [v for _, v, _ in resolved.chain] == ["1.0.0", "1.3.0"]  # the draft 1.4.0 is not extended
    assert str(resolved.data["indicator"]["weighting_percent"]) == "0.5"
