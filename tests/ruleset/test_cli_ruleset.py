"""`cquin ruleset validate` and `cquin ruleset show`, as a user at a terminal sees them.

In-process runs use Typer's CliRunner on ``cquin.cli.app``; exit codes and
messages for errors go through ``main()``, so those run ``python -m cquin.cli``
in a subprocess and check that no traceback reaches the user.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin import cli

from .conftest import BUNDLED, RulesetCopy, line_of

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Render as on a wide terminal, so table cells are not wrapped mid-phrase."""
    monkeypatch.setattr(cli.out, "_width", 400)
    monkeypatch.setattr(cli.err, "_width", 400)


def cquin(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line through its entry point, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cquin.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "400", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for word in words:
        assert word in lines[0]


# --------------------------------------------------------------------------- validate


def test_validate_the_bundled_ruleset_succeeds():
    result = runner.invoke(cli.app, ["ruleset", "validate", str(BUNDLED)])
    assert result.exit_code == 0, result.output
    assert f"{BUNDLED}: valid" in result.stdout
    assert "cquin_2017_19 1.2.0 (published)" in result.stdout
    assert "6 components" in result.stdout


def test_validate_accepts_a_bundled_ruleset_id():
    result = runner.invoke(cli.app, ["ruleset", "validate", "cquin_2017_19"])
    assert result.exit_code == 0, result.output
    assert "cquin_2017_19: valid" in result.stdout


def test_validate_shows_warnings_without_failing():
    result = runner.invoke(cli.app, ["ruleset", "validate", "cquin_2017_19"])
    assert result.exit_code == 0
    assert re.search(r"cquin_2017_19\.yaml:\d+:\d+: warning: .*more than one category", result.stdout)


def test_validate_a_broken_ruleset_fails_with_file_line_and_column(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("    numerator: trained_staff\n", "    numerator: trained_staf\n")
    line = line_of(text, "    numerator: trained_staf")

    result = runner.invoke(cli.app, ["ruleset", "validate", str(ruleset_copy.path)])

    assert result.exit_code == 3, result.output
    pattern = rf"^{re.escape(str(ruleset_copy.path))}:{line}:\d+: error: .*unknown population 'trained_staf'"
    assert re.search(pattern, result.stdout, re.MULTILINE), result.stdout
    assert "1 error(s)" in result.stdout
    assert ": valid" not in result.stdout


def test_validate_reports_every_file(ruleset_copy: RulesetCopy):
    ruleset_copy.replace("    numerator: trained_staff\n", "    numerator: trained_staf\n")
    result = runner.invoke(cli.app, ["ruleset", "validate", str(ruleset_copy.path), "cquin_2017_19"])
    assert result.exit_code == 3
    assert "trained_staf" in result.stdout
    assert "cquin_2017_19: valid" in result.stdout


def test_validate_through_main_exits_non_zero_for_a_broken_ruleset(ruleset_copy: RulesetCopy):
    ruleset_copy.replace("{at_least: 33, below: 66, pays_percent: 40}", "{at_least: 33, at_most: 66, pays_percent: 40}")
    result = cquin("ruleset", "validate", str(ruleset_copy.path))
    assert "1 error(s)" in result.stdout
    assert result.returncode == 3


def test_validate_a_yaml_syntax_error_gives_its_location_without_a_traceback(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("status: published\n", "status: published: twice\n")
    line = line_of(text, "status: published: twice")
    result = cquin("ruleset", "validate", str(ruleset_copy.path))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr + result.stdout
    assert f"{ruleset_copy.path}:{line}:" in result.stdout
    assert "not valid YAML" in result.stdout


def test_validate_goes_on_to_the_next_file_after_a_yaml_syntax_error(ruleset_copy: RulesetCopy):
    ruleset_copy.replace("status: published\n", "status: published: twice\n")
    result = runner.invoke(cli.app, ["ruleset", "validate", str(ruleset_copy.path), "cquin_2017_19"])
    assert result.exit_code == 3
    assert "not valid YAML" in result.stdout
    assert "cquin_2017_19: valid" in result.stdout


def test_validate_a_missing_file_is_a_one_line_error(tmp_path: Path):
    result = cquin("ruleset", "validate", str(tmp_path / "absent.yaml"))
    assert result.returncode == 3
    assert_one_line_error(result, "absent.yaml", "no such ruleset file")


# --------------------------------------------------------------------------- show


@pytest.fixture(scope="module")
def shown() -> str:
    """`ruleset show` of the bundled ruleset, rendered once for the tests below."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli.out, "_width", 400)
        result = runner.invoke(cli.app, ["ruleset", "show", "cquin_2017_19"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_show_lists_every_component(shown: str):
    for component in [
        "y1.plan",
        "y1.ltc_identification",
        "y1.activation_assessment",
        "y1.staff_training",
        "y2.conversations",
        "y2.activation_improvement",
    ]:
        assert component in shown


def test_show_puts_bands_in_words(shown: str):
    assert "from 33% up to but not including 66%" in shown
    assert "from 66% to 85% inclusive" in shown
    assert "below 33%" in shown
    assert "above 85%" in shown
    assert "from 25% to 50% inclusive" in shown
    assert "at least 1 patients/staff counted" in shown


def test_show_gives_interpretations_and_citations(shown: str):
    assert "interpretation:" in shown
    assert "a shared boundary goes to the higher band" in shown
    assert "source: indicator" in shown


def test_show_defaults_to_the_bundled_ruleset():
    result = runner.invoke(cli.app, ["ruleset", "show"])
    assert result.exit_code == 0
    assert "CQUIN 2017-19 Indicator 11" in result.stdout


def test_show_an_unknown_ruleset_id_is_a_one_line_error():
    result = cquin("ruleset", "show", "no_such_ruleset")
    assert result.returncode == 3
    assert_one_line_error(result, "no ruleset called 'no_such_ruleset'", "cquin_2017_19")
    assert result.stdout == ""


def test_show_a_broken_ruleset_lists_its_problems_without_a_traceback(ruleset_copy: RulesetCopy):
    text = ruleset_copy.replace("    numerator: trained_staff\n", "    numerator: trained_staf\n")
    line = line_of(text, "    numerator: trained_staf")
    result = cquin("ruleset", "show", str(ruleset_copy.path))
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert f"{ruleset_copy.path}:{line}:" in result.stderr
    assert "1 problem(s)" in result.stderr


@pytest.mark.parametrize("name", ["drafts[v2]", "x[/]y"])
def test_error_messages_are_shown_verbatim(name: str):
    result = cquin("ruleset", "show", name)
    assert result.returncode == 3
    assert_one_line_error(result, f"no ruleset called {name!r}")
