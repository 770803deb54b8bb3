"""Load a YAML settings file (a mapping, data-quality limits) safely and check it against its JSON Schema.

The same located loader as rulesets (plain YAML only, nothing executed, sizes capped), so every problem is
reported at ``file:line:column``.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from cquin.config.schema_errors import friendly
from cquin.config.yaml_source import SourceDocument, load_yaml_file, load_yaml_text
from cquin.exceptions import ConfigError, RulesetError


def schema(name: str) -> dict[str, Any]:
    text = resources.files("cquin.schemas").joinpath(f"{name}.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def load_checked(
    path: Path | None, schema_name: str, *, text: str | None = None, shown: str = ""
) -> tuple[SourceDocument, list[str]]:
    """The located document and every schema problem, each ``file:line:column: message``; unreadable YAML raises ConfigError."""
    try:
        doc = load_yaml_text(text, shown or str(path)) if text is not None else load_yaml_file(Path(str(path)))
    except RulesetError as exc:
        raise ConfigError(str(exc).replace("save the ruleset", "save the file")) from None
    validator = jsonschema.Draft202012Validator(schema(schema_name))
    problems = []
    for err in sorted(validator.iter_errors(doc.data), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        for where, message in friendly(err):
            problems.append(f"{doc.locate(where)}: {message.replace('the ruleset', 'the file')}")
    return doc, problems
