"""Shared fixtures for the policy team's workflow: child rulesets written beside each test.

A child ruleset extends the bundled cquin_2017_19 by id and states only what
differs.  Each test runs in its own folder with $CQUIN_RULESETS unset, so the
catalogue holds only the bundled rulesets and whatever the test writes.
Expected lines are found from the text written, never hard-coded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin import cli
from cquin.engine.ruleset import BUNDLED_DIR

BUNDLED = BUNDLED_DIR / "cquin_2017_19.yaml"
BUNDLED_TEXT = BUNDLED.read_text(encoding="utf-8")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rulesets"
EXAMPLE = EXAMPLES / "cquin_2019_20_example.yaml"
EXAMPLE_TESTS = EXAMPLES / "cquin_2019_20_example.tests.yaml"
DEMO = BUNDLED_DIR.parent / "demo" / "data"

CHILD_HEAD = "extends: cquin_2017_19@1.x\nid: cquin_child\nversion: 1.0.0\nstatus: draft\n"


def line_of(text: str, snippet: str, *, after: str | None = None) -> int:
    """The 1-based line on which ``snippet`` starts in ``text`` (searching after ``after`` if given)."""
    start = text.index(after) if after is not None else 0
    return text[: text.index(snippet, start)].count("\n") + 1


@pytest.fixture(autouse=True)
def isolated_catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user rulesets but those a test writes; a wide console so output is not wrapped."""
    monkeypatch.delenv("CQUIN_RULESETS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli.out, "_width", 400)
    monkeypatch.setattr(cli.err, "_width", 400)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    target.mkdir()
    return target


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path
