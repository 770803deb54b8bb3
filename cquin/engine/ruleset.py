"""Load, check and model a ruleset: the policy as data.

``load_ruleset`` returns a :class:`Ruleset` or raises :class:`RulesetError`
carrying *every* problem found, each as ``file:line:column: message``.
``check_ruleset`` returns the problems (errors and warnings) without raising,
for ``cquin ruleset validate``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any

from cquin.config.schema_errors import canonical_json
from cquin.config.yaml_source import Location, SourceDocument
from cquin.dataset import Vocabulary
from cquin.engine.bands import HUNDRED, Band, band_from_spec, to_fraction
from cquin.engine.rules import Measurement, Population
from cquin.engine.ruleset_check import RulesetChecker
from cquin.engine.ruleset_common import (
    MAX_CODE_LIST_BYTES,
    MAX_CODES_PER_LIST,
    CodeList,
    Problem,
    normalise_answer,
    resolve_date,
    schema,
)
from cquin.exceptions import RulesetError

# Read from here by the rest of cquin (their homes are ruleset_common and config.schema_errors).
__all__ = [
    "BUNDLED_DIR",
    "MAX_CODES_PER_LIST",
    "MAX_CODE_LIST_BYTES",
    "CodeList",
    "Problem",
    "Ruleset",
    "canonical_json",
    "check_ruleset",
    "find_ruleset",
    "load_ruleset",
    "normalise_answer",
    "resolve_date",
    "schema",
    "tests_file_beside",
]

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "rulesets"


@dataclass
class Ruleset:
    """A validated ruleset: its data, where each value came from, and its code lists."""

    doc: dict[str, Any]
    source: SourceDocument
    path: Path
    code_lists: dict[str, CodeList]
    warnings: list[Problem] = field(default_factory=list)
    # The extends chain, this ruleset first: (id, version, file) of each ruleset merged into this one.
    lineage: list[tuple[str, str, Path]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def version(self) -> str:
        return str(self.doc["version"])

    @property
    def status(self) -> str:
        return str(self.doc["status"])

    @property
    def title(self) -> str:
        return str(self.doc["title"])

    @cached_property
    def sha256(self) -> str:
        """Hash of the resolved ruleset and the content of every code list it uses."""
        h = hashlib.sha256()
        h.update(canonical_json(self.doc).encode())
        for cid in sorted(self.code_lists):
            h.update(f"\n{cid}:{self.code_lists[cid].sha256}".encode())
        return h.hexdigest()

    @cached_property
    def populations(self) -> dict[str, Population]:
        """Every population with its rule as a typed tree, in the ruleset's order."""
        return {pid: Population.parse(pid, spec) for pid, spec in self.doc["populations"].items()}

    @cached_property
    def measurements(self) -> dict[str, Measurement]:
        """Every activation measurement (baseline, follow-up ...), in the ruleset's order."""
        return {mid: Measurement.parse(mid, spec) for mid, spec in (self.doc.get("measurements") or {}).items()}

    @property
    def components(self) -> list[dict[str, Any]]:
        """The components in the ruleset's order, as written (id, year, denominator, numerator, bands ...)."""
        return list(self.doc["components"])

    @property
    def instruments(self) -> dict[str, Any]:
        """The activation instruments (PAM, GPPS) and their scoring, as written."""
        return dict(self.doc["instruments"])

    @property
    def zero_denominator(self) -> dict[str, Any]:
        """What a component with nobody in its denominator reports and pays."""
        return dict(self.doc["zero_denominator"])

    @property
    def ltc_categories(self) -> list[dict[str, Any]]:
        """The LTC categories in the ruleset's order (id, label, code lists, look-back)."""
        return list(self.doc["ltc"]["categories"])

    @property
    def direct_recording_code_system(self) -> str:
        """The code system a record uses to state an LTC category directly rather than by a clinical code."""
        return str(self.doc["ltc"]["direct_recording_code_system"])

    def period_label(self, pid: str) -> str:
        return str(self.doc["periods"][pid]["label"])

    def has_period(self, pid: str) -> bool:
        return pid in self.doc["periods"]

    def date(self, ref: str) -> dt.date:
        """Resolve an ISO date or a reference such as ``year1.end`` / ``year1.Q2.end``."""
        return resolve_date(self.doc, ref)

    def period(self, pid: str) -> tuple[dt.date, dt.date]:
        p = self.doc["periods"][pid]
        return dt.date.fromisoformat(p["from"]), dt.date.fromisoformat(p["to"])

    @property
    def weighting(self) -> Fraction:
        """The indicator's share of the contract value, as a fraction (0.25% -> 1/400)."""
        return to_fraction(self.doc["indicator"]["weighting_percent"]) / HUNDRED

    def bands(self, component: dict[str, Any]) -> list[Band]:
        limit = None if component.get("bands_on") == "numerator_count" else HUNDRED
        return [band_from_spec(b, upper_limit=limit) for b in component["bands"]]

    def component(self, cid: str) -> dict[str, Any]:
        for comp in self.doc["components"]:
            if comp["id"] == cid:
                return comp
        raise KeyError(cid)

    def years(self) -> list[str]:
        """Period ids that carry components, in the order components name them."""
        seen: list[str] = []
        for comp in self.doc["components"]:
            if comp["year"] not in seen:
                seen.append(comp["year"])
        return seen

    @property
    def category_ids(self) -> list[str]:
        return [c["id"] for c in self.doc["ltc"]["categories"]]

    def gpps_options(self) -> dict[str, dict[str, Fraction]]:
        """For each GPPS field, its answer options (normalised) and their points."""
        out: dict[str, dict[str, Fraction]] = {}
        for q in self.doc["instruments"]["gpps"]["questions"]:
            out[q["field"]] = {normalise_answer(o["answer"]): to_fraction(o["points"]) for o in q["options"]}
        return out

    def vocabulary(self) -> Vocabulary:
        """The valid values the data checks need from this ruleset."""
        pam = self.doc["instruments"]["pam"]
        resolved = self.doc["ltc"].get("resolved_conditions")
        plan = self.doc.get("care_planning") or {}
        return Vocabulary(
            gpps_options={fld: tuple(opts) for fld, opts in self.gpps_options().items()},
            gpps_categories=tuple(self.category_ids),
            pam_score_range=(Decimal(str(pam["score_range"]["min"])), Decimal(str(pam["score_range"]["max"]))),
            pam_level_range=(int(pam["level_range"]["min"]), int(pam["level_range"]["max"])),
            conversation_codes={k: frozenset(v) for k, v in self.conversation_codes().items()},
            care_plan_codes={
                k: frozenset(v) for k, v in self._codes_by_system(self._care_plans().get("fhir_code_lists") or []).items()
            },
            csds_care_plan_types=frozenset(str(t) for t in self._care_plans().get("csds_plan_types") or []),
            resolved_before=self.date(resolved["not_identifying_if_resolved_before"]) if resolved else None,
            resolved_exempt_codes=self._category_codes(resolved.get("except_categories") or []) if resolved else {},
            care_plan_categories=tuple(c["id"] for c in plan.get("categories") or []),
            care_plan_elements=tuple(e["id"] for e in plan.get("conversation_elements") or [] if "recorded_by" not in e),
            care_plan_category_system=str(plan.get("category_system") or ""),
            care_plan_element_system=str(plan.get("element_system") or ""),
            care_plan_category_codes=self._care_plan_codes(plan),
        )

    def _care_plan_codes(self, plan: dict[str, Any]) -> dict[str, dict[str, tuple[str, str]]]:
        """System -> code -> (entry, category or element id), from care_planning's code lists (the first listed wins).

        A category's ``code_lists`` map an entry kind (need, goal, action, referral) to lists, e.g. the SNOMED CT
        referral procedures that mean a referral in that category; an element's are of entry kind ``element``.
        """
        out: dict[str, dict[str, tuple[str, str]]] = {}
        pairs = [
            (entry, refs, c["id"]) for c in plan.get("categories") or [] for entry, refs in (c.get("code_lists") or {}).items()
        ]
        pairs += [("element", e.get("code_lists") or [], e["id"]) for e in plan.get("conversation_elements") or []]
        for entry, refs, ident in pairs:
            for system, listed in self._codes_by_system(refs).items():
                for code in listed:
                    out.setdefault(system, {}).setdefault(code, (entry, ident))
        return out

    def _care_plans(self) -> dict[str, Any]:
        return dict(self.doc["conversation_codes"].get("care_plans") or {})

    def _codes_by_system(self, refs: list[str]) -> dict[str, set[str]]:
        """The codes of code lists ``refs`` by system (a local list by its URI)."""
        out: dict[str, set[str]] = {}
        for ref in refs:
            spec, cl = self.doc["code_lists"][ref], self.code_lists[ref]
            key = spec.get("uri") if spec["system"] == "local" else spec["system"]
            out.setdefault(key, set()).update(cl.codes)
        return out

    def _category_codes(self, categories: list[str]) -> dict[str, frozenset[str]]:
        refs = [ref for cat in self.doc["ltc"]["categories"] if cat["id"] in categories for ref in cat["code_lists"]]
        return {k: frozenset(v) for k, v in self._codes_by_system(refs).items()}

    def conversation_codes(self) -> dict[str, set[str]]:
        """Codes that mark a care and support planning conversation, by system (local lists by their URI)."""
        return self._codes_by_system(self.doc["conversation_codes"]["code_lists"])

    def locate(self, path: tuple[str | int, ...]) -> Location:
        return self.source.locate(path)


