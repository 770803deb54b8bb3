"""The indicator as a FHIR R4 Measure a server can load, and the MeasureReport that points at it.

Both are checked by two independent validators: the fhir.resources models (in cquin) and HL7's official R4
JSON schema (vendored in tests/fixtures/fhir-r4-schema).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.engine.ruleset import load_ruleset
from cquin.exceptions import CquinError, UserError
from cquin.measure import code_system, measure, measure_bundle, validate_resource
from cquin.render.measurereport import measure_report
from cquin.report.data import load_report_data

from .conftest import DemoRun
from .fhir_schema import schema_errors

RULESET = load_ruleset("cquin_2017_19").doc


@pytest.fixture(scope="module")
def bundle() -> dict:
    return measure_bundle(RULESET)


@pytest.fixture(scope="module")
def report(demo_run: DemoRun) -> dict:
    return measure_report(load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns), control=True)


def _resource(bundle: dict, rtype: str) -> dict:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


def _codes(cs: dict) -> set[str]:
    out: set[str] = set()
    stack = list(cs["concept"])
    while stack:
        c = stack.pop()
        out.add(c["code"])
        stack.extend(c.get("concept", []))
    return out


def test_the_measure_bundle_validates_with_fhir_resources_and_the_r4_json_schema(bundle: dict) -> None:
    validate_resource(bundle, "Bundle")
    assert schema_errors(bundle) == []
    for entry in bundle["entry"]:
        assert schema_errors(entry["resource"]) == [], entry["resource"]["resourceType"]
    assert [e["request"] for e in bundle["entry"]] == [
        {"method": "PUT", "url": "Measure/cquin-2017-19"},
        {"method": "PUT", "url": "CodeSystem/cquin-2017-19"},
        {"method": "PUT", "url": "Library/cquin-2017-19"},
    ]


def test_the_measure_report_validates_against_the_r4_json_schema(report: dict) -> None:
    assert schema_errors(report) == []


def test_the_report_references_the_measure_by_its_url_and_version(bundle: dict, report: dict) -> None:
    m = _resource(bundle, "Measure")
    assert report["measure"] == f"{m['url']}|{m['version']}"
    assert m["url"] == "https://fhir.cquin.org.uk/R4/Measure/cquin-2017-19" and m["version"] == RULESET["version"]
    assert next(e["fullUrl"] for e in bundle["entry"] if e["resource"] is m) == m["url"]  # resolves on the server it is PUT on


def test_each_component_is_a_group_with_the_ruleset_populations_as_criteria(bundle: dict) -> None:
    m = _resource(bundle, "Measure")
    assert [g["code"]["coding"][0]["code"] for g in m["group"]] == [c["id"] for c in RULESET["components"]]
    conv = next(g for g in m["group"] if g["code"]["coding"][0]["code"] == "y2.conversations")
    pops = {p["code"]["coding"][0]["code"]: p["criteria"]["expression"] for p in conv["population"]}
    assert pops == {"initial-population": "year1_cohort", "denominator": "year1_cohort", "numerator": "conversation_held"}
    assert "above 75%: pays 100%" in conv["description"]
    assert [s["code"]["coding"][0]["code"] for s in conv["stratifier"]] == ["year", "ltc_count", "activation", "age_band", "sex"]
    plan = next(g for g in m["group"] if g["code"]["coding"][0]["code"] == "y1.plan")
    assert "population" not in plan  # an attainment: a level reached, no counts


def test_the_staff_component_is_stratified_only_by_year(bundle: dict) -> None:
    staff = next(g for g in _resource(bundle, "Measure")["group"] if g["id"] == "y1.staff-training")
    assert [s["code"]["coding"][0]["code"] for s in staff["stratifier"]] == ["year"]


def test_every_code_in_the_measure_and_the_report_is_in_the_code_system(bundle: dict, report: dict) -> None:
    cs = _resource(bundle, "CodeSystem")
    known = _codes(cs)
    assert cs["count"] == len(known)
    used = []
    for resource in (_resource(bundle, "Measure"), report):
        for g in resource["group"]:
            used.append(g["code"]["coding"][0])
            for s in g.get("stratifier", []):
                code = s["code"][0] if isinstance(s["code"], list) else s["code"]  # a list in MeasureReport, one in Measure
                used.append(code["coding"][0])
                used += [st["value"]["coding"][0] for st in s.get("stratum", [])]
    ours = [c for c in used if c["system"] == cs["url"]]
    assert ours and {c["code"] for c in ours} <= known
    assert len(ours) == len(used)  # every group, stratifier and stratum value is coded from it


def test_stratum_values_are_coded_not_plain_text(report: dict) -> None:
    group = next(g for g in report["group"] if g["id"] == "y2.conversations")
    sex = next(s for s in group["stratifier"] if s["code"][0]["coding"][0]["code"] == "sex")
    assert {st["value"]["coding"][0]["code"] for st in sex["stratum"]} >= {"sex.female", "sex.male"}


def test_the_reporter_is_the_provider_by_its_ods_code(report: dict) -> None:
    assert report["reporter"]["identifier"] == {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RYX"}
    assert report["reporter"]["type"] == "Organization"


def test_both_resources_carry_a_generated_narrative(bundle: dict, report: dict) -> None:
    for r in [report, *(e["resource"] for e in bundle["entry"])]:
        assert r["text"]["status"] == "generated"
        assert r["text"]["div"].startswith('<div xmlns="http://www.w3.org/1999/xhtml">')
    assert "RYX" in report["text"]["div"] and "y2.conversations" in report["text"]["div"]


def test_the_published_narrative_shows_published_patient_counts_and_exact_staff_counts(report: dict) -> None:
    # Issue 16: disclosure control applies to counts of patients only; staff counts (4 of 6) stay exact.
    div = report["text"]["div"]
    assert ">4<" in div and ">6<" in div
    assert ">100<" in div and ">235<" in div and ">102<" not in div  # activation improvement 102/234, published


@pytest.mark.parametrize(
    "base",
    [
        "https://cquin.example/fhir",
        "https://fhir.example.org",
        "http://example.com/R4",
        "https://server.test",
        "https://x.invalid/fhir",
        "https://localhost/fhir",
        "ftp://fhir.nhs.uk",
        "https://fhir.nhs.uk/R4|1",
        "not a url",
    ],
)
def test_a_canonical_base_that_cannot_resolve_is_refused(base: str) -> None:
    with pytest.raises(UserError, match="canonical base"):
        measure(RULESET, base=base)


def test_the_canonical_base_is_configurable_and_carried_everywhere(demo_run: DemoRun) -> None:
    base = "https://fhir.my-icb.nhs.uk/R4/"
    m = measure(RULESET, base=base)
    assert m["url"] == "https://fhir.my-icb.nhs.uk/R4/Measure/cquin-2017-19"
    assert code_system(RULESET, base=base)["url"] == "https://fhir.my-icb.nhs.uk/R4/CodeSystem/cquin-2017-19"
    r = measure_report(load_report_data(demo_run.store, demo_run.run_id), base=base)
    assert r["measure"] == m["url"] + "|1.2.0"
    assert all(g["code"]["coding"][0]["system"].startswith("https://fhir.my-icb.nhs.uk/R4/") for g in r["group"])


def test_the_measure_is_built_from_the_ruleset_alone() -> None:
    # Nothing about the indicator is in Python: a changed ruleset gives a changed Measure.
    doc = copy.deepcopy(RULESET)
    doc["id"], doc["version"], doc["status"] = "next_year", "2.0.0", "draft"
    doc["components"][4]["name"] = "Conversations held"
    doc["components"][4]["bands"][2]["above"] = 80
    m = measure(doc)
    assert (m["url"].rsplit("/", 1)[1], m["version"], m["status"], m["experimental"]) == ("next-year", "2.0.0", "draft", True)
    g = m["group"][4]
    assert g["code"]["coding"][0]["display"] == "Conversations held" and "above 80%: pays 100%" in g["description"]
    validate_resource(measure_bundle(doc), "Bundle")


def test_a_ruleset_without_a_canonical_base_needs_one_given() -> None:
    doc = {k: v for k, v in RULESET.items() if k != "fhir"}
    with pytest.raises(UserError, match="--canonical-base"):
        measure(doc)
    assert measure(doc, base="https://fhir.my-icb.nhs.uk")["url"].startswith("https://fhir.my-icb.nhs.uk/Measure/")


def test_an_invalid_measure_is_refused() -> None:
    broken = {**measure(RULESET), "status": "published"}  # a ruleset word, not a FHIR publication status
    with pytest.raises(CquinError, match="does not validate"):
        validate_resource(broken)


def test_export_writes_the_measure_without_a_run(tmp_path: Path) -> None:
    out = tmp_path / "measure.json"
    result = CliRunner().invoke(app, ["export", "--fhir-measure", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["type"] == "transaction" and schema_errors(written) == []


def test_export_of_a_run_writes_a_matching_measure_and_report(demo_run: DemoRun, tmp_path: Path) -> None:
    m, r = tmp_path / "m.json", tmp_path / "r.json"
    args = ["export", demo_run.run_id, "--store", str(demo_run.store), "--fhir-measure", str(m), "--fhir-measure-report", str(r)]
    result = CliRunner().invoke(app, [*args, "--canonical-base", "https://fhir.my-icb.nhs.uk/R4"])
    assert result.exit_code == 0, result.output
    measure_res = json.loads(m.read_text(encoding="utf-8"))["entry"][0]["resource"]
    assert json.loads(r.read_text(encoding="utf-8"))["measure"] == f"{measure_res['url']}|{measure_res['version']}"


def test_export_refuses_a_reserved_base_in_plain_words(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["export", "--fhir-measure", str(tmp_path / "m.json"), "--canonical-base", "https://cquin.example"]
    )
    assert isinstance(result.exception, UserError) and "reserved for examples" in str(result.exception)
    assert not (tmp_path / "m.json").exists()
