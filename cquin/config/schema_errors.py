"""JSON Schema errors in plain English, at the place in the YAML they concern; and the canonical JSON of a document.

Shared by the ruleset checker and every YAML configuration cquin reads (data-quality limits, mappings), so
they sit below both: a ruleset's problems and a mapping's read the same way.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import jsonschema


def canonical_json(data: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            return str(o)
        raise TypeError(type(o).__name__)

    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=default, ensure_ascii=False)


_FRIENDLY_PATTERNS = {
    r"^\d{4}-\d{2}-\d{2}$": "a date written YYYY-MM-DD",
    "start|end": "a date written YYYY-MM-DD, or a reference such as year1.end or year1.Q2.end",
    r"(0|[1-9]\d*)\.": "a semantic version such as 1.0.0",
    r"^[a-z][a-z0-9_]*$": "an identifier of lower-case letters, digits and underscores",
    r"\.[a-z][a-z0-9_]*$": "a component id such as y1.plan",
}


def friendly(err: jsonschema.ValidationError) -> list[tuple[tuple[str | int, ...], str]]:
    """Turn a JSON Schema error into plain-English messages at the right place."""
    path = tuple(err.absolute_path)
    where = ".".join(str(p) for p in path) or "the ruleset"
    v = err.validator
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", err.message)
        name = missing[0] if missing else err.message
        if name == "citation":
            return [(path, f"{where}: this rule has no citation (add citation: {{source, section, quote}})")]
        return [(path, f"{where}: missing {name!r}")]
    if v == "additionalProperties":
        extra = re.findall(r"'([^']+)'", err.message.split("(")[-1])
        allowed = ", ".join(sorted((err.schema.get("properties") or {}).keys()))
        out = []
        for key in extra or [err.message]:
            out.append(
                (path + (key, "__key__"), f"{where}: unknown key {key!r}" + (f" (expected one of: {allowed})" if allowed else ""))
            )
        return out
    if v == "pattern":
        expected = next(
            (text for pat, text in _FRIENDLY_PATTERNS.items() if pat in str(err.validator_value)),
            f"text matching {err.validator_value}",
        )
        return [(path, f"{where}: {err.instance!r} is not {expected}")]
    if v == "type":
        shown = canonical_json(err.instance) if not isinstance(err.instance, str) else repr(err.instance)
        wanted = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        if isinstance(err.instance, str) and "number" in wanted and re.fullmatch(r"[-+]?[0-9]+[eE][-+]?[0-9]+", err.instance):
            # YAML 1.1 (which PyYAML reads) takes 1e308 as text: a number with an exponent needs a decimal point.
            return [
                (
                    path,
                    f"{where}: {err.instance} is read as text, not a number (in YAML a number with an exponent needs "
                    f"a decimal point, such as 1.0e+2; or write the digits in full)",
                )
            ]
        return [(path, f"{where}: {shown} should be {_a(err.validator_value)}")]
    if v == "enum":
        return [(path, f"{where}: {err.instance!r} is not one of: {', '.join(map(str, err.validator_value))}")]
    if v == "const":
        return [(path, f"{where}: must be {err.validator_value!r}")]
    if v in ("minimum", "maximum"):
        return [(path, f"{where}: {err.instance} is {'below' if v == 'minimum' else 'above'} the allowed {err.validator_value}")]
    if v in ("maxProperties", "minProperties") and "all_of" in json.dumps(err.schema.get("properties", {})):
        return [
            (path, f"{where}: a rule must have exactly one test (such as population, all_of, served); found {len(err.instance)}")
        ]
    if v == "oneOf" and isinstance(err.instance, dict) and "share_percent" in (err.schema.get("properties") or {}):
        return [
            (
                path,
                f"{where}: a component needs either 'attainment' levels, or a 'numerator', a 'denominator' and 'bands', not both",
            )
        ]
    if v == "not" and isinstance(err.instance, dict) and "pays_percent" in err.instance:
        return [(path, f"{where}: a band has one lower edge (at_least or above) and one upper edge (at_most or below)")]
    if v == "minItems":
        return [(path, f"{where}: needs at least {err.validator_value} item(s)")]
    return [(path, f"{where}: {err.message}")]


def _a(t: Any) -> str:
    names = {
        "string": "text",
        "number": "a number",
        "integer": "a whole number",
        "object": "a mapping",
        "array": "a list",
        "boolean": "true or false",
    }
    if isinstance(t, list):
        return " or ".join(names.get(x) or str(x) for x in t)
    return names.get(t, str(t))