# --------------------------------------------------------------------------- finding rulesets


def find_ruleset(name_or_path: str) -> Path:
    """A ruleset file from a path, a bundled ruleset's id, or an id (``id`` or ``id@range``) in the catalogue."""
    from cquin.engine.catalogue import catalogue, user_dirs, version_key, version_matches

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise RulesetError(f"{name_or_path}: no such ruleset file")
        return path
    candidate = BUNDLED_DIR / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    rid, _, version_range = name_or_path.partition("@")
    entries = catalogue(user_dirs())
    try:
        named = [e for e in entries if e.id == rid and version_matches(version_range or "*", e.version)]
    except ValueError as exc:
        raise RulesetError(f"{name_or_path!r}: {exc}") from None
    if named:
        return max(named, key=lambda e: (e.status == "published", version_key(e.version))).path
    known = ", ".join(sorted({e.id for e in entries}))
    raise RulesetError(f"no ruleset called {name_or_path!r} (rulesets in the catalogue: {known})")


def load_ruleset(name_or_path: str | Path) -> Ruleset:
    """Load and fully check a ruleset; raise RulesetError listing every problem."""
    path = find_ruleset(str(name_or_path))
    ruleset, problems = _load_and_check(path)
    errors = [p for p in problems if p.severity == "error"]
    if errors or ruleset is None:
        raise RulesetError(f"{path}: the ruleset has {len(errors)} problem(s)", [str(p) for p in errors])
    ruleset.warnings = [p for p in problems if p.severity == "warning"]
    return ruleset


