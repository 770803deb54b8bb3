"""Hypothesis strategies for small canonical populations, and helpers to load and evaluate them.

A population is a dict of canonical table name -> list of rows (dicts of
column -> text), each row carrying a stable ``_line`` so the same record keeps
its identity however the rows are ordered.  Values are drawn from small pools
on purpose: dates on and around the ruleset's period boundaries and repeated
often, so ties (two records on one day) and edge cases come up in nearly
every example.  The pools are test data, not policy: the policy is read from
the ruleset.

How many examples each property tries is bounded for CI; set
``CQUIN_PROPERTY_EXAMPLES`` to try more (e.g. 200 for a long local run).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from cquin.dataset import CanonicalDataset, DatasetBuilder, Vocabulary
from cquin.engine.evaluation import RunResult, evaluate
from cquin.engine.ruleset import Ruleset

Population = dict[str, list[dict[str, Any]]]


def examples(default: int) -> int:
    """``default`` examples, or CQUIN_PROPERTY_EXAMPLES when set."""
    return int(os.environ.get("CQUIN_PROPERTY_EXAMPLES", default))


def bounded(default: int) -> settings:
    return settings(
        max_examples=examples(default),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


def nhs_number(serial: int) -> str:
    """A valid NHS number in the 999 test range (Modulus 11), one per serial."""
    while True:
        digits = f"999{serial:06d}"
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11
        if check == 11:
            check = 0
        if check != 10:
            return digits + str(check)
        serial += 500_000  # an invalid check digit: move to a serial that has one


DATES = (
    "2012-06-01",
    "2016-03-31",
    "2017-03-31",
    "2017-04-01",
    "2017-09-30",
    "2017-12-31",
    "2018-03-31",
    "2018-04-01",
    "2018-09-30",
    "2019-03-31",
    "2019-04-01",
    "2020-01-15",
)
CODES = (
    ("snomed", "44054006"),  # type 2 diabetes
    ("snomed", "26929004"),  # Alzheimer's disease
    ("icd10", "I10"),  # essential hypertension
    ("icd10", "J44.1"),  # COPD with exacerbation
    ("icd10", "E11"),  # type 2 diabetes
    ("gpps", "diabetes"),  # recorded directly as a GPPS LTC category
    ("gpps", "cancer"),
    ("snomed", "22298006"),  # myocardial infarction: in no LTC code list here
    ("icd10", "Z99"),  # in no list
)
PAM_SCORES = ("", "38.1", "47.0", "55.1", "55.2", "62.8", "72.5", "100")
PAM_LEVELS = ("", "1", "2", "3", "4")
STAFF_IDS = ("S1", "S2", "S3")

dates = st.sampled_from(DATES)
maybe_date = st.one_of(st.just(""), dates)


@st.composite
def patient_records(draw: st.DrawFn, pid: str, vocab: Vocabulary) -> Population:
    """One patient's records in every patient table."""
    out: Population = {"patients": [], "conditions": [], "assessments": [], "conversations": [], "overrides": []}
    for _ in range(draw(st.integers(1, 2))):
        out["patients"].append(
            {
                "patient_id": pid,
                "date_of_birth": draw(st.sampled_from(("1940-02-29", "1955-07-01", "2001-12-31", ""))),
                "sex": draw(st.sampled_from(("male", "female", "indeterminate", "unknown", ""))),
                "served_from": draw(dates),
                "served_to": draw(maybe_date),
            }
        )
    for _ in range(draw(st.integers(0, 3))):
        system, code = draw(st.sampled_from(CODES))
        out["conditions"].append({"patient_id": pid, "code_system": system, "code": code, "recorded_on": draw(dates)})
    q32 = st.sampled_from(vocab.gpps_options["gpps_q32"])
    q33 = st.sampled_from(vocab.gpps_options["gpps_q33"])
    for _ in range(draw(st.integers(0, 4))):
        row = {
            "patient_id": pid,
            "assessed_on": draw(dates),
            "respondent": draw(st.sampled_from(("patient", "patient", "carer"))),
        }
        if draw(st.booleans()):
            score, level = draw(st.sampled_from(PAM_SCORES)), draw(st.sampled_from(PAM_LEVELS))
            row |= {"instrument": "pam", "pam_score": score, "pam_level": level or ("" if score else "2")}
        else:
            row |= {"instrument": "gpps", "gpps_q32": draw(q32), "gpps_q33": draw(q33)}
        out["assessments"].append(row)
    for _ in range(draw(st.integers(0, 2))):
        out["conversations"].append({"patient_id": pid, "held_on": draw(dates), "staff_id": draw(st.sampled_from(STAFF_IDS))})
    if draw(st.integers(0, 5)) == 0:
        out["overrides"].append(
            {
                "patient_id": pid,
                "cohort": draw(st.sampled_from(("year1", "year2"))),
                "action": draw(st.sampled_from(("include", "exclude"))),
                "reason": "agreed with the commissioner",
                "agreed_on": draw(maybe_date),
            }
        )
    return out


