"""The ruleset checker: every problem in a ruleset at once, each at its file, line and column.

One method per part of the language (periods, code lists, categories, instruments, measurements,
populations and their rule trees, components and bands, milestones, evidence, care planning, citations),
run in order over the resolved document; it is long because the language is, and each method is short.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema

from cquin.config.schema_errors import friendly
from cquin.config.yaml_source import SourceDocument
from cquin.engine import codes
from cquin.engine.bands import HUNDRED, band_from_spec, coverage_problems, to_fraction
from cquin.engine.rules import PopulationRef, Rule, parse_rule, walk
from cquin.engine.ruleset_common import (
    ISO_DATE,
    MAX_CODE_LIST_BYTES,
    MAX_CODES_PER_LIST,
    CodeList,
    Problem,
    normalise_answer,
    provider_dates,
    resolve_date,
    schema,
)
from cquin.exceptions import UserError


class RulesetChecker:
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
            if ISO_DATE.match(ref):
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
            try:
                missing = not file.exists()
            except OSError:  # a name the file system cannot hold (too long): it cannot be there
                missing = True
            if missing:
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
            try:
                rule = parse_rule(pop.get("rule"))
            except (KeyError, TypeError, AttributeError, ValueError):
                continue  # the schema errors say what is wrong with this rule
            path: tuple[str | int, ...] = ("populations", pid, "rule")
            self.check_rule(pid, pop.get("entity"), rule, path)
            deps.update(n.population for _, n in walk(rule) if isinstance(n, PopulationRef))
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

    def check_rule(self, pid: str, entity: str | None, node: Rule, path: tuple[str | int, ...]) -> None:
        """Every test of a population's rule: does it apply to the population's entity, and do its references resolve."""
        for below, test in walk(node, path):
            if test.applies_to is not None and entity is not None and test.applies_to != entity:
                counts = "staff" if entity == "staff" else "patients"
                applies = "staff" if test.applies_to == "staff" else "patients"
                self.error(below, f"population {pid} counts {counts}, but the test {test.kind!r} applies to {applies}")
            test.check(self, below + (test.kind,), entity)

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
            if "bands" in comp and all(numeric_band(b) for b in comp["bands"]):
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
                        if key not in provider_dates() and key not in (self.doc.get("recorded_evidence") or {}):
                            self.error(
                                ("components", i, "attainment", j, "requires", key),
                                f"component {cid}: {key!r} is neither a provider date ({', '.join(sorted(provider_dates()))}) "
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


def numeric_band(band: Any) -> bool:
    """A band whose edges are all numbers (the schema reports any that are not)."""
    if not isinstance(band, dict):
        return False
    return all(
        isinstance(v, (int, Decimal)) and not isinstance(v, bool)
        for k, v in band.items()
        if k in ("at_least", "above", "at_most", "below", "pays_percent")
    )


def _walk(node: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))