def check_ruleset(name_or_path: str | Path) -> tuple[Ruleset | None, list[Problem]]:
    """Every problem with a ruleset (errors and warnings), without raising for them."""
    path = find_ruleset(str(name_or_path))
    return _load_and_check(path)


def tests_file_beside(path: Path) -> Path | None:
    """The ruleset's tests file (``<name>.tests.yaml`` in the same folder), if there is one."""
    for suffix in (".tests.yaml", ".tests.yml"):
        candidate = path.with_name(path.stem + suffix)
        if candidate.is_file():
            return candidate
    return None


def _load_and_check(path: Path) -> tuple[Ruleset | None, list[Problem]]:
    """Resolve ``extends`` (if any), then check the resolved ruleset; problems point at the file that set each value."""
    from cquin.engine.inherit import resolve_document

    try:
        resolved = resolve_document(path)
    except RulesetError as exc:
        where = exc.location if isinstance(exc.location, Location) else Location(str(path), 1, 1)
        return None, [Problem(where, exc.bare_message)]
    source = resolved.source
    checker = RulesetChecker(source, path)
    checker.problems.extend(Problem(where, message) for where, message in resolved.problems)
    checker.run()
    if tests_file_beside(path) is None:
        checker.problems.append(
            Problem(
                Location(str(path), 1, 1),
                f"no tests file beside the ruleset (expected {path.stem}.tests.yaml): write test cases for it "
                "and run them with `cquin ruleset test`",
                "warning",
            )
        )
    if any(p.severity == "error" for p in checker.problems):
        return None, checker.problems
    ruleset = Ruleset(doc=source.data, source=source, path=path, code_lists=checker.code_lists, lineage=resolved.chain)
    return ruleset, checker.problems
