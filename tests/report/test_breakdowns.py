"""The breakdowns aggregate: counts by dimension for every patient population, and activity by quarter."""

from __future__ import annotations

import csv
import datetime as dt

import pytest

from cquin.demo import DEMO_DIR
from cquin.engine.breakdowns import population_order

from .conftest import DemoRun

PARTITIONS = ["ltc_count", "activation", "age_band", "sex"]  # each patient has exactly one value


@pytest.mark.parametrize("dimension", PARTITIONS)
def test_a_partitioning_dimension_adds_up_to_each_population(demo_run: DemoRun, dimension: str) -> None:
    b = demo_run.breakdowns
    for pid in b["populations"]:
        assert sum(b["dimensions"][dimension]["counts"][pid].values()) == demo_run.evaluation.result.populations[pid], pid


def test_every_ltc_identified_patient_has_at_least_one_category(demo_run: DemoRun) -> None:
    dims = demo_run.breakdowns["dimensions"]
    assert dims["ltc_count"]["counts"]["ltc_identified"]["none"] == 0
    by_count = dims["ltc_count"]["counts"]["ltc_identified"]
    category_mentions = sum(dims["ltc_category"]["counts"]["ltc_identified"].values())
    assert category_mentions >= sum(int(k.rstrip("+")) * n for k, n in by_count.items() if k != "none")


def test_the_cohort_is_all_low_activation(demo_run: DemoRun) -> None:
    activation = demo_run.breakdowns["dimensions"]["activation"]["counts"]["low_activation_at_baseline"]
    assert {k for k, n in activation.items() if n} <= {"pam:1", "pam:2", "gpps:0"}


def test_conversations_by_quarter_match_a_count_of_the_demo_file(demo_run: DemoRun) -> None:
    # By hand: conversations.csv rows with a real ISO date, for a known patient, exact duplicates counted once.
    with (DEMO_DIR / "patients.csv").open(encoding="utf-8") as fh:
        known = {r["patient_id"] for r in csv.DictReader(fh)}
    seen = set()
    per_quarter: dict[tuple[int, int], int] = {}
    with (DEMO_DIR / "conversations.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = tuple(row.values())
            try:
                held = dt.date.fromisoformat(row["held_on"])
            except ValueError:
                continue
            if key in seen or row["patient_id"] not in known:
                continue
            seen.add(key)
            fy = held.year if held.month >= 4 else held.year - 1
            per_quarter[(fy, ((held.month - 4) % 12) // 3 + 1)] = per_quarter.get((fy, ((held.month - 4) % 12) // 3 + 1), 0) + 1
    for q in demo_run.breakdowns["quarters"]:
        start = dt.date.fromisoformat(q["from"])
        fy = start.year if start.month >= 4 else start.year - 1
        assert q["conversations"] == per_quarter.get((fy, int(q["quarter"][1])), 0), q


def test_populations_come_in_dependency_order(demo_run: DemoRun) -> None:
    doc = demo_run.evaluation.ruleset.doc
    order = population_order(doc, "patient")
    assert order[0] == "served_year1"
    assert order.index("ltc_identified") < order.index("baseline_assessed") < order.index("year1_cohort")
    assert order.index("year1_cohort") < order.index("conversation_held")
    assert order.index("followed_up") < order.index("improved")
    assert "relevant_staff" not in order and population_order(doc, "staff") == ["relevant_staff", "trained_staff"]


def test_a_population_named_before_the_one_it_draws_on_is_moved_after_it() -> None:
    doc = {
        "populations": {
            "b": {"entity": "patient", "rule": {"all_of": [{"population": "a"}, {"measured": "x"}]}},
            "a": {"entity": "patient", "rule": {"served": {"during": "y"}}},
        }
    }
    assert population_order(doc) == ["a", "b"]


def test_the_breakdowns_hold_no_nhs_number(demo_run: DemoRun) -> None:
    import json
    import re

    assert not re.search(r"\b\d{10}\b", json.dumps(demo_run.breakdowns))
