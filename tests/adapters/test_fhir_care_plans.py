"""What FHIR care plans say, as care_plans rows: needs, goals, actions, referrals and conversation elements.

An agreed CarePlan (one that counts as a conversation) names its support needs in CarePlan.addresses
(Conditions), its goals in CarePlan.goal (Goals), its referrals in CarePlan.activity.reference or by the
ServiceRequest's own basedOn, and its actions and conversation elements in CarePlan.activity.detail.code; each
is in a care-planning category when it carries a coding in the ruleset's care_planning.category_system (code =
category id) or element_system (code = element id).  Every Goal and ServiceRequest read is a row of an agreed
plan or is ignored with why, charged to its own file and line.
"""

from __future__ import annotations

import json
from pathlib import Path

from cquin.adapters.fhir_map import SHARED_WITH_PATIENT_EXTENSION
from cquin.loading import load_dataset
from tests.adapters.test_fhir import (
    SCT,
    episode,
    load,
    patient,
    rejections,
    rows,
    vocab,  # noqa: F401 - the module-scoped fixture
    write_bulk,
)

EQUIVALENCE = Path(__file__).parent.parent / "fixtures" / "equivalence"
PCSP = {"coding": [{"system": "https://cquin.example/CodeSystem/care-planning", "code": "pcsp-agreed"}]}
CATEGORY = "https://cquin.example/CodeSystem/care-planning-category"
ELEMENT = "https://cquin.example/CodeSystem/care-planning-element"
CANONICAL = "SELECT * EXCLUDE (_file, _line, _ref) FROM {} ORDER BY ALL"
PLAN_ROWS = "patient_id, plan_id, CAST(agreed_on AS VARCHAR), shared_with_patient, entry, category, CAST(entry_on AS VARCHAR)"


def coded(system: str, code: str) -> dict:
    return {"coding": [{"system": system, "code": code}]}


def plan(pid: str = "cp1", **extra: object) -> dict:
    return {
        "resourceType": "CarePlan",
        "id": pid,
        "status": "active",
        "intent": "plan",
        "category": [PCSP],
        "subject": {"reference": "Patient/p1"},
        "created": "2017-07-05",
    } | extra


def goal(gid: str, category: str = "physical_activity", **extra: object) -> dict:
    return {
        "resourceType": "Goal",
        "id": gid,
        "lifecycleStatus": "active",
        "category": [coded(CATEGORY, category)],
        "description": {"text": "Walk for 30 minutes three times a week"},
        "subject": {"reference": "Patient/p1"},
    } | extra


def referral(sid: str, category: str = "physical_activity", **extra: object) -> dict:
    return {
        "resourceType": "ServiceRequest",
        "id": sid,
        "status": "active",
        "intent": "order",
        "category": [coded(CATEGORY, category)],
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2017-07-20",
    } | extra


def need(cid: str, category: str = "befriending", **extra: object) -> dict:
    return {
        "resourceType": "Condition",
        "id": cid,
        "code": coded(CATEGORY, category),
        "subject": {"reference": "Patient/p1"},
        "recordedDate": "2017-07-05",
    } | extra


def export(tmp_path: Path, *resources: dict) -> Path:
    return write_bulk(tmp_path, patient("p1"), episode("ep1", "p1", "2016-01-01"), *resources)


# ---------------------------------------------------------------- the equivalence population


def test_the_fhir_equivalence_export_gives_the_canonical_care_plans_and_the_same_conversations(vocab) -> None:  # noqa: F811
    fhir, _ = load_dataset(EQUIVALENCE / "fhir", vocab, adapter="fhir")
    canonical, _ = load_dataset(EQUIVALENCE / "canonical", vocab, adapter="canonical")
    assert fhir.ledger.rejection_count() == 0
    for table, expected in [("care_plans", 7), ("conversations", 2)]:
        got = fhir.con.execute(CANONICAL.format(table)).fetchall()
        assert len(got) == expected, table
        assert got == canonical.con.execute(CANONICAL.format(table)).fetchall(), table


