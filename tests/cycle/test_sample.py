"""A reproducible audit sample: stratified by component outcome, the same draw for the same run, size and seed."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.cycle.sample import allocate, draw_sample
from cquin.exceptions import UserError
from cquin.runner import run_evaluation

from .conftest import RECORDS, write_records


@pytest.mark.parametrize(
    ("sizes", "n", "expected"),
    [
        ([779, 563, 241, 118, 94, 23], 12, [4, 3, 2, 1, 1, 1]),  # one each, then the other six in proportion
        ([10, 5, 1], 3, [1, 1, 1]),  # exactly one per stratum
        ([10, 5, 1], 2, [1, 1, 0]),  # fewer draws than strata: the largest strata first
        ([3, 2], 10, [3, 2]),  # never more than there are
        ([50, 50], 5, [3, 2]),  # a tie in remainders goes to the first (larger or earlier) stratum
    ],
)
def test_the_size_is_shared_one_per_stratum_then_in_proportion(sizes, n, expected):
    assert allocate(sizes, n) == expected
    assert sum(allocate(sizes, n)) == min(n, sum(sizes))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("sample")
    store = folder / "audit.sqlite"
    # Twelve more patients with no long-term condition, so one stratum is larger than the others.
    extra = "\n".join(f"{n},1980-01-01,female,2016-01-01," for n in NEW)
    records = write_records(folder / "records", patients_csv=RECORDS["patients.csv"] + "\n" + extra)
    ev = run_evaluation(records, contract_value=Decimal("1000000"), store=store)
    assert ev.run_id is not None
    return store, ev.run_id


NEW = ["9990000077", "9990000085", "9990000093", "9990000107", "9990000115", "9990000123"]


def test_the_same_run_size_and_seed_draw_the_same_patients(run):
    store, rid = run
    a, b = draw_sample(store, rid, size=4, seed=11), draw_sample(store, rid, size=4, seed=11)
    assert [p.subject_id for p in a.patients] == [p.subject_id for p in b.patients] and a.digest == b.digest


def test_another_seed_can_draw_other_patients_from_the_large_stratum(run):
    store, rid = run
    draws = {tuple(p.subject_id for p in draw_sample(store, rid, size=4, seed=s).patients) for s in range(8)}
    assert len(draws) > 1


def test_every_outcome_path_is_represented_when_the_size_allows(run):
    store, rid = run
    sample = draw_sample(store, rid, size=4, seed=3)
    # By hand: 018 numerator in every patient component but improvement, where it is also in the numerator
    # (level 2 -> 3); 026 the same except improvement (denominator only); 034 LTC and assessed, not in the
    # cohort; 050 and the six new patients served, no LTC.
    assert [s.size for s in sample.strata] == [7, 1, 1, 1]
    assert all(s.drawn == 1 for s in sample.strata)
    by_id = {p.subject_id: p for p in sample.patients}
    assert {"9990000018", "9990000026", "9990000034"} <= set(by_id)
    improvement = {d["component"]: d for d in by_id["9990000026"].decisions}["y2.activation_improvement"]
    assert (improvement["in_denominator"], improvement["in_numerator"]) == (1, 0)
    assert [c["cohort"] for c in by_id["9990000026"].cohorts] == ["year1", "year2"]


def test_a_sample_of_nobody_is_refused(run):
    store, rid = run
    with pytest.raises(UserError, match="at least one patient"):
        draw_sample(store, rid, size=0, seed=1)


def test_the_cli_writes_the_sample_for_the_case_note_audit_to_an_owner_only_file(run, tmp_path: Path):
    store, rid = run
    out = tmp_path / "sample.csv"
    got = CliRunner().invoke(
        app, ["sample", rid, "--size", "4", "--seed", "3", "--out", str(out), "--format", "json", "--store", str(store)]
    )
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    assert doc["size"] == 4 and len(doc["patients"]) == 4 and doc["population"] == 10
    rows = out.read_text().splitlines()
    assert rows[0] == "run_id,seed,size,stratum,nhs_number,component,in_denominator,in_numerator,rule,reason"
    assert len(rows) == 1 + 4 * 4  # four patients, four patient components each
    assert os.stat(out).st_mode & 0o077 == 0
