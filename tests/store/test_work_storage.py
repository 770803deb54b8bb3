"""Large sources are worked on in a database file on disk; the results must not depend on where the work is done."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from cquin.engine.evaluation import evaluate
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import ResourceError
from cquin.loading import load_dataset, memory_bytes, work_on_disk
from cquin.store import results_digest


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1GB", 1e9), ("512MB", 512e6), ("4GiB", 4 * 2**30), ("750 MiB", 750 * 2**20), ("2.5GB", 2.5e9), ("lots", float("inf"))],
)
def test_memory_sizes_are_read_as_duckdb_reads_them(text, expected):
    assert memory_bytes(text) == expected


def test_a_source_larger_than_half_the_memory_limit_is_worked_on_disk(tmp_path, monkeypatch):
    (tmp_path / "patients.csv").write_bytes(b"x" * 600)
    monkeypatch.delenv("CQUIN_WORK_STORAGE", raising=False)
    monkeypatch.setenv("CQUIN_MEMORY_LIMIT", "1000B")
    assert work_on_disk(tmp_path)
    monkeypatch.setenv("CQUIN_MEMORY_LIMIT", "2000B")
    assert not work_on_disk(tmp_path)


def test_the_work_storage_can_be_chosen_and_a_wrong_choice_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CQUIN_WORK_STORAGE", "disk")
    assert work_on_disk(tmp_path)
    monkeypatch.setenv("CQUIN_WORK_STORAGE", "Memory")
    assert not work_on_disk(tmp_path)
    monkeypatch.setenv("CQUIN_WORK_STORAGE", "tape")
    with pytest.raises(ResourceError, match="CQUIN_WORK_STORAGE must be auto, memory or disk"):
        work_on_disk(tmp_path)


def _run(source: Path) -> tuple[str, dict[str, tuple[int, int, int]], int]:
    rs = load_ruleset("cquin_2017_19")
    dataset, _ = load_dataset(source, rs.vocabulary())
    result = evaluate(rs, dataset, contract_value=Decimal("12000000"))
    counts = {name: (f.read, f.accepted, f.rejected) for name, f in dataset.ledger.files.items()}
    return results_digest(result, dataset), counts, dataset.ledger.rejection_count()


def test_work_on_disk_gives_exactly_the_results_of_work_in_memory(monkeypatch):
    monkeypatch.setenv("CQUIN_WORK_STORAGE", "memory")
    in_memory = _run(DEMO_DIR)
    monkeypatch.setenv("CQUIN_WORK_STORAGE", "disk")
    on_disk = _run(DEMO_DIR)
    assert on_disk == in_memory
    assert in_memory[2] > 0  # the demo's deliberate bad rows were rejected both ways


def test_running_out_of_memory_says_how_to_go_on(monkeypatch):
    import duckdb

    import cquin.runner

    def exhausted(*args, **kwargs):
        raise duckdb.OutOfMemoryException("could not allocate block")

    monkeypatch.setattr(cquin.runner, "evaluate", exhausted)
    with pytest.raises(ResourceError) as raised:
        cquin.runner.run_evaluation(DEMO_DIR)
    message = str(raised.value)
    assert "ran out of memory while evaluating" in message
    assert "CQUIN_WORK_STORAGE=disk" in message and "CQUIN_MEMORY_LIMIT" in message


def test_running_out_of_memory_while_summarising_a_stored_run_says_how_to_go_on(monkeypatch, tmp_path):
    import duckdb

    import cquin.runner

    def exhausted(*args, **kwargs):
        raise duckdb.OutOfMemoryException("could not allocate block")

    monkeypatch.setattr(cquin.runner, "compute_breakdowns", exhausted)
    with pytest.raises(ResourceError) as raised:
        cquin.runner.run_evaluation(DEMO_DIR, store=tmp_path / "audit.sqlite")
    assert "ran out of memory while summarising the run for the report" in str(raised.value)
    assert "CQUIN_MEMORY_LIMIT" in str(raised.value)
