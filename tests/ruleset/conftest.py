"""Shared fixtures for the ruleset tests: a writable copy of the bundled ruleset.

Code list files are named relative to the ruleset file, so a copy lives in a
folder with the bundled ``codelists`` folder linked beside it.  Tests plant one
problem at a time by text substitution and locate it by the planted text, so
no expected line number is hard-coded.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from cquin.engine.ruleset import BUNDLED_DIR

BUNDLED = BUNDLED_DIR / "cquin_2017_19.yaml"
BUNDLED_TEXT = BUNDLED.read_text(encoding="utf-8")


def line_of(text: str, snippet: str, *, after: str | None = None) -> int:
    """The 1-based line on which ``snippet`` starts in ``text`` (searching after ``after`` if given)."""
    start = text.index(after) if after is not None else 0
    return text[: text.index(snippet, start)].count("\n") + 1


@dataclass
class RulesetCopy:
    """A copy of the bundled ruleset in a folder of its own, ready to be broken."""

    folder: Path
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text(encoding="utf-8")

    def replace(self, old: str, new: str, *, after: str | None = None) -> str:
        """Replace ``old`` with ``new`` and return the new text.

        ``old`` must occur exactly once, or once after the first ``after`` when given
        (its first occurrence there is replaced).
        """
        text = self.text
        start = 0
        if after is None:
            count = text.count(old)
            assert count == 1, f"expected {old!r} once in the ruleset, found it {count} time(s)"
        else:
            start = text.index(after)
            assert old in text[start:], f"{old!r} does not occur after {after!r}"
        at = text.index(old, start)
        text = text[:at] + new + text[at + len(old) :]
        self.path.write_text(text, encoding="utf-8")
        return text

    def add_file(self, relative: str, content: str) -> Path:
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
        return target


@pytest.fixture
def ruleset_copy(tmp_path: Path) -> RulesetCopy:
    """A copy of cquin_2017_19.yaml with the bundled code lists beside it."""
    folder = tmp_path / "rulesets"
    folder.mkdir()
    path = folder / BUNDLED.name
    shutil.copyfile(BUNDLED, path)
    try:
        os.symlink(BUNDLED_DIR / "codelists", folder / "codelists", target_is_directory=True)
    except OSError:  # no symlinks on this file system: copy instead
        shutil.copytree(BUNDLED_DIR / "codelists", folder / "codelists")
    return RulesetCopy(folder, path)