@st.composite
def populations(draw: st.DrawFn, vocab: Vocabulary, *, min_patients: int = 1, max_patients: int = 10) -> Population:
    """A whole small dataset: patients with their records, staff with training, and the provider's dates."""
    n = draw(st.integers(min_patients, max_patients))
    pop: Population = {t: [] for t in ("patients", "conditions", "assessments", "conversations", "overrides")}
    for i in range(n):
        for name, rows in draw(patient_records(nhs_number(i + 1), vocab)).items():
            pop[name] += rows
    pop["staff"] = [
        {"staff_id": s, "role": "District nurse", "cares_for_cohort": draw(st.sampled_from(("true", "false")))} for s in STAFF_IDS
    ]
    pop["training"] = [
        {"staff_id": draw(st.sampled_from(STAFF_IDS)), "completed_on": draw(dates), "course": "Health coaching"}
        for _ in range(draw(st.integers(0, 4)))
    ]
    pop["provider"] = [
        {
            "provider_code": "RYX",
            "provider_name": "Property Test Community Trust",
            "plan_agreed_on": draw(maybe_date),
            "recording_system_live_on": draw(maybe_date),
        }
    ]
    return number(pop)


def number(pop: Population) -> Population:
    """Give every row its file and a stable line (its identity), in the order drawn."""
    for name, rows in pop.items():
        for line, row in enumerate(rows, start=2):
            row.setdefault("_file", f"{name}.csv")
            row.setdefault("_line", line)
    return pop


def shuffled(pop: Population, seed: int) -> Population:
    """The same records (same files and lines) staged in another order."""
    rng = random.Random(seed)
    out = {}
    for name, rows in pop.items():
        rows = [dict(r) for r in rows]
        rng.shuffle(rows)
        out[name] = rows
    return out


def build(pop: Mapping[str, list[dict[str, Any]]], vocab: Vocabulary) -> CanonicalDataset:
    builder = DatasetBuilder(vocab, threads=1)
    for name, rows in pop.items():
        builder.source(f"{name}.csv", None, name)
        builder.add_rows(name, rows)
    return builder.build()


def run(ruleset: Ruleset, pop: Population, value: Decimal = Decimal("1000000")) -> tuple[RunResult, CanonicalDataset]:
    ds = build(pop, ruleset.vocabulary())
    return evaluate(ruleset, ds, contract_value=value), ds


def components(result: RunResult) -> list[dict[str, Any]]:
    return [c.as_dict() for c in result.components]


def decisions(result: RunResult, ds: CanonicalDataset) -> list[tuple]:
    """The per-patient (and per-staff) decisions, in a fixed order."""
    assert result.trace is not None
    return ds.con.execute(f"SELECT * FROM ({result.trace.decisions_sql()}) ORDER BY ALL").fetchall()
