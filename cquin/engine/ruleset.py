"""Load, check and model a ruleset: the policy as data.

``load_ruleset`` returns a :class:`Ruleset` or raises :class:`RulesetError`
carrying *every* problem found, each as ``file:line:column: message``.
``check_ruleset`` returns the problems (errors and warnings) without raising,
for ``cquin ruleset validate``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from cquin.config.schema_errors import canonical_json, friendly
from cquin.config.yaml_source import Location, SourceDocument
from cquin.dataset import Vocabulary
from cquin.engine import codes
from cquin.engine.bands import HUNDRED, Band, band_from_spec, coverage_problems, to_fraction
from cquin.exceptions import RulesetError, UserError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "rulesets"
# A code list is matched against every condition record in every evaluation: the largest real lists (whole
# SNOMED CT reference sets for a condition group) hold thousands of codes; far more is the wrong file.
MAX_CODES_PER_LIST = 100_000
MAX_CODE_LIST_BYTES = 16_000_000
_DATE_REF = re.compile(r"^(?P<period>[a-z][a-z0-9_]*)(\.(?P<quarter>[A-Za-z][A-Za-z0-9_]*))?\.(?P<edge>start|end)$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a ruleset, at a place in a file."""

    location: Location
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        return f"{self.location}: {tag}{self.message}"


@dataclass(frozen=True)
class CodeList:
    """A code list file as loaded: its codes (normalised) and where each came from."""

    id: str
    system: str
    path: Path
    codes: dict[str, int]  # normalised code -> line in the file
    terms: dict[str, str]
    sha256: str


def _provider_dates() -> set[str]:
    """The provider table's date columns: what an attainment level may require by a date."""
    from cquin.dataset.tables import table

    return {c.name for c in table("provider").columns if c.kind == "date"}


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


def normalise_answer(text: str) -> str:
    """GPPS answers match case-insensitively, ignoring surrounding white space."""
    return " ".join(text.split()).casefold()


def resolve_date(doc: dict[str, Any], ref: str) -> dt.date:
    if _ISO.match(ref):
        return dt.date.fromisoformat(ref)
    m = _DATE_REF.match(ref)
    if not m:
        raise KeyError(ref)
    period = doc["periods"][m["period"]]
    if m["quarter"]:
        quarter = next(q for q in period.get("quarters", []) if q["id"] == m["quarter"])
        return dt.date.fromisoformat(quarter["from" if m["edge"] == "start" else "to"])
    return dt.date.fromisoformat(period["from" if m["edge"] == "start" else "to"])


