"""A ruleset as an HL7 FHIR R4 ``Measure`` and the ``CodeSystem`` of its codes, ready to load onto a FHIR server.

Everything here is read from the ruleset (its id, version, title, periods,
populations, components, bands, citations and its ``fhir`` section): nothing
about a particular indicator is written in Python.

- The **canonical base** is the base URL of the FHIR server the Measure lives on
  (the ruleset's ``fhir.canonical_base``, or ``--canonical-base``), so the
  Measure's canonical URL ``{base}/Measure/{id}`` is also where a server serves
  it (FHIR R4 §2.38 "Canonical URLs"; R4 Measure.url).  Reserved example domains
  (RFC 2606, RFC 6761) are refused: they can never resolve.
- One ``group`` per component, coded from the CodeSystem: its populations
  (``initial-population``, ``denominator``, ``numerator`` from the
  measure-population code system) each with a criteria ``Expression`` naming the
  ruleset population and its rule; its stratifiers (the year, then each
  patient dimension that partitions a population).  An attainment component (a
  level reached, no counts) has a group with no populations.
- The CodeSystem (``{base}/CodeSystem/{id}``, same version) holds the
  components, periods, stratifiers and stratum values, grouped by kind.

:func:`measure_bundle` returns both in a FHIR ``transaction`` Bundle of ``PUT``
entries: ``POST`` it to the server's base and both are created or updated at
their canonical addresses.

Long because a FHIR Measure has many parts (groups, populations, stratifiers, scoring, the CodeSystem), each a short function.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cquin.engine.bands import HUNDRED, band_from_spec, to_fraction
from cquin.engine.breakdowns import dimension_catalogue
from cquin.exceptions import CquinError, UserError

POPULATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-population"
SCORING_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-scoring"
TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-type"
IMPROVEMENT_SYSTEM = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
ISO_3166 = "urn:iso:std:iso:3166"
XHTML = "http://www.w3.org/1999/xhtml"
# A population's criteria names the ruleset population it is (a CQL-style identifier, as Measures name the
# definitions of their logic Library); the Library is the ruleset itself (see :func:`library`).  The R4 JSON
# schema allows only text/cql, text/fhirpath and application/x-fhir-query here.
RULE_LANGUAGE = "text/cql"
YEAR_STRATIFIER = "year"

# Reserved for documentation and testing, never resolvable: RFC 2606 §2-3 and RFC 6761 §6.
_RESERVED_TLDS = {"example", "test", "invalid", "localhost"}
_RESERVED_DOMAINS = {"example.com", "example.net", "example.org"}

_STATUS = {"published": "active", "draft": "draft", "retired": "retired"}


def fhir_id(text: str) -> str:
    """A FHIR id ([A-Za-z0-9-.]{1,64}) from a ruleset, run or component id."""
    out = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-.") else "-" for ch in text)
    return out[:64] or "x"


def check_base(base: str) -> str:
    """The canonical base without a trailing slash; a clear error when it cannot serve as one."""
    base = base.strip().rstrip("/")
    parts = urlsplit(base)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or parts.query or parts.fragment or "|" in base:
        raise UserError(
            f"canonical base {base!r}: expected the base URL of a FHIR server, e.g. https://fhir.my-icb.nhs.uk/R4 "
            "(http or https, no query, '#' or '|')"
        )
    labels = host.split(".")
    if labels[-1] in _RESERVED_TLDS or ".".join(labels[-2:]) in _RESERVED_DOMAINS:
        raise UserError(
            f"canonical base {base!r}: {host} is reserved for examples (RFC 2606) and can never resolve; "
            "give the FHIR server the Measure is published on with --canonical-base"
        )
    return base


class Canonical:
    """The canonical URLs of one ruleset's FHIR resources under one base."""

    def __init__(self, doc: dict[str, Any], base: str | None = None) -> None:
        given = base or (doc.get("fhir") or {}).get("canonical_base")
        if not given:
            raise UserError(
                f"ruleset {doc['id']} names no FHIR canonical base (fhir.canonical_base): give one with --canonical-base URL"
            )
        self.base = check_base(given)
        self.id = fhir_id(doc["id"])
        self.version = str(doc["version"])

    @property
    def measure(self) -> str:
        return f"{self.base}/Measure/{self.id}"

    @property
    def measure_reference(self) -> str:
        """A version-specific canonical reference to the Measure (``url|version``), as MeasureReport.measure."""
        return f"{self.measure}|{self.version}"

    @property
    def code_system(self) -> str:
        return f"{self.base}/CodeSystem/{self.id}"

    @property
    def library(self) -> str:
        return f"{self.base}/Library/{self.id}"

    @property
    def run_identifier_system(self) -> str:
        return f"{self.base}/Id/run-id"