# ---------------------------------------------------------------- each entry and where it comes from


def test_an_agreed_plan_records_its_needs_goals_referrals_actions_and_elements(vocab, tmp_path: Path) -> None:  # noqa: F811
    activity = [
        {"reference": {"reference": "ServiceRequest/sr1"}},
        {"detail": {"code": coded(CATEGORY, "welfare_rights"), "status": "in-progress"}},
        {"detail": {"code": coded(ELEMENT, "contingency_planning"), "status": "completed"}},
    ]
    cp = plan(
        addresses=[{"reference": "Condition/n1"}],
        goal=[{"reference": "Goal/g1"}],
        activity=activity,
        extension=[{"url": SHARED_WITH_PATIENT_EXTENSION, "valueBoolean": True}],
    )
    ds = load(vocab, export(tmp_path, cp, need("n1"), goal("g1"), referral("sr1")))
    assert rejections(ds) == []
    assert rows(ds, "care_plans", PLAN_ROWS) == [
        ("9990000042", "cp1", "2017-07-05", True, "action", "welfare_rights", None),
        ("9990000042", "cp1", "2017-07-05", True, "element", "contingency_planning", None),
        ("9990000042", "cp1", "2017-07-05", True, "goal", "physical_activity", None),
        ("9990000042", "cp1", "2017-07-05", True, "need", "befriending", None),
        ("9990000042", "cp1", "2017-07-05", True, "referral", "physical_activity", "2017-07-20"),
    ]
    # Each row is charged to the record it came from.
    assert rows(ds, "care_plans", "_ref, entry") == [
        ("CarePlan/cp1", "action"),
        ("CarePlan/cp1", "element"),
        ("Condition/n1", "need"),
        ("Goal/g1", "goal"),
        ("ServiceRequest/sr1", "referral"),
    ]
    assert rows(ds, "conditions", "code") == []  # a need coded only in the care-planning categories is no condition


def test_shared_with_patient_is_empty_when_the_plan_does_not_say(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, export(tmp_path, plan(goal=[{"reference": "Goal/g1"}]), goal("g1")))
    assert rows(ds, "care_plans", "shared_with_patient, entry") == [(None, "goal")]


def test_a_referral_made_before_the_plan_was_agreed_is_dated_as_the_plan(vocab, tmp_path: Path) -> None:  # noqa: F811
    sr = referral("sr1", authoredOn="2017-06-01", basedOn=[{"reference": "CarePlan/cp1"}])
    ds = load(vocab, export(tmp_path, plan(), sr))
    assert rows(ds, "care_plans", "entry, CAST(entry_on AS VARCHAR)") == [("referral", None)]


def test_a_service_request_read_before_its_care_plan_still_links(vocab, tmp_path: Path) -> None:  # noqa: F811
    lines = [
        patient("p1"),
        episode("ep1", "p1", "2016-01-01"),
        referral("sr1", basedOn=[{"reference": "CarePlan/cp1"}]),
        plan(),
    ]
    (tmp_path / "export.ndjson").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    ds = load(vocab, tmp_path)
    assert rejections(ds) == []
    assert rows(ds, "care_plans", "_line, plan_id, entry, category, CAST(entry_on AS VARCHAR)") == [
        (3, "cp1", "referral", "physical_activity", "2017-07-20")
    ]


def test_a_goal_contained_in_the_plan_is_read_from_it(vocab, tmp_path: Path) -> None:  # noqa: F811
    inner = goal("g1") | {"subject": {"reference": "Patient/p1"}}
    ds = load(vocab, export(tmp_path, plan(contained=[inner], goal=[{"reference": "#g1"}])))
    assert rows(ds, "care_plans", "_ref, entry, category") == [("CarePlan/cp1", "goal", "physical_activity")]


# ---------------------------------------------------------------- what is not part of an agreed plan


def test_a_goal_outside_any_agreed_plan_is_ignored_with_its_reason(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, export(tmp_path, plan(), goal("g1")))
    assert rows(ds, "care_plans", "entry") == []
    assert rejections(ds) == [
        (
            "Goal.000.ndjson",
            1,
            "Goal/g1",
            "ignored: not part of an agreed care plan: no CarePlan names this Goal in CarePlan.goal",
        )
    ]


