"""A stored run as an HL7 FHIR R4 MeasureReport (type summary), validated before it is written.

One ``group`` per component: its populations (initial-population, denominator,
numerator) with their counts and the ``measureScore`` (numerator/denominator),
and stratifiers: the component's year, and, when the run kept its breakdowns,
the patient dimensions that partition a population (sex, age band, number of
LTC categories, activation level).  Attainment components (no counts) carry
only their code and the level reached, in ``code.text``.

The measure's canonical URL is made from the ruleset's id and version
(``{MEASURE_BASE}/{id}|{version}``).  The initial population of a component is
its denominator population: the ruleset defines no wider one.

Counts are exact by default (the parties' figures); for publication
(``control=True``, ``--publish``) counts of patients are published under
disclosure control (see :mod:`cquin.disclosure`): a suppressed count is left
out and marked with the standard data-absent-reason extension (``masked``); a
score is given only when both its counts are published, and is computed from
them.  Staff counts are never altered.

Validation uses the ``fhir.resources`` R4B models (FHIR 4.3; MeasureReport is
the same resource in R4 4.0.1 and R4B).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from cquin.disclosure import applies_to, publish, published_fraction
from cquin.exceptions import CquinError
from cquin.report.data import ReportData, load_report_data

MEASURE_BASE = "https://cquin.example/fhir/Measure"
CODE_SYSTEM_BASE = "https://cquin.example/fhir/CodeSystem"
POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
STRATIFIED_DIMENSIONS = ("sex", "age_band", "ltc_count", "activation")  # each patient in exactly one value


def _concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def _population(code: str, n: int | None, control: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": _concept(POPULATION_SYSTEM, code)}
    p = publish(n, control=control)
    if p.value is None:
        entry["_count"] = {"extension": [{"url": DATA_ABSENT, "valueCode": "masked"}]}
    else:
        entry["count"] = p.value
    return entry


def _score(num: int | None, den: int | None, control: bool) -> dict[str, Any] | None:
    frac = published_fraction(num, den, control=control)
    if frac is None:
        return None
    value = (Decimal(frac.numerator) / Decimal(frac.denominator)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)
    return {"value": value, "unit": "proportion", "system": "http://unitsofmeasure.org", "code": "1"}


def _populations(num: int | None, den: int | None, control: bool) -> list[dict[str, Any]]:
    return [
        _population("initial-population", den, control),
        _population("denominator", den, control),
        _population("numerator", num, control),
    ]


def measure_report(d: ReportData, *, control: bool = False) -> dict[str, Any]:
    """The MeasureReport for one stored run, as a JSON-ready dict."""
    rs = d.ruleset
    years = [c["year"] for c in d.components]
    starts = [rs["periods"][y]["from"] for y in years]
    ends = [rs["periods"][y]["to"] for y in years]
    end = max(ends)
    if d.run.get("as_of") and d.run["as_of"] < end:
        end = d.run["as_of"]
    specs = {c["id"]: c for c in rs["components"]}
    groups = []
    for c in d.components:
        spec = specs.get(c["component"], {})
        code = _concept(
            f"{CODE_SYSTEM_BASE}/{d.run['ruleset_id']}-components",
            c["component"],
            c["name"],
            f"{c['name']}: {c['band']}",
        )
        group: dict[str, Any] = {"id": _fhir_id(c["component"]), "code": code}
        here = applies_to(c.get("entity"), control)  # staff counts are never altered
        if c["numerator"] is not None:
            group["population"] = _populations(c["numerator"], c["denominator"], here)
            score = _score(c["numerator"], c["denominator"], here)
            if score is not None:
                group["measureScore"] = score
            group["stratifier"] = _stratifiers(d, c, spec, here)
        else:
            group["stratifier"] = [_year_stratifier(d, c, None, None, here)]
        groups.append(group)
    finished = d.run.get("finished_at") or d.run["started_at"]
    return {
        "resourceType": "MeasureReport",
        "id": _fhir_id(d.run_id),
        "status": "complete",
        "type": "summary",
        "measure": f"{MEASURE_BASE}/{d.run['ruleset_id']}|{d.run['ruleset_version']}",
        "date": finished,
        "period": {"start": min(starts), "end": end},
        "identifier": [{"system": "https://cquin.example/fhir/run-id", "value": d.run_id}],
        "improvementNotation": _concept(
            "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
            "increase",
            "Increased score indicates improvement",
        ),
        **({"reporter": {"display": d.provider_name}} if d.provider_name else {}),
        "group": groups,
    }


def _year_stratifier(d: ReportData, c: dict[str, Any], num: int | None, den: int | None, control: bool) -> dict[str, Any]:
    label = d.ruleset["periods"][c["year"]]["label"]
    stratum: dict[str, Any] = {
        "value": {
            "coding": [{"system": f"{CODE_SYSTEM_BASE}/{d.run['ruleset_id']}-periods", "code": c["year"], "display": label}],
            "text": label,
        }
    }
    if num is not None:
        stratum["population"] = _populations(num, den, control)
        score = _score(num, den, control)
        if score is not None:
            stratum["measureScore"] = score
    return {"code": [{"text": "year"}], "stratum": [stratum]}


def _stratifiers(d: ReportData, c: dict[str, Any], spec: dict[str, Any], control: bool) -> list[dict[str, Any]]:
    out = [_year_stratifier(d, c, c["numerator"], c["denominator"], control)]
    b = d.breakdowns
    den_pop, num_pop = spec.get("denominator"), spec.get("numerator")
    if not b or den_pop not in b.get("populations", []) or num_pop not in b.get("populations", []):
        return out
    for dim_id in STRATIFIED_DIMENSIONS:
        dim = b["dimensions"].get(dim_id)
        if dim is None:
            continue
        strata = []
        for v in dim["values"]:
            den = dim["counts"][den_pop].get(v["id"], 0)
            num = dim["counts"][num_pop].get(v["id"], 0)
            if den == 0:
                continue
            stratum: dict[str, Any] = {"value": {"text": v["label"]}, "population": _populations(num, den, control)}
            score = _score(num, den, control)
            if score is not None:
                stratum["measureScore"] = score
            strata.append(stratum)
        if strata:
            out.append({"code": [{"text": dim_id}], "stratum": strata})
    return out


def _fhir_id(text: str) -> str:
    """A FHIR id ([A-Za-z0-9-.]{1,64}) from a run or component id."""
    out = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-.") else "-" for ch in text)
    return out[:64] or "x"


# Required bindings the models do not check (FHIR R4 MeasureReport.status and .type value sets).
_REQUIRED_CODES = {
    "status": {"complete", "pending", "error"},
    "type": {"individual", "subject-list", "summary", "data-collection"},
}


def validate(resource: dict[str, Any]) -> None:
    """Check ``resource`` against the FHIR MeasureReport model and its required codes; raise with every problem found."""
    from fhir.resources.R4B.measurereport import MeasureReport
    from pydantic import ValidationError

    problems = [
        f"{key}: {resource.get(key)!r} is not one of {', '.join(sorted(codes))}"
        for key, codes in _REQUIRED_CODES.items()
        if resource.get(key) not in codes
    ]
    try:
        MeasureReport.model_validate(json.loads(json.dumps(resource, default=_json_default)))
    except ValidationError as exc:
        problems.append(str(exc))
    if problems:
        raise CquinError("the MeasureReport does not validate against the FHIR schema:\n" + "\n".join(problems))


def write_measure_report(store: Path, run_id: str, out: Path, *, disclosure_control: bool = False) -> dict[str, Any]:
    """Write run ``run_id`` as a validated FHIR MeasureReport JSON file; returns the resource."""
    from cquin.outfile import check_out, write_text

    check_out(out, "--fhir-measure-report")
    resource = measure_report(load_report_data(store, run_id), control=disclosure_control)
    validate(resource)
    write_text(out, json.dumps(resource, indent=2, default=_json_default) + "\n")
    return resource


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)  # FHIR decimals are JSON numbers; four places survive a float exactly enough to print
    if isinstance(o, dt.date):
        return o.isoformat()
    raise TypeError(type(o).__name__)
