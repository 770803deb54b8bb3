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


@pytest.fixture
def small_fs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real, small file system (tmpfs) to fill: ``small_fs(size)`` gives a mounted folder; needs root."""
    import os
    import subprocess

    mounted: list[Path] = []

    def make(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("a real full disk needs root to mount a small file system")
        where = tmp_path / f"fs{len(mounted)}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)], capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a small file system here: {done.stderr.decode().strip()}")
        mounted.append(where)
        return where

    yield make
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)
