"""A policy change moves exactly the results it should, and "how many more for the next band" is exact.

The policy lives in the ruleset, so changing it is editing YAML and code lists.
Here a copy of the bundled ruleset gets one band edge moved and one SNOMED CT
code added to a category; the same demo data evaluated under both rulesets
must differ only where the change reaches: LTC identification's numerator, the
components whose populations grow out of LTC identification, and the moved
band's payment, which must match a hand computation.
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import nhs_number
import pytest
from stdnum import verhoeff

from cquin.dataset import CanonicalDataset, DatasetBuilder
from cquin.demo import DEMO_DIR
from cquin.engine.evaluation import RunResult, evaluate
from cquin.engine.ruleset import BUNDLED_DIR, Ruleset, load_ruleset
from cquin.loading import load_dataset

RULESET = "cquin_2017_19"
CATEGORY_LIST = "asthma_chest.snomed.csv"  # the category list the new code joins
CONTRACT = Decimal("12000000")
YEAR1_END = "2018-03-31"
# Components whose populations do not depend on LTC identification.
UNAFFECTED = ("y1.plan", "y1.staff_training")
# Downstream of ltc_identified: its denominator is ltc_identified; the cohorts (and so Year 2) grow out of it.
DOWNSTREAM = ("y1.activation_assessment", "y2.conversations", "y2.activation_improvement")


def evaluate_demo(ruleset: Ruleset) -> tuple[RunResult, CanonicalDataset]:
    dataset, _ = load_dataset(DEMO_DIR, ruleset.vocabulary())
    return evaluate(ruleset, dataset, contract_value=CONTRACT), dataset


@pytest.fixture(scope="module")
def before() -> tuple[Ruleset, RunResult, CanonicalDataset]:
    rs = load_ruleset(RULESET)
    return (rs, *evaluate_demo(rs))


@pytest.fixture(scope="module")
def new_code(before) -> str:
    """A valid SNOMED CT id the demo data records often but no category lists (from the run's unmatched codes)."""
    _, result, _ = before
    candidates = [
        code for system, code, n in result.unmatched_codes if system == "snomed" and n >= 20 and verhoeff.is_valid(code)
    ]
    assert candidates, result.unmatched_codes[:20]
    return candidates[0]


def changed_ruleset(folder: Path, code: str) -> Ruleset:
    """The bundled ruleset with y1.activation_assessment's 50% edges moved to 60% and ``code`` added to a category."""
    source = BUNDLED_DIR / f"{RULESET}.yaml"
    text = source.read_text(encoding="utf-8")
    at = text.index("- id: y1.activation_assessment")
    head, tail = text[:at], text[at:]
    for old, new in (
        ("{at_least: 25, at_most: 50, pays_percent: 50}", "{at_least: 25, at_most: 60, pays_percent: 50}"),
        ("{above: 50, pays_percent: 100}", "{above: 60, pays_percent: 100}"),
    ):
        assert old in tail.split("- id: y1.staff_training")[0], old
        tail = tail.replace(old, new, 1)  # the first occurrence is in this component's own bands
    (folder / source.name).write_text(head + tail, encoding="utf-8")
    # The code lists: every file linked to the bundled one, except the list that gains the code.
    lists = BUNDLED_DIR / "codelists" / RULESET
    target = folder / "codelists" / RULESET
    target.mkdir(parents=True)
    for f in lists.iterdir():
        if f.name == CATEGORY_LIST:
            shutil.copyfile(f, target / f.name)
            with (target / f.name).open("a", encoding="utf-8", newline="") as fh:
                fh.write(f"{code},Added by the policy change test,test\n")
        else:
            (target / f.name).symlink_to(f)
    return load_ruleset(str(folder / source.name))


@pytest.fixture(scope="module")
def after(tmp_path_factory, new_code) -> tuple[Ruleset, RunResult, CanonicalDataset]:
    rs = changed_ruleset(tmp_path_factory.mktemp("policy"), new_code)
    return (rs, *evaluate_demo(rs))


def newly_identified(dataset: CanonicalDataset, code: str, already: set[str]) -> int:
    """Served-in-Year-1 patients with ``code`` recorded by the end of Year 1 who were not identified before."""
    rows = dataset.con.execute(
        f"""SELECT DISTINCT c.patient_id FROM conditions c
            WHERE c.code_system = 'snomed' AND c.code = ? AND c.recorded_on <= DATE '{YEAR1_END}'
              AND EXISTS (SELECT 1 FROM patients p WHERE p.patient_id = c.patient_id
                          AND p.served_from <= DATE '{YEAR1_END}' AND coalesce(p.served_to, DATE '9999-12-31') >= DATE '2017-04-01')""",
        [code],
    ).fetchall()
    return len({r[0] for r in rows} - already)


def identified(result: RunResult) -> set[str]:
    assert result.trace is not None
    return result.trace.members("y1.ltc_identification", "numerator")


def test_the_changed_ruleset_has_a_different_sha256(before, after):
    assert before[0].sha256 != after[0].sha256


def test_ltc_identification_gains_exactly_the_newly_identified_served_patients(before, after, new_code):
    _, old, old_ds = before
    _, new, _ = after
    gained = newly_identified(old_ds, new_code, identified(old))
    assert gained > 0  # the demo data does exercise the change
    a, b = old.component("y1.ltc_identification"), new.component("y1.ltc_identification")
    assert (b.numerator, b.denominator) == (a.numerator + gained, a.denominator)
    assert new_code not in {code for system, code, _ in new.unmatched_codes if system == "snomed"}


@pytest.mark.parametrize("cid", UNAFFECTED)
def test_components_that_do_not_depend_on_ltc_identification_do_not_change(before, after, cid):
    assert after[1].component(cid).as_dict() == before[1].component(cid).as_dict()


def test_only_ltc_identification_and_its_downstream_components_change(before, after):
    old, new = before[1], after[1]
    changed = {c.id for c in new.components if c.as_dict() != old.component(c.id).as_dict()}
    assert changed == {"y1.ltc_identification", *DOWNSTREAM}  # in the demo data the new patients reach every one
    # Activation assessment's denominator is the LTC-identified patients, so it follows them exactly.
    assert new.component("y1.activation_assessment").denominator == new.component("y1.ltc_identification").numerator


def test_the_moved_band_pays_what_a_hand_computation_says(after):
    c = after[1].component("y1.activation_assessment")
    percent = Fraction(c.numerator, c.denominator) * 100
    # By hand, from the changed ruleset: below 25% pays 0; 25% to 60% inclusive pays a half; above 60% pays all.
    pays = Fraction(0) if percent < 25 else Fraction(1, 2) if percent <= 60 else Fraction(1)
    assert c.payment_fraction == pays
    assert c.band == ("below 25%" if pays == 0 else "from 25% to 60% inclusive" if pays < 1 else "above 60%")
    weighting = Decimal("0.0025")  # the indicator's 0.25%
    assert c.payment == (CONTRACT * weighting * Decimal("0.30") * Decimal(pays.numerator) / Decimal(pays.denominator)).quantize(
        Decimal("0.01")
    )


# --------------------------------------------------------------------------- next-band distances


@pytest.fixture(scope="module")
def numbers() -> list[str]:
    out, stem = [], 999_000_000
    while len(out) < 120:
        check = nhs_number.calculate_checksum(str(stem))
        if check is not None and check < 10:
            out.append(f"{stem}{check}")
        stem += 1
    assert all(nhs_number.is_valid(n) for n in out)
    return out


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset(RULESET)


def build(ruleset: Ruleset, tables: dict[str, list[dict[str, str]]]) -> CanonicalDataset:
    builder = DatasetBuilder(ruleset.vocabulary(), memory_limit="256MB", threads=1)
    for name, rows in tables.items():
        builder.source(f"{name}.csv", None, name)
        builder.add_rows(name, [{"_file": f"{name}.csv", "_line": i + 2, **row} for i, row in enumerate(rows)])
    return builder.build()


def activation_dataset(numbers: list[str], assessed: int, of: int) -> dict[str, list[dict[str, str]]]:
    """``of`` patients served in Year 1, each with a long-term condition; the first ``assessed`` have a baseline."""
    ids = numbers[:of]
    return {
        "patients": [{"patient_id": p, "served_from": "2017-01-01"} for p in ids],
        "conditions": [{"patient_id": p, "code_system": "gpps", "code": "diabetes", "recorded_on": "2017-05-01"} for p in ids],
        "assessments": [
            {"patient_id": p, "assessed_on": "2017-06-01", "respondent": "patient", "instrument": "pam", "pam_score": "47.0"}
            for p in ids[:assessed]
        ],
    }


def training_dataset(numbers: list[str], trained: int, of: int) -> dict[str, list[dict[str, str]]]:
    """``of`` staff caring for the cohort; the first ``trained`` trained in Year 1."""
    staff = [f"S{i:03d}" for i in range(of)]
    return {
        "patients": [{"patient_id": numbers[0], "served_from": "2017-01-01"}],
        "staff": [{"staff_id": s, "cares_for_cohort": "true"} for s in staff],
        "training": [{"staff_id": s, "completed_on": "2017-09-01"} for s in staff[:trained]],
    }


# (component, numerator, denominator, next band, its payment, how many more it needs) — None: already at the top.
NEXT_BANDS = [
    ("y1.activation_assessment", 24, 100, "from 25% to 50% inclusive", "0.5", 1),
    ("y1.activation_assessment", 25, 100, "above 50%", "1", 26),  # 51% is the first percentage above 50%
    ("y1.activation_assessment", 50, 100, "above 50%", "1", 1),  # 50% is inside the inclusive band
    ("y1.activation_assessment", 24, 99, "from 25% to 50% inclusive", "0.5", 1),  # 25/99 = 25.25%
    ("y1.activation_assessment", 49, 99, "above 50%", "1", 1),  # 50/99 = 50.51%
    ("y1.activation_assessment", 51, 100, None, None, None),
    ("y1.staff_training", 32, 100, "from 33% up to but not including 66%", "0.4", 1),
    ("y1.staff_training", 65, 100, "from 66% to 85% inclusive", "0.7", 1),
    ("y1.staff_training", 85, 100, "above 85%", "1", 1),
    ("y1.staff_training", 86, 100, None, None, None),
]


@pytest.mark.parametrize(("cid", "num", "den", "band", "pays", "more"), NEXT_BANDS)
def test_the_next_band_says_exactly_how_many_more_are_needed(ruleset, numbers, cid, num, den, band, pays, more):
    tables = activation_dataset(numbers, num, den) if cid == "y1.activation_assessment" else training_dataset(numbers, num, den)
    dataset = build(ruleset, tables)
    c = evaluate(ruleset, dataset).component(cid)
    assert (c.numerator, c.denominator) == (num, den)
    if band is None:
        assert c.next_band is None
    else:
        assert c.next_band is not None
        assert c.next_band == {"band": band, "pays": pays, "more_needed": more}
