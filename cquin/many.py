"""Evaluate several providers in one go, from a manifest, for a commissioner's comparison.

The manifest is YAML (read with the same safe loader as rulesets)::

    ruleset: cquin_2017_19        # optional; a bundled id or a file
    as_of: 2018-03-31             # optional
    providers:
      - name: North Community Trust
        source: north/            # relative to the manifest
        adapter: canonical        # optional: detected when unambiguous
        contract_value: 12000000
        contract_value_year2: 12500000   # optional
        options: {dates: uk}             # optional adapter options
        org: north-org/                  # optional: the organisation's own records (default: beside the source)

Each provider is evaluated and stored as its own run (so each can be
explained, verified and reported on its own); the comparison holds each run's
id, results and breakdowns.  A worked example with every key explained is
``examples/evaluate-many/manifest.yaml``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from cquin.dataset.quality import DataQuality
from cquin.exceptions import RulesetError, UserError
from cquin.money import parse_pounds

_KEYS = {"name", "source", "adapter", "contract_value", "contract_value_year2", "options", "org"}


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    source: Path
    adapter: str | None
    contract_value: Decimal | None
    contract_value_year2: Decimal | None
    options: dict[str, str]
    org: Path | None = None


@dataclass(frozen=True)
class Manifest:
    path: Path
    ruleset: str
    as_of: dt.date | None
    providers: list[ProviderEntry]


@dataclass
class ProviderRun:
    entry: ProviderEntry
    run_id: str
    breakdowns: dict[str, Any]
    quality: DataQuality | None = None


def read_manifest(path: Path) -> Manifest:
    """Read and check a manifest; every problem is reported with its line."""
    from cquin.config.yaml_source import load_yaml_file
    from cquin.runner import DEFAULT_RULESET

    try:
        src = load_yaml_file(Path(path))
    except RulesetError as exc:
        raise UserError(str(exc).replace("ruleset", "manifest")) from None
    doc = src.data
    problems: list[str] = []

    def where(*p: str | int) -> str:
        return str(src.locate(tuple(p)))

    if not isinstance(doc, dict) or not isinstance(doc.get("providers"), list) or not doc["providers"]:
        raise UserError(f"{path}: a manifest needs a 'providers' list (each with name, source and contract_value)")
    unknown = set(doc) - {"providers", "ruleset", "as_of"}
    if unknown:
        problems.append(f"{where(sorted(unknown)[0])}: unknown key(s) {', '.join(sorted(unknown))}")
    as_of = None
    if doc.get("as_of") is not None:
        try:
            as_of = dt.date.fromisoformat(str(doc["as_of"]))
        except ValueError:
            problems.append(f"{where('as_of')}: as_of {doc['as_of']!r} is not a date written YYYY-MM-DD")
    entries: list[ProviderEntry] = []
    names: set[str] = set()
    for i, item in enumerate(doc["providers"]):
        if not isinstance(item, dict):
            problems.append(f"{where('providers', i)}: each provider is a mapping with name, source and contract_value")
            continue
        extra = set(item) - _KEYS
        if extra:
            problems.append(f"{where('providers', i)}: unknown key(s) {', '.join(sorted(extra))}")
        name, source = item.get("name"), item.get("source")
        if not name or not source:
            problems.append(f"{where('providers', i)}: a provider needs a name and a source")
            continue
        if str(name) in names:
            problems.append(f"{where('providers', i, 'name')}: provider name {name!r} is used twice")
        names.add(str(name))
        values = []
        for key in ("contract_value", "contract_value_year2"):
            raw = item.get(key)
            try:
                v = None if raw is None else parse_pounds(str(raw))
            except ValueError as exc:
                problems.append(f"{where('providers', i, key)}: {key} {raw!r} is not an amount in pounds ({exc})")
                v = None
            values.append(v)
        options = item.get("options") or {}
        if not isinstance(options, dict):
            problems.append(f"{where('providers', i, 'options')}: options is a mapping NAME: VALUE")
            options = {}
        folder = Path(str(source))
        folder = folder if folder.is_absolute() else Path(path).parent / folder
        if not folder.exists():
            problems.append(f"{where('providers', i, 'source')}: {folder} does not exist")
        org = None
        if item.get("org"):
            org = Path(str(item["org"]))
            org = org if org.is_absolute() else Path(path).parent / org
            if not org.is_dir():
                problems.append(f"{where('providers', i, 'org')}: {org} is not a folder")
        entries.append(
            ProviderEntry(
                str(name),
                folder,
                str(item["adapter"]) if item.get("adapter") else None,
                values[0],
                values[1],
                {str(k): str(v) for k, v in options.items()},
                org,
            )
        )
    if problems:
        raise UserError(f"{path}: the manifest has {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))
    return Manifest(Path(path), str(doc.get("ruleset") or DEFAULT_RULESET), as_of, entries)


def evaluate_many(
    manifest: Manifest,
    *,
    store: Path,
    progress: Callable[[str], None] | None = None,
    accept_rejections: bool = False,
    allow_draft: bool = False,
) -> list[ProviderRun]:
    """Evaluate and store every provider in the manifest, in order; returns each run with the breakdowns it kept.

    A draft ruleset is refused, as `cquin evaluate` refuses it, unless ``allow_draft``.
    """
    from cquin.runner import run_evaluation

    say = progress or (lambda _m: None)
    runs = []
    for entry in manifest.providers:
        say(f"{entry.name}: evaluating")
        ev = run_evaluation(
            entry.source,
            adapter=entry.adapter,
            adapter_options=entry.options,
            ruleset=manifest.ruleset,
            contract_value=entry.contract_value,
            contract_value_year2=entry.contract_value_year2,
            as_of=manifest.as_of,
            store=store,
            org=entry.org,
            accept_rejections=accept_rejections,
            allow_draft=allow_draft,
        )
        assert ev.run_id is not None and ev.breakdowns is not None  # stored runs keep their breakdowns
        runs.append(ProviderRun(entry, ev.run_id, ev.breakdowns, ev.quality))
        ev.dataset.con.close()
    return runs
