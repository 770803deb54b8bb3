"""Shared fixtures for the hostile-input tests."""

from __future__ import annotations

import pytest

from cquin.dataset import Vocabulary
from cquin.engine.ruleset import load_ruleset


@pytest.fixture(scope="session")
def vocab() -> Vocabulary:
    return load_ruleset("cquin_2017_19").vocabulary()