def concept(system: str, code: str, display: str | None = None, text: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: dict[str, Any] = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def stratum_code(dimension: str, value: str) -> str:
    """The CodeSystem code of one stratum value: ``{dimension}.{value}``, e.g. ``sex.female``."""
    return f"{dimension}.{value}"


def narrative(inner_html: str) -> dict[str, Any]:
    """A generated narrative (R4 Narrative; dom-6 asks every resource for one) from already-escaped XHTML."""
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{inner_html}</div>'}


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def stratifiers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The Measure's stratifiers: the year, then each dimension that partitions a population (id, label, values)."""
    years = [(pid, p["label"]) for pid, p in doc["periods"].items()]
    out = [{"id": YEAR_STRATIFIER, "label": "Year", "values": years, "partition": True}]
    return out + [d for d in dimension_catalogue(doc) if d["partition"]]


def band_text(spec: dict[str, Any]) -> list[str]:
    """A component's bands in words, e.g. 'above 50%: pays 100%' (or its attainment levels)."""
    if "attainment" in spec:
        return [f"{lv['label']}: pays {_pct(to_fraction(lv['pays_percent']))}%" for lv in spec["attainment"]]
    on_count = spec.get("bands_on") == "numerator_count"
    unit = "" if on_count else "%"
    out = []
    for b in spec["bands"]:
        band = band_from_spec(b, upper_limit=None if on_count else HUNDRED)
        words = band.describe(unit) + (" (numerator count)" if on_count else "")
        out.append(f"{words}: pays {_pct(band.pays * HUNDRED)}%" + (f" ({b['label']})" if b.get("label") else ""))
    return out


def _pct(value: Fraction) -> str:
    return f"{float(value):g}"


def _citation(node: dict[str, Any], doc: dict[str, Any]) -> str:
    c = node.get("citation") or {}
    if not c:
        return ""
    title = (doc.get("sources") or {}).get(c.get("source"), {}).get("title", c.get("source", ""))
    return f"{title}, {c.get('section', '')}: \u201c{c.get('quote', '')}\u201d"


def _population(doc: dict[str, Any], code: str, pid: str) -> dict[str, Any]:
    pop = doc["populations"][pid]
    why = (pop.get("interpretation") or {}).get("decision")
    return {
        "code": concept(POPULATION_SYSTEM, code),
        "description": f"{pop['label']} (ruleset population {pid})" + (f". {why}" if why else ""),
        "criteria": {"name": fhir_id(pid), "language": RULE_LANGUAGE, "expression": pid, "description": pop["label"]},
    }


def _group(doc: dict[str, Any], c: Canonical, spec: dict[str, Any], strat: list[dict[str, Any]]) -> dict[str, Any]:
    period = doc["periods"][spec["year"]]
    lines = [
        f"{spec['name']}: {_pct(to_fraction(spec['share_percent']))}% of the {period['label']} value.",
    ]
    if "denominator" in spec:
        lines.append(
            f"Numerator: {doc['populations'][spec['numerator']]['label']}; "
            f"denominator: {doc['populations'][spec['denominator']]['label']}."
        )
    lines.append("Pays: " + "; ".join(band_text(spec)) + ".")
    if spec.get("interpretation"):
        lines.append(f"Interpretation: {spec['interpretation']['decision']}")
    if spec.get("citation"):
        lines.append(f"Source: {_citation(spec, doc)}")
    group: dict[str, Any] = {
        "id": fhir_id(spec["id"]),
        "code": concept(c.code_system, spec["id"], spec["name"]),
        "description": "\n\n".join(lines),
    }
    if "denominator" in spec:
        entity = doc["populations"][spec["denominator"]]["entity"]
        group["population"] = [
            _population(doc, "initial-population", spec["denominator"]),
            _population(doc, "denominator", spec["denominator"]),
            _population(doc, "numerator", spec["numerator"]),
        ]
        group["stratifier"] = [
            {
                "code": concept(c.code_system, s["id"], s["label"]),
                "description": f"{s['label']}: " + ", ".join(label for _, label in s["values"]),
                "criteria": {"name": fhir_id(s["id"]), "language": RULE_LANGUAGE, "expression": s["id"]},
            }
            for s in strat
            if s["id"] == YEAR_STRATIFIER or entity == "patient"
        ]
    return group


def measure(doc: dict[str, Any], *, base: str | None = None) -> dict[str, Any]:
    """The ruleset as a FHIR R4 Measure (JSON-ready dict)."""
    c = Canonical(doc, base)
    fhir = doc.get("fhir") or {}
    strat = stratifiers(doc)
    groups = [_group(doc, c, spec, strat) for spec in doc["components"]]
    ind = doc.get("indicator") or {}
    guidance = [
        f"- **{where}**: {node['interpretation']['decision']} ({node['interpretation'].get('why', '')})"
        for where, node in _interpreted(doc)
    ]
    resource: dict[str, Any] = {
        "resourceType": "Measure",
        "id": c.id,
        "text": narrative(_measure_narrative(doc, groups)),
        "url": c.measure,
        "identifier": [{"system": f"{c.base}/Id/ruleset", "value": f"{doc['id']}@{doc['version']}"}],
        "version": c.version,
        "name": _computable_name(doc["id"]),
        "title": doc["title"],
        "status": _STATUS.get(doc["status"], "unknown"),
        "experimental": doc["status"] != "published",
        **({"publisher": fhir["publisher"]} if fhir.get("publisher") else {}),
        "description": _description(doc, ind),
        **({"jurisdiction": [concept(ISO_3166, fhir["jurisdiction"])]} if fhir.get("jurisdiction") else {}),
        "effectivePeriod": {"start": str(doc["effective"]["from"]), "end": str(doc["effective"]["to"])},
        "relatedArtifact": [
            {"type": "documentation", "label": sid, "display": src.get("title", sid)}
            for sid, src in (doc.get("sources") or {}).items()
        ],
        "scoring": concept(SCORING_SYSTEM, "proportion", "Proportion"),
        "type": [concept(TYPE_SYSTEM, "process", "Process")],
        "improvementNotation": concept(IMPROVEMENT_SYSTEM, "increase", "Increased score indicates improvement"),
        "library": [c.library],
        "guidance": "How cquin reads the policy where it is silent or ambiguous:\n\n" + "\n".join(guidance),
        "group": groups,
    }
    return resource


def _description(doc: dict[str, Any], ind: dict[str, Any]) -> str:
    parts = [doc["title"] + "."]
    if ind.get("weighting_percent") is not None:
        parts.append(f"Worth {ind['weighting_percent']}% of the contract value in each year.")
    years = {s["year"] for s in doc["components"]}
    for pid in [p for p in doc["periods"] if p in years]:
        comps = [s for s in doc["components"] if s["year"] == pid]
        parts.append(
            f"{doc['periods'][pid]['label']}: "
            + ", ".join(f"{s['name']} ({_pct(to_fraction(s['share_percent']))}%)" for s in comps)
            + "."
        )
    parts.append("Each group is one component; a component pays a share of the year's value by the band its proportion reaches.")
    return " ".join(parts)


def _interpreted(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for key in ("indicator", "zero_denominator", "money", "fhir"):
        if isinstance(doc.get(key), dict) and doc[key].get("interpretation"):
            out.append((key, doc[key]))
    for pid, pop in doc["populations"].items():
        if pop.get("interpretation"):
            out.append((f"population {pid}", pop))
    for spec in doc["components"]:
        if spec.get("interpretation"):
            out.append((f"component {spec['id']}", spec))
    return out


def _computable_name(rid: str) -> str:
    """A computable name (inv-0: ``[A-Z]([A-Za-z0-9_]){0,254}``) from the ruleset id."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", rid)
    name = name[:1].upper() + name[1:]
    return name if name[:1].isalpha() else "M" + name


def _measure_narrative(doc: dict[str, Any], groups: list[dict[str, Any]]) -> str:
    rows = []
    specs = {s["id"]: s for s in doc["components"]}
    for g in groups:
        spec = specs[g["code"]["coding"][0]["code"]]
        what = (
            f"{e(doc['populations'][spec['numerator']]['label'])} / {e(doc['populations'][spec['denominator']]['label'])}"
            if "denominator" in spec
            else "level reached"
        )
        rows.append(
            f"<tr><td>{e(spec['id'])}</td><td>{e(doc['periods'][spec['year']]['label'])}</td><td>{e(spec['name'])}</td>"
            f"<td>{e(_pct(to_fraction(spec['share_percent'])))}%</td><td>{what}</td><td>{e('; '.join(band_text(spec)))}</td></tr>"
        )
    return (
        f"<h2>{e(doc['title'])}</h2><p>Version {e(doc['version'])}, effective {e(doc['effective']['from'])} to "
        f"{e(doc['effective']['to'])}.</p><table><thead><tr><th>component</th><th>year</th><th>name</th><th>share</th>"
        f"<th>measured as</th><th>pays</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def code_system(doc: dict[str, Any], *, base: str | None = None) -> dict[str, Any]:
    """The CodeSystem of the Measure's own codes: components, periods, stratifiers and stratum values."""
    c = Canonical(doc, base)

    def node(
        code: str, display: str, definition: str | None = None, children: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"code": code, "display": display}
        if definition:
            out["definition"] = definition
        if children:
            out["concept"] = children
        return out

    components = [node(s["id"], s["name"], " ".join(band_text(s))) for s in doc["components"]]
    periods = [node(pid, p["label"], f"{p['from']} to {p['to']} inclusive") for pid, p in doc["periods"].items()]
    strat = [
        node(
            s["id"],
            s["label"],
            None,
            [node(stratum_code(s["id"], v), label) for v, label in s["values"] if s["id"] != YEAR_STRATIFIER],
        )
        for s in stratifiers(doc)
    ]
    concepts = [
        node("component", "Component", "A component of the indicator: one group of the Measure.", components),
        node("period", "Period", "A period (year) of the indicator.", periods),
        node("stratifier", "Stratifier", "A way the Measure's populations are stratified; its values are stratum codes.", strat),
    ]
    count = sum(1 + len(k.get("concept", [])) + sum(len(g.get("concept", [])) for g in k.get("concept", [])) for k in concepts)
    rows = "".join(
        f"<tr><td>{e(k['code'])}</td><td>{e(g['code'])}</td><td>{e(g['display'])}</td></tr>"
        for k in concepts
        for g in k.get("concept", [])
    )
    return {
        "resourceType": "CodeSystem",
        "id": c.id,
        "text": narrative(
            f"<p>Codes of the Measure {e(c.measure)} version {e(c.version)}.</p>"
            f"<table><thead><tr><th>kind</th><th>code</th><th>display</th></tr></thead><tbody>{rows}</tbody></table>"
        ),
        "url": c.code_system,
        "version": c.version,
        "name": _computable_name(doc["id"]) + "_codes",
        "title": f"{doc['title']}: codes",
        "status": _STATUS.get(doc["status"], "unknown"),
        "experimental": doc["status"] != "published",
        **({"publisher": (doc.get("fhir") or {})["publisher"]} if (doc.get("fhir") or {}).get("publisher") else {}),
        "description": f"Components, periods, stratifiers and stratum values of {doc['title']}.",
        "caseSensitive": True,
        "hierarchyMeaning": "grouped-by",
        "content": "complete",
        "count": count,
        "concept": concepts,
    }


def library(doc: dict[str, Any], *, base: str | None = None) -> dict[str, Any]:
    """The Measure's logic: the ruleset itself (its canonical JSON) as a FHIR Library attachment."""
    import base64
    import hashlib

    from cquin.engine.ruleset import canonical_json

    c = Canonical(doc, base)
    data = canonical_json(doc).encode("utf-8")
    return {
        "resourceType": "Library",
        "id": c.id,
        "text": narrative(
            f"<p>The ruleset {e(doc['id'])} version {e(doc['version'])} ({e(doc['title'])}), as cquin evaluates it: "
            "populations as rule trees, components, bands, citations and interpretations.</p>"
        ),
        "url": c.library,
        "version": c.version,
        "name": _computable_name(doc["id"]) + "_ruleset",
        "title": f"{doc['title']}: ruleset",
        "status": _STATUS.get(doc["status"], "unknown"),
        "experimental": doc["status"] != "published",
        "type": concept("http://terminology.hl7.org/CodeSystem/library-type", "logic-library", "Logic Library"),
        "description": "The cquin ruleset the Measure's criteria name: each population's criteria is the id of a ruleset population.",
        "content": [
            {
                "contentType": "application/json",
                "data": base64.b64encode(data).decode("ascii"),
                "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),  # noqa: S324 - FHIR Attachment.hash is SHA-1
                "title": f"{doc['id']}-{doc['version']}.json",
            }
        ],
    }


def measure_bundle(doc: dict[str, Any], *, base: str | None = None) -> dict[str, Any]:
    """The Measure, its CodeSystem and Library in a transaction Bundle: POST it to the server base to load all three."""
    resources = [measure(doc, base=base), code_system(doc, base=base), library(doc, base=base)]
    c = Canonical(doc, base)
    return {
        "resourceType": "Bundle",
        "id": f"{c.id}-{fhir_id(c.version)}",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": r["url"],
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


# Required bindings the models do not check (FHIR R4 value sets with a "required" binding).
_REQUIRED_CODES: dict[str, dict[str, set[str]]] = {
    "MeasureReport": {
        "status": {"complete", "pending", "error"},
        "type": {"individual", "subject-list", "summary", "data-collection"},
    },
    "Measure": {"status": {"draft", "active", "retired", "unknown"}},
    "CodeSystem": {
        "status": {"draft", "active", "retired", "unknown"},
        "content": {"not-present", "example", "fragment", "complete", "supplement"},
    },
    "Library": {"status": {"draft", "active", "retired", "unknown"}},
    "Bundle": {
        "type": {
            "document",
            "message",
            "transaction",
            "transaction-response",
            "batch",
            "batch-response",
            "history",
            "searchset",
            "collection",
        }
    },
}


def validate_resource(resource: dict[str, Any], expected: str | None = None) -> None:
    """Check a resource (and a Bundle's entries) against the FHIR models and required codes; raise with every problem.

    Uses the ``fhir.resources`` R4B models: Measure, MeasureReport, CodeSystem and Bundle are the same in
    R4 (4.0.1) and R4B (4.3) for every element written here.
    """
    import importlib

    from pydantic import ValidationError

    rtype = resource.get("resourceType")
    problems = []
    if expected is not None and rtype != expected:
        problems.append(f"resourceType: {rtype!r}, expected {expected!r}")
    codes = _REQUIRED_CODES.get(str(rtype), {})
    problems += [
        f"{key}: {resource.get(key)!r} is not one of {', '.join(sorted(allowed))}"
        for key, allowed in codes.items()
        if resource.get(key) not in allowed
    ]
    try:
        module = importlib.import_module(f"fhir.resources.R4B.{str(rtype).lower()}")
        getattr(module, str(rtype)).model_validate(json.loads(json.dumps(resource, default=json_default)))
    except (ModuleNotFoundError, AttributeError):
        problems.append(f"resourceType {rtype!r} is not a FHIR resource")
    except ValidationError as exc:
        problems.append(str(exc))
    if rtype == "Bundle":
        for i, entry in enumerate(resource.get("entry") or []):
            try:
                validate_resource(entry.get("resource") or {})
            except CquinError as exc:
                problems.append(f"entry {i}: {exc}")
    if problems:
        raise CquinError(f"the {rtype} does not validate against the FHIR schema:\n" + "\n".join(problems))


def json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)  # FHIR decimals are JSON numbers; four places survive a float exactly enough to print
    if isinstance(o, dt.date):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def write_json(out: Path, resource: dict[str, Any]) -> None:
    out.write_text(json.dumps(resource, indent=2, ensure_ascii=False, default=json_default) + "\n", encoding="utf-8")


def write_measure(doc: dict[str, Any], out: Path, *, base: str | None = None) -> dict[str, Any]:
    """Write the ruleset's Measure and CodeSystem as a validated transaction Bundle; returns the Bundle."""
    bundle = measure_bundle(doc, base=base)
    validate_resource(bundle, "Bundle")
    write_json(out, bundle)
    return bundle