def schema() -> dict[str, Any]:
    text = resources.files("cquin.schemas").joinpath("ruleset.schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


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
    checker = _Checker(source, path)
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


# --------------------------------------------------------------------------- checking


class _Checker:
    def __init__(self, source: SourceDocument, path: Path) -> None:
        self.source = source
        self.path = path
        self.doc = source.data
        self.problems: list[Problem] = []
        self.code_lists: dict[str, CodeList] = {}

    def error(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.source.locate(path), message))

    def warn(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(Problem(self.source.locate(path), message, "warning"))

    def run(self) -> None:
        if not isinstance(self.doc, dict):
            self.error((), "a ruleset must be a mapping of keys to values")
            return
        self.schema_errors()
        # The semantic checks read the structure; run each where its part is well formed.
        for check in (
            self.check_dates_and_periods,
            self.check_code_lists,
            self.check_categories,
            self.check_shared_codes,
            self.check_instruments,
            self.check_measurements,
            self.check_populations,
            self.check_components,
            self.check_milestones,
            self.check_conversation_codes,
            self.check_recorded_evidence,
            self.check_care_planning,
            self.check_citations,
        ):
            try:
                check()
            except (KeyError, TypeError, AttributeError, IndexError, ValueError):
                # Part of the structure the check relies on is malformed; the
                # schema errors already say where.
                if not any(p.severity == "error" for p in self.problems):
                    self.error((), f"the ruleset is malformed (while running {check.__name__})")
        self.problems.sort(key=lambda p: (p.location.file, p.location.line, p.location.column, p.message))

    # -- schema
    def schema_errors(self) -> None:
        validator = jsonschema.Draft202012Validator(schema())
        for err in sorted(validator.iter_errors(self.doc), key=lambda e: list(map(str, e.absolute_path))):
            for path, message in friendly(err):
                self.error(path, message)

    # -- periods and dates
    def date_ref(self, path: tuple[str | int, ...], ref: Any) -> dt.date | None:
        if not isinstance(ref, str):
            return None
        try:
            return resolve_date(self.doc, ref)
        except (KeyError, StopIteration, ValueError):
            if _ISO.match(ref):
                self.error(path, f"{ref!r} is not a real date")
            else:
                self.error(
                    path, f"{ref!r} refers to no period or quarter (known periods: {', '.join(self.doc.get('periods', {}))})"
                )
            return None

    def check_dates_and_periods(self) -> None:
        eff = self.doc.get("effective") or {}
        a, b = self.date_ref(("effective", "from"), eff.get("from")), self.date_ref(("effective", "to"), eff.get("to"))
        if a and b and a > b:
            self.error(("effective", "to"), f"the effective period ends ({b}) before it starts ({a})")
        for pid, period in (self.doc.get("periods") or {}).items():
            start = self.date_ref(("periods", pid, "from"), period.get("from"))
            end = self.date_ref(("periods", pid, "to"), period.get("to"))
            if start and end and start > end:
                self.error(("periods", pid, "to"), f"period {pid} ends ({end}) before it starts ({start})")
            previous_end = None
            for i, q in enumerate(period.get("quarters") or []):
                qs = self.date_ref(("periods", pid, "quarters", i, "from"), q.get("from"))
                qe = self.date_ref(("periods", pid, "quarters", i, "to"), q.get("to"))
                if qs and qe and qs > qe:
                    self.error(
                        ("periods", pid, "quarters", i, "to"), f"quarter {q.get('id')} ends ({qe}) before it starts ({qs})"
                    )
                if qs and start and end and not (start <= qs <= end):
                    self.error(
                        ("periods", pid, "quarters", i, "from"),
                        f"quarter {q.get('id')} starts outside period {pid} ({start} to {end})",
                    )
                if qe and start and end and not (start <= qe <= end):
                    self.error(
                        ("periods", pid, "quarters", i, "to"),
                        f"quarter {q.get('id')} ends outside period {pid} ({start} to {end})",
                    )
                if previous_end and qs and qs != previous_end + dt.timedelta(days=1):
                    self.error(
                        ("periods", pid, "quarters", i, "from"),
                        f"quarter {q.get('id')} should start the day after the previous quarter ends ({previous_end}); quarters are out of order or leave a gap",
                    )
                previous_end = qe

    # -- code lists
    def check_code_lists(self) -> None:
        for cid, spec in (self.doc.get("code_lists") or {}).items():
            if not isinstance(spec, dict) or "file" not in spec or spec.get("system") not in ("snomed", "icd10", "local"):
                continue
            # A file path is relative to the ruleset file that declared it (a parent's, for inherited lists).
            declared_in = Path(self.source.locate(("code_lists", cid, "file")).file).parent
            file = (declared_in / spec["file"]).resolve()
            loaded = self.load_code_list(cid, spec["system"], file, ("code_lists", cid, "file"))
            if loaded:
                self.code_lists[cid] = loaded

    def load_code_list(self, cid: str, system: str, file: Path, ypath: tuple[str | int, ...]) -> CodeList | None:
        from cquin.files import read_capped

        try:
            raw = read_capped(file, limit=MAX_CODE_LIST_BYTES, what=f"code list {cid}")
        except UserError as exc:
            if not file.exists():
                self.error(ypath, f"code list {cid}: the file {file.name} cannot be read (looked for {file})")
            else:
                self.error(ypath, str(exc))
            return None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            self.error(ypath, f"code list {cid}: {file.name} is not UTF-8 text")
            return None
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "code" not in reader.fieldnames:
            self.error(ypath, f"code list {cid}: {file.name} needs a header row with a 'code' column")
            return None
        found: dict[str, int] = {}
        terms: dict[str, str] = {}
        for row in reader:
            line = reader.line_num
            if len(found) >= MAX_CODES_PER_LIST:
                self.error(
                    ypath,
                    f"code list {cid}: {file.name} has more than {MAX_CODES_PER_LIST:,} codes (line {line}); "
                    "cquin refuses larger lists (each evaluation matches every record against them): is it the right file?",
                )
                return None
            code = (row.get("code") or "").strip()
            problem = codes.check_code(system, code)
            here = f"code list {cid}: {file.name}:{line}: "
            if problem:
                self.error(ypath, here + problem)
                continue
            norm = codes.normalise(system, code)
            if norm in found:
                self.warn(ypath, here + f"{code} is listed twice (first on line {found[norm]})")
                continue
            found[norm] = line
            terms[norm] = (row.get("term") or "").strip()
        if not found:
            self.error(ypath, f"code list {cid}: {file.name} has no codes")
        if system == "icd10":
            # ICD-10 entries are prefixes: an entry beneath another entry of the same list adds nothing.
            for norm, line in found.items():
                covering = next((norm[:n] for n in range(3, len(norm)) if norm[:n] in found), None)
                if covering:
                    self.warn(
                        ypath,
                        f"code list {cid}: {file.name}:{line}: {norm} is already covered by {covering} "
                        f"(line {found[covering]}), an ICD-10 prefix",
                    )
        return CodeList(cid, system, file, found, terms, hashlib.sha256(raw).hexdigest())

    # -- LTC categories
    def check_categories(self) -> None:
        ltc = self.doc.get("ltc") or {}
        seen: dict[str, int] = {}
        lists = self.doc.get("code_lists") or {}
        category_of_list: dict[str, str] = {}
        for i, cat in enumerate(ltc.get("categories") or []):
            cid = cat.get("id")
            if cid in seen:
                self.error(("ltc", "categories", i, "id"), f"category {cid!r} is defined twice (also item {seen[cid] + 1})")
            seen[cid] = i
            for j, ref in enumerate(cat.get("code_lists") or []):
                if ref not in lists:
                    self.error(("ltc", "categories", i, "code_lists", j), f"category {cid}: unknown code list {ref!r}")
                else:
                    category_of_list[ref] = cid
        self.category_of_list = category_of_list

    def _declared_order(self, list_id: str) -> tuple[bool, int]:
        where = self.source.locate(("code_lists", list_id, "file"))
        return where.file == str(self.path), where.line

    def check_shared_codes(self) -> None:
        """A code in two categories fails validation unless ``ltc.shared_codes`` declares the overlap, with why.

        domain.md: a code may sit in two categories (e.g. diabetic kidney disease),
        and a patient then has two LTC categories; the ruleset must say so on purpose.
        ICD-10 entries are prefixes, so I12 in one category and I12.0 in another
        overlap at I12.0.
        """
        ltc = self.doc.get("ltc") or {}
        category_of_list: dict[str, str] = getattr(self, "category_of_list", {})
        # (system, code) -> {category: (code list id, line in its file)}
        held: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}
        by_prefix: dict[str, list[tuple[str, str, int]]] = {}
        for list_id, cat in category_of_list.items():
            cl = self.code_lists.get(list_id)
            if cl is None:
                continue
            for code, line in cl.codes.items():
                held.setdefault((cl.system, code), {}).setdefault(cat, (list_id, line))
                if cl.system == "icd10":
                    by_prefix.setdefault(code, []).append((cat, list_id, line))
        for (system, code), cats in list(held.items()):
            if system != "icd10":
                continue
            for n in range(3, len(code)):
                for cat, list_id, line in by_prefix.get(code[:n], []):
                    cats.setdefault(cat, (list_id, line))
        overlaps = {key: cats for key, cats in held.items() if len(cats) > 1}
        declared: dict[tuple[str, str], tuple[int, set[str]]] = {}
        known_cats = set(category_of_list.values()) | {c.get("id") for c in ltc.get("categories") or []}
        for i, entry in enumerate(ltc.get("shared_codes") or []):
            system, code = str(entry.get("system")), codes.normalise(str(entry.get("system")), str(entry.get("code")))
            here = ("ltc", "shared_codes", i)
            if (system, code) in declared:
                self.error(
                    here + ("code",), f"shared code {code} is declared twice (also item {declared[(system, code)][0] + 1})"
                )
                continue
            named = set(entry.get("categories") or [])
            for j, cat in enumerate(entry.get("categories") or []):
                if cat not in known_cats:
                    self.error(here + ("categories", j), f"shared code {code}: unknown LTC category {cat!r}")
            declared[(system, code)] = (i, named)
            actual = overlaps.get((system, code))
            if actual is None:
                self.warn(
                    here + ("code",),
                    f"shared code {code} ({system}) is declared, but it is not in more than one category; remove this entry",
                )
            elif not set(actual) <= named:
                self.error(
                    here + ("categories",),
                    f"shared code {code} is in {', '.join(sorted(actual))}, but the declaration names {', '.join(sorted(named))}",
                )
        undeclared: dict[tuple[str, ...], list[tuple[str, str, dict[str, tuple[str, int]]]]] = {}
        accepted: dict[tuple[str, ...], int] = {}
        for (system, code), cats in sorted(overlaps.items()):
            pair = tuple(sorted(cats))
            if (system, code) in declared:
                accepted[pair] = accepted.get(pair, 0) + 1
            else:
                undeclared.setdefault(pair, []).append((system, code, cats))
        limit = 20
        for pair, found in sorted(undeclared.items()):
            for system, code, cats in found[:limit]:
                # Point at the code list declared last (in the child file, for an inherited ruleset).
                last = max((lid for lid, _ in cats.values()), key=self._declared_order)
                places = "; ".join(
                    f"{cat} ({list_id}, {self.code_lists[list_id].path.name}:{line})"
                    for cat, (list_id, line) in sorted(cats.items())
                )
                term = next(
                    (self.code_lists[lid].terms.get(code) for lid, _ in cats.values() if self.code_lists[lid].terms.get(code)), ""
                )
                self.error(
                    ("code_lists", last, "file"),
                    f"{system} code {code}{f' ({term})' if term else ''} is in {len(cats)} categories: {places}. "
                    "If that is intended, declare it in ltc.shared_codes with why; otherwise remove it from one list",
                )
            if len(found) > limit:
                self.error(
                    ("ltc", "categories"),
                    f"... and {len(found) - limit} more code(s) in both {' and '.join(pair)}, not declared in ltc.shared_codes",
                )
        if accepted:
            detail = ", ".join(f"{' and '.join(pair)}: {n}" for pair, n in sorted(accepted.items()))
            self.warn(
                ("ltc", "shared_codes"),
                f"{sum(accepted.values())} code(s) are in more than one category, as ltc.shared_codes declares ({detail}); "
                "a patient with one counts in each",
            )

    # -- instruments
    def check_instruments(self) -> None:
        pam = (self.doc.get("instruments") or {}).get("pam") or {}
        levels = pam.get("levels") or []
        rng = pam.get("score_range") or {}
        prev = None
        for i, lv in enumerate(levels):
            bound = to_fraction(lv["score_at_most"])
            if prev is not None and bound <= prev:
                self.error(
                    ("instruments", "pam", "levels", i, "score_at_most"),
                    "PAM level cut points must rise from one level to the next",
                )
            prev = bound
        if levels and rng and to_fraction(levels[-1]["score_at_most"]) < to_fraction(rng["max"]):
            self.error(
                ("instruments", "pam", "levels", len(levels) - 1, "score_at_most"),
                f"the top PAM level must reach the top of the score range ({rng['max']})",
            )
        known = {lv["level"] for lv in levels}
        for i, lv in enumerate(pam.get("low_activation_levels") or []):
            if lv not in known:
                self.error(
                    ("instruments", "pam", "low_activation_levels", i), f"low activation level {lv} is not one of the PAM levels"
                )
        gpps = (self.doc.get("instruments") or {}).get("gpps") or {}
        fields = set()
        for i, q in enumerate(gpps.get("questions") or []):
            if q["field"] in fields:
                self.error(("instruments", "gpps", "questions", i, "field"), f"two questions use the field {q['field']}")
            fields.add(q["field"])
            answers: set[str] = set()
            for j, opt in enumerate(q.get("options") or []):
                norm = normalise_answer(opt["answer"])
                if norm in answers:
                    self.error(
                        ("instruments", "gpps", "questions", i, "options", j, "answer"),
                        f"the answer {opt['answer']!r} is listed twice",
                    )
                answers.add(norm)

    # -- measurements
    def check_measurements(self) -> None:
        measurements = self.doc.get("measurements") or {}
        for mid, m in measurements.items():
            if m.get("within") not in (self.doc.get("periods") or {}):
                self.error(("measurements", mid, "within"), f"measurement {mid}: unknown period {m.get('within')!r}")
            same = m.get("same_instrument_as")
            if same is not None and (same not in measurements or same == mid):
                self.error(("measurements", mid, "same_instrument_as"), f"measurement {mid}: unknown measurement {same!r}")

    # -- populations and their rules
    def check_populations(self) -> None:
        pops = self.doc.get("populations") or {}
        self.pop_deps: dict[str, set[str]] = {}
        for pid, pop in pops.items():
            deps: set[str] = set()
            for path, node in walk_rule(pop.get("rule") or {}, ("populations", pid, "rule")):
                self.check_rule_node(pid, pop.get("entity"), path, node, deps)
            self.pop_deps[pid] = deps
        # Cycles: a population may not depend on itself.
        state: dict[str, int] = {}

        def visit(p: str, trail: list[str]) -> None:
            if state.get(p) == 2:
                return
            if state.get(p) == 1:
                cycle = trail[trail.index(p) :] + [p]
                self.error(("populations", p, "rule"), "populations refer to each other in a circle: " + " -> ".join(cycle))
                return
            state[p] = 1
            for d in sorted(self.pop_deps.get(p, ())):
                if d in pops:
                    visit(d, trail + [p])
            state[p] = 2

        for pid in pops:
            visit(pid, [])

    def check_rule_node(
        self, pid: str, entity: str | None, path: tuple[str | int, ...], node: dict[str, Any], deps: set[str]
    ) -> None:
        pops = self.doc.get("populations") or {}
        measurements = self.doc.get("measurements") or {}
        patient_only = {"served", "ltc", "measured", "low_activation", "improved", "conversation", "cohort"}
        staff_only = {"cares_for_cohort", "trained"}
        ((kind, value),) = node.items()
        if entity == "staff" and kind in patient_only:
            self.error(path, f"population {pid} counts staff, but the test {kind!r} applies to patients")
        if entity == "patient" and kind in staff_only:
            self.error(path, f"population {pid} counts patients, but the test {kind!r} applies to staff")
        if kind == "population":
            if value not in pops:
                self.error(path + (kind,), f"unknown population {value!r}")
            elif pops[value].get("entity") != entity:
                self.error(path + (kind,), f"population {value!r} counts {pops[value].get('entity')}, not {entity}")
            deps.add(value)
        elif kind in ("measured", "low_activation"):
            if value not in measurements:
                self.error(path + (kind,), f"unknown measurement {value!r} (known: {', '.join(measurements)})")
        elif kind == "improved":
            for key in ("from", "to"):
                if value.get(key) not in measurements:
                    self.error(path + (kind, key), f"unknown measurement {value.get(key)!r}")
        elif kind == "served":
            if "during" in value and value["during"] not in (self.doc.get("periods") or {}):
                self.error(path + (kind, "during"), f"unknown period {value['during']!r}")
            if "on" in value:
                self.date_ref(path + (kind, "on"), value["on"])
        elif kind == "ltc":
            self.date_ref(path + (kind, "recorded_by"), value.get("recorded_by"))
            known = {c.get("id") for c in (self.doc.get("ltc") or {}).get("categories") or []}
            for i, c in enumerate(value.get("categories") or []):
                if c not in known:
                    self.error(path + (kind, "categories", i), f"unknown LTC category {c!r}")
        elif kind == "conversation":
            a = self.date_ref(path + (kind, "from"), value.get("from"))
            b = self.date_ref(path + (kind, "to"), value.get("to"))
            if a and b and a > b:
                self.error(path + (kind, "to"), f"the conversation window ends ({b}) before it starts ({a})")
        elif kind == "trained":
            self.date_ref(path + (kind, "by"), value.get("by"))
            if "from" in value:
                self.date_ref(path + (kind, "from"), value["from"])
        elif kind == "cohort":
            if value.get("overrides") not in ("year1", "year2"):
                self.error(path + (kind, "overrides"), "overrides must name a cohort of the overrides file: year1 or year2")

    # -- components
    def check_components(self) -> None:
        comps = self.doc.get("components") or []
        pops = self.doc.get("populations") or {}
        periods = self.doc.get("periods") or {}
        shares: dict[str, Fraction] = {}
        first_of_year: dict[str, int] = {}
        ids: dict[str, int] = {}
        for i, comp in enumerate(comps):
            cid = comp.get("id")
            if cid in ids:
                self.error(("components", i, "id"), f"component {cid!r} is defined twice")
            ids[cid] = i
            year = comp.get("year")
            if year not in periods:
                self.error(("components", i, "year"), f"component {cid}: unknown period {year!r}")
            share = comp.get("share_percent", 0)
            if isinstance(share, (int, Decimal)) and not isinstance(share, bool):
                shares[year] = shares.get(year, Fraction(0)) + to_fraction(share)
            else:
                shares.setdefault(year, Fraction(0))
            first_of_year.setdefault(year, i)
            if "bands" in comp and all(_numeric_band(b) for b in comp["bands"]):
                for key in ("numerator", "denominator"):
                    if comp.get(key) not in pops:
                        self.error(("components", i, key), f"component {cid}: unknown population {comp.get(key)!r}")
                num, den = pops.get(comp.get("numerator")), pops.get(comp.get("denominator"))
                if num and den and num.get("entity") != den.get("entity"):
                    self.error(
                        ("components", i, "numerator"),
                        f"component {cid}: numerator counts {num.get('entity')} but the denominator counts {den.get('entity')}",
                    )
                limit = None if comp.get("bands_on") == "numerator_count" else HUNDRED
                unit = "" if limit is None else "%"
                bands = [band_from_spec(b, upper_limit=limit) for b in comp["bands"]]
                for j, b in enumerate(bands):
                    if limit is not None and ((b.upper is not None and b.upper > limit) or b.lower > limit):
                        self.error(("components", i, "bands", j), f"component {cid}: band {b.describe(unit)} goes beyond 100%")
                for j, message in coverage_problems(bands, upper_limit=limit, unit=unit):
                    self.error(("components", i, "bands", j), f"component {cid}: {message}")
            if "attainment" in comp:
                for j, level in enumerate(comp["attainment"]):
                    for key, ref in (level.get("requires") or {}).items():
                        self.date_ref(("components", i, "attainment", j, "requires", key), ref)
                        if key not in _provider_dates() and key not in (self.doc.get("recorded_evidence") or {}):
                            self.error(
                                ("components", i, "attainment", j, "requires", key),
                                f"component {cid}: {key!r} is neither a provider date ({', '.join(sorted(_provider_dates()))}) "
                                "nor a recorded_evidence id",
                            )
                if comp["attainment"] and comp["attainment"][-1].get("requires"):
                    self.error(
                        ("components", i, "attainment", len(comp["attainment"]) - 1),
                        f"component {cid}: the last attainment level must require nothing (requires: {{}}), so every provider reaches some level",
                    )
        for year, total in shares.items():
            if total != HUNDRED:
                self.error(
                    ("components", first_of_year[year], "share_percent"),
                    f"the shares of {year}'s components add up to {float(total):g}%, not 100%",
                )

    def check_conversation_codes(self) -> None:
        lists = self.doc.get("code_lists") or {}
        for i, ref in enumerate((self.doc.get("conversation_codes") or {}).get("code_lists") or []):
            if ref not in lists:
                self.error(("conversation_codes", "code_lists", i), f"unknown code list {ref!r}")
            elif lists[ref].get("system") == "local" and not lists[ref].get("uri"):
                self.error(("code_lists", ref), f"code list {ref}: a local code list needs a 'uri' naming its code system")
        plans = (self.doc.get("conversation_codes") or {}).get("care_plans") or {}
        for i, ref in enumerate(plans.get("fhir_code_lists") or []):
            if ref not in lists:
                self.error(("conversation_codes", "care_plans", "fhir_code_lists", i), f"unknown code list {ref!r}")
        resolved = (self.doc.get("ltc") or {}).get("resolved_conditions") or {}
        if resolved:
            self.date_ref(
                ("ltc", "resolved_conditions", "not_identifying_if_resolved_before"),
                resolved.get("not_identifying_if_resolved_before"),
            )
        known = {c.get("id") for c in (self.doc.get("ltc") or {}).get("categories") or [] if isinstance(c, dict)}
        for i, cat in enumerate(resolved.get("except_categories") or []):
            if cat not in known:
                self.error(("ltc", "resolved_conditions", "except_categories", i), f"unknown LTC category {cat!r}")

    def check_recorded_evidence(self) -> None:
        """Each recorded decision has its own subject, distinct from what every run can be signed off on."""
        seen: dict[str, str] = {}
        for eid, spec in (self.doc.get("recorded_evidence") or {}).items():
            subject = spec.get("subject")
            if subject == "results" or str(subject).startswith("cohort"):
                self.error(
                    ("recorded_evidence", eid, "subject"),
                    f"recorded evidence {eid}: subject {subject!r} is reserved (a run's results and cohorts are signed off as such)",
                )
            elif subject in seen:
                self.error(
                    ("recorded_evidence", eid, "subject"),
                    f"recorded evidence {eid}: subject {subject!r} is also {seen[subject]}'s",
                )
            seen.setdefault(subject, eid)

    def check_care_planning(self) -> None:
        """Category and element ids are unique, their code lists exist, the dates resolve, the populations exist."""
        cp = self.doc.get("care_planning")
        if not cp:
            return
        lists = self.doc.get("code_lists") or {}
        seen: set[str] = set()
        for key in ("categories", "conversation_elements"):
            for i, item in enumerate(cp.get(key) or []):
                if item.get("id") in seen:
                    self.error(("care_planning", key, i, "id"), f"care_planning: {item.get('id')!r} is listed twice")
                seen.add(item.get("id"))
                refs = item.get("code_lists") or []
                by_entry = refs.items() if isinstance(refs, dict) else [(None, refs)]
                for entry, listed in by_entry:
                    for j, ref in enumerate(listed):
                        if ref not in lists:
                            where = ("care_planning", key, i, "code_lists") + ((entry,) if entry else ()) + (j,)
                            self.error(where, f"unknown code list {ref!r}")
        for end in ("from", "to"):
            self.date_ref(("care_planning", "within", end), (cp.get("within") or {}).get(end))
        pops = self.doc.get("populations") or {}
        for key, ref in (cp.get("activation_change") or {}).items():
            if ref not in pops:
                self.error(("care_planning", "activation_change", key), f"care_planning: unknown population {ref!r}")
            elif pops[ref].get("entity") != "patient":
                self.error(("care_planning", "activation_change", key), f"care_planning: {ref!r} is not a population of patients")

    def check_milestones(self) -> None:
        pops = self.doc.get("populations") or {}
        for i, ms in enumerate(self.doc.get("milestones") or []):
            self.date_ref(("milestones", i, "due"), ms.get("due"))
            if ms.get("year") not in (self.doc.get("periods") or {}):
                self.error(("milestones", i, "year"), f"milestone {ms.get('id')}: unknown period {ms.get('year')!r}")
            for key in ("population", "compared_to"):
                ref = (ms.get("check") or {}).get(key)
                if ref is not None and ref not in pops:
                    self.error(("milestones", i, "check", key), f"milestone {ms.get('id')}: unknown population {ref!r}")

    def check_citations(self) -> None:
        sources = self.doc.get("sources") or {}
        for path, node in _walk(self.doc, ()):
            if isinstance(node, dict) and isinstance(node.get("citation"), dict):
                src = node["citation"].get("source")
                if src is not None and src not in sources:
                    self.error(
                        path + ("citation", "source"),
                        f"the citation names an unknown source {src!r} (known: {', '.join(sources)})",
                    )


def _numeric_band(band: Any) -> bool:
    """A band whose edges are all numbers (the schema reports any that are not)."""
    if not isinstance(band, dict):
        return False
    return all(
        isinstance(v, (int, Decimal)) and not isinstance(v, bool)
        for k, v in band.items()
        if k in ("at_least", "above", "at_most", "below", "pays_percent")
    )


def walk_rule(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every test in a rule tree with its path, parents before children."""
    if not isinstance(node, dict) or len(node) != 1:
        return
    yield path, node
    ((kind, value),) = node.items()
    if kind in ("all_of", "any_of") and isinstance(value, list):
        for i, child in enumerate(value):
            yield from walk_rule(child, path + (kind, i))
    elif kind == "not":
        yield from walk_rule(value, path + (kind,))
    elif kind == "cohort" and isinstance(value, dict):
        yield from walk_rule(value.get("members"), path + (kind, "members"))
        if "include_requires" in value:
            yield from walk_rule(value["include_requires"], path + (kind, "include_requires"))


def _walk(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))
