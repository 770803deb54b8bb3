"""The run as an HL7 FHIR R4 MeasureReport: summary, populations, scores and stratifiers, valid against FHIR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cquin.exceptions import CquinError
from cquin.render.measurereport import measure_report, validate, write_measure_report
from cquin.report.data import load_report_data

from .conftest import DemoRun


@pytest.fixture(scope="module")
def exact(demo_run: DemoRun) -> dict:
    return measure_report(load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns), control=False)


def _group(resource: dict, cid: str) -> dict:
    return next(g for g in resource["group"] if g["code"]["coding"][0]["code"] == cid)


def _counts(entry: dict) -> dict[str, int | None]:
    return {p["code"]["coding"][0]["code"]: p.get("count") for p in entry["population"]}


def test_the_export_validates_against_the_fhir_measure_report_model(demo_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "mr.json"
    write_measure_report(demo_run.store, demo_run.run_id, out)
    resource = json.loads(out.read_text(encoding="utf-8"))
    validate(resource)  # what was written, read back, still validates
    assert (resource["resourceType"], resource["status"], resource["type"]) == ("MeasureReport", "complete", "summary")
    assert resource["measure"] == "https://fhir.cquin.org.uk/R4/Measure/cquin-2017-19|1.2.0"
    assert resource["period"] == {"start": "2017-04-01", "end": "2019-03-31"}


def test_each_component_is_a_group_with_its_counts_and_score(demo_run: DemoRun, exact: dict) -> None:
    result = demo_run.evaluation.result
    assert [g["code"]["coding"][0]["code"] for g in exact["group"]] == [c.id for c in result.components]
    c = result.component("y2.activation_improvement")
    group = _group(exact, c.id)
    assert _counts(group) == {"initial-population": c.denominator, "denominator": c.denominator, "numerator": c.numerator}
    assert float(group["measureScore"]["value"]) == pytest.approx(c.numerator / c.denominator, abs=5e-5)


def test_a_group_is_stratified_by_year_and_by_patient_dimensions(demo_run: DemoRun, exact: dict) -> None:
    group = _group(exact, "y2.conversations")
    by = {s["code"][0]["coding"][0]["code"]: s for s in group["stratifier"]}
    assert by["year"]["stratum"][0]["value"]["coding"][0]["code"] == "year2"
    assert set(by) >= {"year", "sex", "age_band", "ltc_count", "activation"}
    # Strata partition the group: their denominators add up to the group's.
    assert sum(_counts(s)["denominator"] for s in by["sex"]["stratum"]) == _counts(group)["denominator"]


def test_published_a_small_patient_count_is_masked_and_staff_counts_stay_exact(tmp_path) -> None:
    from cquin.runner import run_evaluation

    from .conftest import write_canonical
    from .test_disclosure import THREE_PATIENTS

    ev = run_evaluation(write_canonical(tmp_path / "data", THREE_PATIENTS), store=tmp_path / "audit.sqlite")
    assert ev.run_id is not None
    resource = measure_report(load_report_data(tmp_path / "audit.sqlite", ev.run_id), control=True)
    validate(resource)
    group = _group(resource, "y1.activation_assessment")  # 3 of 3 patients: both suppressed
    masked = [p for p in group["population"] if "count" not in p]
    assert len(masked) == 3
    assert masked[0]["_count"]["extension"][0] == {
        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
        "valueCode": "masked",
    }
    assert "measureScore" not in group


def test_the_measure_report_is_exact_by_default_even_for_small_staff_counts(demo_run: DemoRun) -> None:
    resource = measure_report(load_report_data(demo_run.store, demo_run.run_id))
    assert _counts(_group(resource, "y1.staff_training")) == {"initial-population": 6, "denominator": 6, "numerator": 4}
    published = measure_report(load_report_data(demo_run.store, demo_run.run_id), control=True)
    assert _counts(_group(published, "y1.staff_training"))["numerator"] == 4


@pytest.mark.parametrize(
    "change",
    [
        {"status": "finished"},  # not a MeasureReport status
        {"period": None},  # a required element missing
        {"group": [{"population": [{"count": "many"}]}]},  # a count that is not an integer
    ],
)
def test_an_invalid_resource_is_refused(exact: dict, change: dict) -> None:
    broken = {k: v for k, v in {**exact, **change}.items() if v is not None}
    with pytest.raises(CquinError, match="does not validate"):
        validate(broken)
