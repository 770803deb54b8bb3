"""A stored run as an HL7 FHIR R4 MeasureReport (type summary), validated before it is written.

One ``group`` per component: its populations (initial-population, denominator,
numerator) with their counts and the ``measureScore`` (numerator/denominator),
and stratifiers: the component's year, and, when the run kept its breakdowns,
the patient dimensions that partition a population (sex, age band, number of
LTC categories, activation level).  Attainment components (no counts) carry
only their code and the level reached, in ``code.text``.

``measure`` is the version-specific canonical reference (``url|version``) of the
ruleset's own FHIR Measure (:mod:`cquin.measure`, ``cquin export --fhir-measure``),
under the same canonical base; groups, stratifiers and stratum values are coded
from that Measure's CodeSystem.  The reporter is the provider, identified by its
ODS code (``https://fhir.nhs.uk/Id/ods-organization-code``) from provider.csv.
The initial population of a component is its denominator population: the
ruleset defines no wider one.  A generated narrative summarises the report.

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

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from cquin.disclosure import RULE_TEXT, applies_to, publish, published_fraction
from cquin.measure import (
    POPULATION_SYSTEM,
    YEAR_STRATIFIER,
    Canonical,
    concept,
    e,
    fhir_id,
    narrative,
    stratifiers,
    stratum_code,
    validate_resource,
    write_json,
)
from cquin.report.data import ReportData, load_report_data

DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"  # NHS England's identifier system for ODS codes
_concept = concept
_fhir_id = fhir_id


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


def measure_report(d: ReportData, *, control: bool = False, base: str | None = None) -> dict[str, Any]:
    """The MeasureReport for one stored run, as a JSON-ready dict (``base``: the canonical base, else the ruleset's)."""
    rs = d.ruleset
    canon = Canonical(rs, base)
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
        code = _concept(canon.code_system, c["component"], c["name"], f"{c['name']}: {c['band']}")
        group: dict[str, Any] = {"id": _fhir_id(c["component"]), "code": code}
        here = applies_to(c.get("entity"), control)  # staff counts are never altered
        if c["numerator"] is not None:
            group["population"] = _populations(c["numerator"], c["denominator"], here)
            score = _score(c["numerator"], c["denominator"], here)
            if score is not None:
                group["measureScore"] = score
            group["stratifier"] = _stratifiers(d, canon, c, spec, here)
        else:
            group["stratifier"] = [_year_stratifier(d, canon, c, None, None, here)]
        groups.append(group)
    finished = d.run.get("finished_at") or d.run["started_at"]
    period = {"start": min(starts), "end": end}
    return {
        "resourceType": "MeasureReport",
        "id": _fhir_id(d.run_id),
        "text": narrative(_narrative(d, groups, period, control)),
        "status": "complete",
        "type": "summary",
        "measure": canon.measure_reference,
        "date": finished,
        "period": period,
        "identifier": [{"system": canon.run_identifier_system, "value": d.run_id}],
        "improvementNotation": _concept(
            "http://terminology.hl7.org/CodeSystem/measure-improvement-notation",
            "increase",
            "Increased score indicates improvement",
        ),
        **_reporter(d),
        "group": groups,
    }


def _reporter(d: ReportData) -> dict[str, Any]:
    """The provider as the reporter: its ODS code as a logical reference, with its name."""
    p = (d.breakdowns or {}).get("provider") or {}
    ref: dict[str, Any] = {}
    if p.get("code"):
        ref["identifier"] = {"system": ODS_SYSTEM, "value": p["code"]}
    if p.get("name"):
        ref["display"] = p["name"]
    if ref:
        ref["type"] = "Organization"
    return {"reporter": ref} if ref else {}


def _narrative(d: ReportData, groups: list[dict[str, Any]], period: dict[str, str], control: bool) -> str:
    """A human-readable summary: who, when, and each component's counts, score and band."""
    rows = []
    by_id = {g["id"]: g for g in groups}
    for c in d.components:
        g = by_id[_fhir_id(c["component"])]
        counts = {p["code"]["coding"][0]["code"]: p.get("count") for p in g.get("population", [])}
        score = g.get("measureScore", {}).get("value")
        rows.append(
            f"<tr><td>{e(c['component'])}</td><td>{e(c['name'])}</td><td>{e(_shown(counts, 'numerator'))}</td>"
            f"<td>{e(_shown(counts, 'denominator'))}</td><td>{'' if score is None else e(f'{float(score) * 100:.2f}%')}</td>"
            f"<td>{e(c['band'])}</td></tr>"
        )
    who = d.provider_name or "the provider"
    code = ((d.breakdowns or {}).get("provider") or {}).get("code")
    sdc = (
        f"Published: counts of patients under disclosure control ({RULE_TEXT}); staff counts exact."
        if control
        else "Exact counts (the figures the bands were decided on)."
    )
    return (
        f"<p>{e(d.ruleset.get('title', d.run['ruleset_id']))}: {e(who)}{f' (ODS {e(code)})' if code else ''}, "
        f"{e(period['start'])} to {e(period['end'])}, run {e(d.run_id)}. {e(sdc)}</p>"
        "<table><thead><tr><th>component</th><th>name</th><th>numerator</th><th>denominator</th><th>score</th>"
        f"<th>band reached</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _shown(counts: dict[str, int | None], key: str) -> str:
    if key not in counts:
        return ""
    n = counts[key]
    return "masked" if n is None else f"{n:,}"


def _year_stratifier(
    d: ReportData, canon: Canonical, c: dict[str, Any], num: int | None, den: int | None, control: bool
) -> dict[str, Any]:
    label = d.ruleset["periods"][c["year"]]["label"]
    stratum: dict[str, Any] = {"value": _concept(canon.code_system, c["year"], label, label)}
    if num is not None:
        stratum["population"] = _populations(num, den, control)
        score = _score(num, den, control)
        if score is not None:
            stratum["measureScore"] = score
    return {"code": [_concept(canon.code_system, YEAR_STRATIFIER, "Year")], "stratum": [stratum]}


def _stratifiers(d: ReportData, canon: Canonical, c: dict[str, Any], spec: dict[str, Any], control: bool) -> list[dict[str, Any]]:
    out = [_year_stratifier(d, canon, c, c["numerator"], c["denominator"], control)]
    b = d.breakdowns
    den_pop, num_pop = spec.get("denominator"), spec.get("numerator")
    if not b or den_pop not in b.get("populations", []) or num_pop not in b.get("populations", []):
        return out
    for s in stratifiers(d.ruleset):
        dim = b["dimensions"].get(s["id"])
        if dim is None:
            continue
        strata = []
        for v in dim["values"]:
            den = dim["counts"][den_pop].get(v["id"], 0)
            num = dim["counts"][num_pop].get(v["id"], 0)
            if den == 0:
                continue
            stratum: dict[str, Any] = {
                "value": _concept(canon.code_system, stratum_code(s["id"], v["id"]), v["label"], v["label"]),
                "population": _populations(num, den, control),
            }
            score = _score(num, den, control)
            if score is not None:
                stratum["measureScore"] = score
            strata.append(stratum)
        if strata:
            out.append({"code": [_concept(canon.code_system, s["id"], s["label"])], "stratum": strata})
    return out


def validate(resource: dict[str, Any]) -> None:
    """Check a MeasureReport against the FHIR model and its required codes; raise with every problem found."""
    validate_resource(resource, "MeasureReport")


def write_measure_report(
    store: Path, run_id: str, out: Path, *, disclosure_control: bool = False, base: str | None = None
) -> dict[str, Any]:
    """Write run ``run_id`` as a validated FHIR MeasureReport JSON file; returns the resource."""
    from cquin.outfile import check_out

    check_out(out, "--fhir-measure-report")
    resource = measure_report(load_report_data(store, run_id), control=disclosure_control, base=base)
    validate(resource)
    write_json(out, resource)
    return resource