def test_a_referral_based_on_a_plan_that_was_not_agreed_is_ignored_with_its_reason(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, export(tmp_path, plan(status="draft"), referral("sr1", basedOn=[{"reference": "CarePlan/cp1"}])))
    assert ("ServiceRequest.000.ndjson", 1, "ServiceRequest/sr1") + (
        "ignored: not part of an agreed care plan: 'CarePlan/cp1' is not one "
        "(CarePlan status is 'draft', so it is not an agreed plan)",
    ) in rejections(ds)


def test_a_referral_based_on_a_plan_not_in_the_export_is_ignored_with_its_reason(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, export(tmp_path, referral("sr1", basedOn=[{"reference": "CarePlan/elsewhere"}])))
    assert [r[3] for r in rejections(ds)] == [
        "ignored: not part of an agreed care plan: its basedOn 'CarePlan/elsewhere' is no CarePlan read in this export"
    ]


def test_a_referral_that_was_not_made_is_ignored_with_its_reason(vocab, tmp_path: Path) -> None:  # noqa: F811
    sr = referral("sr1", status="draft", basedOn=[{"reference": "CarePlan/cp1"}])
    ds = load(vocab, export(tmp_path, plan(), sr))
    assert [r[3] for r in rejections(ds)] == [
        "ignored: ServiceRequest status is 'draft', so it is not a referral made (active or completed)"
    ]


def test_a_goal_with_no_care_planning_coding_is_ignored_with_its_reason(vocab, tmp_path: Path) -> None:  # noqa: F811
    g = goal("g1") | {"category": [coded(SCT, "289169006")]}
    ds = load(vocab, export(tmp_path, plan(goal=[{"reference": "Goal/g1"}]), g))
    [(file, line, ref, reason)] = rejections(ds)
    assert (file, line, ref) == ("Goal.000.ndjson", 1, "Goal/g1")
    assert reason.startswith(
        f"ignored: no care-planning coding on the Goal (its category or description codes are {SCT}|289169006)"
    )


def test_an_unknown_category_coding_is_rejected_with_its_reason(vocab, tmp_path: Path) -> None:  # noqa: F811
    ds = load(vocab, export(tmp_path, plan(goal=[{"reference": "Goal/g1"}]), goal("g1", category="gardening")))
    assert rows(ds, "care_plans", "entry") == []
    [(file, line, ref, reason)] = rejections(ds)
    assert (file, line, ref) == ("Goal.000.ndjson", 1, "Goal/g1")
    assert reason.startswith("'gardening' is not one of the ruleset's care plan categories (care_planning.categories: ")


def test_a_goal_about_another_patient_than_its_plan_is_rejected(vocab, tmp_path: Path) -> None:  # noqa: F811
    other = patient("p2", "9990000018")
    g = goal("g1", subject={"reference": "Patient/p2"})
    ds = load(vocab, export(tmp_path, other, episode("ep2", "p2"), plan(goal=[{"reference": "Goal/g1"}]), g))
    assert [r[2:] for r in rejections(ds)] == [
        (
            "Goal/g1",
            "Goal 'Goal/g1' is about patient 9990000018, but 'CarePlan/cp1', which it belongs to, is about 9990000042",
        )
    ]


def test_a_coded_condition_that_is_also_a_need_stays_a_condition_when_no_plan_addresses_it(vocab, tmp_path: Path) -> None:  # noqa: F811
    both = need("n1") | {"code": {"coding": [{"system": SCT, "code": "44054006"}, {"system": CATEGORY, "code": "befriending"}]}}
    ds = load(vocab, export(tmp_path, both))
    assert rows(ds, "conditions", "code") == [("44054006",)]
    assert rows(ds, "care_plans", "entry") == []
    assert rejections(ds) == []
    assert any("addressed by no agreed CarePlan" in n for n in ds.ledger.notes)
