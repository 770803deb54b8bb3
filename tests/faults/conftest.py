"""Shared fixtures for the fault tests: a stored demo run to read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.helpers import cquin_process


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: runs cquin as a separate process, or on thousands of patients (bounded)")


@pytest.fixture(scope="session")
def stored_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A store holding one run of the demo dataset (read it; copy it before changing it): (store, run id)."""
    folder = tmp_path_factory.mktemp("stored-demo")
    store = folder / "audit.sqlite"
    done = cquin_process("evaluate", "--demo", "--store", str(store), "--format", "json", cwd=folder)
    assert done.code == 0, done.err
    return store, json.loads(done.out)["run_id"]
