"""The synthetic data generator: reproducible, loadable, realistic, and bad only where asked."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from cquin.dataset import TABLE_NAMES, table
from cquin.demo import DEMO_DIR, DEMO_PATIENTS, DEMO_SEED
from cquin.demo.generate import code_pools, generate, nhs_numbers
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset


@pytest.fixture(scope="module")
def vocab():
    return load_ruleset("cquin_2017_19").vocabulary()


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """4,000 patients without deliberately bad rows."""
    out = tmp_path_factory.mktemp("clean")
    generate(out, 4000, 11, bad_rows=False)
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def modulus11_ok(number: str) -> bool:
    """NHS Data Dictionary check, written independently of the generator."""
    if len(number) != 10 or not number.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(number[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(number[9])


def test_the_same_seed_writes_byte_identical_files(tmp_path):
    generate(tmp_path / "a", 300, 7)
    generate(tmp_path / "b", 300, 7)
    for name in TABLE_NAMES:
        file = table(name).file_name
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_a_different_seed_writes_different_data(tmp_path):
    generate(tmp_path / "a", 300, 7)
    generate(tmp_path / "b", 300, 8)
    assert (tmp_path / "a" / "conditions.csv").read_bytes() != (tmp_path / "b" / "conditions.csv").read_bytes()


def test_every_canonical_file_is_written_with_its_schema_header_and_counted(tmp_path):
    written = generate(tmp_path, 200, 1)
    for name in TABLE_NAMES:
        path = tmp_path / table(name).file_name
        with path.open(newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh))
        assert header == table(name).column_names
        assert written[path.name] == len(rows(path)) > 0


def test_a_clean_dataset_loads_without_a_single_rejection(clean, vocab):
    ds, adapter = load_dataset(clean, vocab)
    assert adapter == "canonical"
    assert ds.ledger.rejection_count() == 0
    assert all(stats.read == stats.accepted > 0 for stats in ds.ledger.files.values())


def test_nhs_numbers_are_valid_test_numbers_in_order():
    numbers = [str(n) for n in nhs_numbers(5000)]
    assert all(n.startswith("999") and modulus11_ok(n) for n in numbers)
    assert numbers[0] == "9990000018"
    assert numbers == sorted(set(numbers))


def test_nhs_numbers_skip_prefixes_whose_check_digit_would_be_10():
    numbers = nhs_numbers(200)
    used = {int(n) // 10 for n in numbers}
    skipped = [p for p in range(min(used), max(used)) if p not in used]
    assert skipped, "some prefixes in the range must be skipped"
    assert not any(modulus11_ok(f"{p}{d}") for p in skipped for d in range(10))


def test_a_population_larger_than_the_999_range_continues_in_the_998_range():
    last_999, first_998 = (str(n) for n in nhs_numbers(2, skip=909_090))
    assert last_999.startswith("999") and first_998.startswith("998")
    assert modulus11_ok(first_998)


def test_patients_must_be_at_least_one(tmp_path):
    with pytest.raises(ValueError):
        generate(tmp_path, 0, 1)


def test_the_mix_is_realistic_for_community_services(clean):
    patients, conditions = rows(clean / "patients.csv"), rows(clean / "conditions.csv")
    assessments, conversations = rows(clean / "assessments.csv"), rows(clean / "conversations.csv")
    people = {p["patient_id"] for p in patients}
    n = len(people)
    assert n == 4000
    assert 1.03 < len(patients) / n < 1.12  # some have two episodes

    last_end = {}
    for p in patients:
        last_end[p["patient_id"]] = max(last_end.get(p["patient_id"], ""), p["served_to"] or "9999")
    discharged_before_y2 = sum(end < "2018-04-01" for end in last_end.values()) / n
    assert 0.05 < discharged_before_y2 < 0.12
    assert sum(not p["served_to"] for p in patients) / len(patients) > 0.5

    pools = code_pools()
    ltc_texts = set(pools.texts[: pools.offsets[5 * 14]])
    with_ltc = {c["patient_id"] for c in conditions if c["code"] in ltc_texts}
    assert 0.5 < len(with_ltc) / n < 0.7
    assert 2.5 < len(conditions) / n < 3.5
    codes = [c["code"] for c in conditions]
    assert any("." in c for c in codes) and any(len(c) == 4 and c[0].isalpha() for c in codes)  # ICD-10 with and without dot
    assert {"195662009", "10509002"} <= set(codes)
    assert any(c["recorded_on"] < "2013-04-01" and c["code"].startswith("C") for c in conditions)  # old cancer codes

    assert 0.8 < len(assessments) / n < 1.2
    pam = [a for a in assessments if a["instrument"].lower() == "pam" and a["pam_level"]]
    levels = Counter(a["pam_level"] for a in pam)
    for level, share in (("1", 0.15), ("2", 0.25), ("3", 0.35), ("4", 0.25)):
        assert abs(levels[level] / len(pam) - share) < 0.06
    assert any(a["respondent"] == "carer" for a in assessments)
    assert any(a["gpps_q32"] and a["gpps_q32"] != a["gpps_q32"].strip() for a in assessments)  # stray spaces
    assert 0.35 < len(conversations) / n < 0.65


def test_bad_rows_are_each_rejected_with_its_reason(tmp_path, vocab):
    written = generate(tmp_path, 1200, 3, bad_rows=True)
    ds, _ = load_dataset(tmp_path, vocab)
    reasons = [r[5] for r in ds.ledger.rejection_rows()]
    expected = [
        "fails the Modulus 11 check digit",
        "is not a date (expected YYYY-MM-DD)",
        "is not a real date",
        "'read' is not one of",
        "is not one of the questionnaire options",
        "PAM score 120 is outside",
        "unknown patient",
        "exact duplicate of",
    ]
    for text in expected:
        assert any(text in r for r in reasons), text
    assert len(reasons) / sum(written.values()) < 0.004


def test_the_bundled_demo_dataset_is_what_its_readme_says(vocab, tmp_path):
    generate(tmp_path, DEMO_PATIENTS, DEMO_SEED, bad_rows=True)
    for name in TABLE_NAMES:
        file = table(name).file_name
        assert (DEMO_DIR / file).read_bytes() == (tmp_path / file).read_bytes(), f"regenerate {file}: see {DEMO_DIR}/README.md"
    ds, _ = load_dataset(DEMO_DIR, vocab)
    assert ds.count("patients") == 2111
    assert ds.ledger.rejection_count() == 17
    assert 'generate(Path("cquin/demo/data"), 2000, 2017, bad_rows=True)' in (DEMO_DIR / "README.md").read_text(encoding="utf-8")


def test_the_demo_care_plans_use_exactly_the_rulesets_categories_and_elements():
    from cquin.demo.generate import CARE_PLAN_CATEGORIES, CONVERSATION_ELEMENTS

    plan = load_ruleset("cquin_2017_19").doc["care_planning"]
    assert CARE_PLAN_CATEGORIES == tuple(c["id"] for c in plan["categories"])
    assert CONVERSATION_ELEMENTS == tuple(e["id"] for e in plan["conversation_elements"] if "recorded_by" not in e)


def test_every_care_plan_records_needs_and_most_are_followed_by_a_goal_or_referral(clean, vocab):
    plans = rows(clean / "care_plans.csv")
    conversations = {(c["patient_id"], c["held_on"]) for c in rows(clean / "conversations.csv")}
    assert {(p["patient_id"], p["agreed_on"]) for p in plans} <= conversations  # a plan is agreed at a conversation
    kinds = Counter(p["entry"] for p in plans)
    assert kinds["need"] and kinds["goal"] > kinds["referral"] > kinds["action"] > 0 and kinds["element"] > kinds["need"]
    assert all(p["entry_on"] > p["agreed_on"] for p in plans if p["entry_on"])  # only later entries carry a date
    ds, _ = load_dataset(clean, vocab)
    assert ds.count("care_plans") == len(plans)
