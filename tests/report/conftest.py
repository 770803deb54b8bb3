"""Shared fixtures: the bundled demo data evaluated once into an audit store, with its breakdowns."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from cquin.demo import DEMO_DIR
from cquin.engine.breakdowns import compute_breakdowns
from cquin.runner import Evaluation, run_evaluation

CONTRACT_VALUE = Decimal("12000000")


@dataclass
class DemoRun:
    store: Path
    run_id: str
    evaluation: Evaluation
    breakdowns: dict[str, Any]


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    store = tmp_path_factory.mktemp("store") / "audit.sqlite"
    ev = run_evaluation(DEMO_DIR, contract_value=CONTRACT_VALUE, store=store)
    assert ev.run_id is not None
    return DemoRun(store, ev.run_id, ev, compute_breakdowns(ev.dataset.con, ev.ruleset))


def write_canonical(folder: Path, files: dict[str, str]) -> Path:
    """A small canonical folder from CSV texts (file name -> content)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text.strip() + "\n", encoding="utf-8")
    return folder
