"""What changed between two rulesets, in policy language.

:func:`diff_rulesets` compares two *resolved* rulesets and returns a
:class:`RulesetDiff`: one :class:`Change` per thing a policy reader cares about
(components, shares, bands side by side, codes added to or removed from each
code list, dates and cut points, cohort rules, interpretations and citations,
version and status).  Every differing value is accounted for: anything no
section explains is listed under "Other changes", so nothing changes silently.

What the change does to a dataset is :mod:`cquin.engine.impact`.

Long because each section of the ruleset language has its own comparison in policy words; they share one walker and one added-or-removed helper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cquin.engine.bands import to_fraction
from cquin.engine.catalogue import parse_version
from cquin.engine.inherit import identity
from cquin.engine.rules import parse_rule, value_text
from cquin.engine.ruleset import Ruleset

MISSING = object()
LEVELS = ("none", "patch", "minor", "major")
WORDING_KEYS = {"label", "title", "notes", "description", "name", "text", "publisher", "via", "why", "term"}
EXAMPLES = 5

Key = tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """One change, said in policy language.

    ``level`` is the semantic-version bump the change needs: ``major`` when it
    can change a result's rules (bands, shares, dates, cut points, who is in a
    population), ``minor`` when it moves individual patients but keeps the
    rules (codes added or removed), ``patch`` for wording only (labels,
    interpretations, citations), ``none`` for the version and status themselves.
    """

    section: str
    subject: str
    summary: str
    level: str = "major"
    old: Any = None
    new: Any = None
    details: tuple[str, ...] = ()


@dataclass
class RulesetDiff:
    old: tuple[str, str, str]  # id, version, sha256
    new: tuple[str, str, str]
    changes: list[Change] = field(default_factory=list)

    SECTIONS = (
        "Ruleset",
        "Components",
        "Bands",
        "Dates and periods",
        "Activation instruments",
        "Measurements",
        "Populations and cohort rules",
        "Milestones",
        "LTC categories",
        "Code lists",
        "Care-plan views",
        "Interpretations and citations",
        "Other changes",
    )

    def by_section(self) -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {s: [] for s in self.SECTIONS}
        for c in self.changes:
            out.setdefault(c.section, []).append(c)
        return {k: v for k, v in out.items() if v}

    @property
    def required_bump(self) -> str:
        return max((c.level for c in self.changes), key=LEVELS.index, default="none")

    @property
    def version_bump(self) -> str | None:
        """The bump from the old version to the new one (None when the ids differ or a version is not semver)."""
        if self.old[0] != self.new[0]:
            return None
        try:
            a, b = parse_version(self.old[1]), parse_version(self.new[1])
        except ValueError:
            return None
        if b[0] != a[0]:
            return "major" if b[0] > a[0] else "backwards"
        if b[1] != a[1]:
            return "minor" if b[1] > a[1] else "backwards"
        if b[2] != a[2]:
            return "patch" if b[2] > a[2] else "backwards"
        return "none"

    @property
    def version_problem(self) -> str | None:
        """Why the new version number does not fit the changes, if it does not."""
        bump, need = self.version_bump, self.required_bump
        if bump is None:
            return None
        if bump == "backwards":
            return f"the version goes backwards ({self.old[1]} to {self.new[1]})"
        if LEVELS.index(bump) < LEVELS.index(need):
            return (
                f"the version goes from {self.old[1]} to {self.new[1]} (a {bump} change), but these changes need a {need} version"
            )
        return None


# --------------------------------------------------------------------------- structure helpers


def keyed(value: Any) -> Any:
    """The document with id'd lists turned into mappings keyed by id, so items compare by id, not position."""
    if isinstance(value, dict):
        return {k: keyed(v) for k, v in value.items()}
    if isinstance(value, list) and value and all(identity(i) is not None for i in value):
        return {_id_text(identity(i)): keyed(i) for i in value}
    if isinstance(value, list):
        return [keyed(v) for v in value]
    return value


def _id_text(ident: Any) -> str:
    return str(ident[1]) if ident[0] == "id" else f"{ident[1]}:{ident[2]}"


def flatten(value: Any, path: Key = ()) -> dict[Key, Any]:
    """Leaf values by path; plain lists (bands, option lists) are one leaf each."""
    if isinstance(value, dict) and value:
        out: dict[Key, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, path + (str(k),)))
        return out
    return {path: value}


def text(value: Any) -> str:
    """A value as a policy reader would read it."""
    if value is MISSING or value is None:
        return "(none)"
    return value_text(value)


def _pct(value: Any) -> str:
    f = to_fraction(value)
    return (f"{f.numerator}" if f.denominator == 1 else f"{float(f):g}") + "%"


def rule_text(rule: Any) -> str:
    """A population rule on one line: all of (population ltc_identified; measured baseline)."""
    try:
        return parse_rule(rule).text()
    except (KeyError, TypeError):  # no rule (a population added or removed)
        return text(rule)


# --------------------------------------------------------------------------- the diff


class _Differ:
    def __init__(self, old: Ruleset, new: Ruleset) -> None:
        self.old, self.new = old, new
        self.ko, self.kn = keyed(old.doc), keyed(new.doc)
        fo, fn = flatten(self.ko), flatten(self.kn)
        self.changed = {p for p in fo.keys() | fn.keys() if fo.get(p, MISSING) != fn.get(p, MISSING)}
        self.flat_old, self.flat_new = fo, fn
        self.covered: set[Key] = set()
        self.changes: list[Change] = []

    def add(self, section: str, subject: str, summary: str, level: str = "major", **kw: Any) -> None:
        self.changes.append(Change(section, subject, summary, level, **kw))

    def added_or_removed(
        self,
        section: str,
        subject: str,
        a: Any,
        b: Any,
        path: Key,
        describe: Callable[..., str],  # (the side that has it, "added" or "removed") -> the summary
        level: str = "major",
        **kw: Any,
    ) -> bool:
        """When ``subject`` is in one ruleset only, say so (``describe(the side that has it, "added" or "removed")``)."""
        if a is not None and b is not None:
            return False
        self.add(section, subject, describe(b if a is None else a, "added" if a is None else "removed"), level, **kw)
        self.cover(path)
        return True

    def cover(self, *prefixes: Key) -> None:
        self.covered.update(prefixes)

    def is_covered(self, path: Key) -> bool:
        return any(path[:n] in self.covered for n in range(len(path) + 1))

    def get(self, doc: Any, *path: str) -> Any:
        for p in path:
            if not isinstance(doc, dict) or p not in doc:
                return MISSING
            doc = doc[p]
        return doc

    def both(self, *path: str) -> tuple[Any, Any]:
        return self.get(self.ko, *path), self.get(self.kn, *path)

    def run(self) -> list[Change]:
        self.ruleset_identity()
        self.components()
        self.periods()
        self.instruments()
        self.measurements()
        self.populations()
        self.milestones()
        self.categories()
        self.code_lists()
        self.interpretations()
        self.other()
        return self.changes

    # -- version, status, effective period, weighting
    def ruleset_identity(self) -> None:
        for key, what in (("id", "id"), ("version", "version"), ("status", "status"), ("title", "title")):
            a, b = self.both(key)
            if a != b:
                level = "patch" if key == "title" else "none"
                self.add("Ruleset", key, f"{what}: {text(a)} → {text(b)}", level, old=a, new=b)
        self.cover(("id",), ("version",), ("status",), ("title",), ("schema_version",))
        for edge in ("from", "to"):
            a, b = self.both("effective", edge)
            if a != b:
                self.add("Ruleset", "effective", f"in effect {edge}: {text(a)} → {text(b)}", old=a, new=b)
        self.cover(("effective",))
        a, b = self.both("indicator", "weighting_percent")
        if a != b:
            self.add(
                "Ruleset", "weighting", f"the indicator's weighting: {_pct(a)} → {_pct(b)} of the contract value", old=a, new=b
            )
        self.cover(("indicator", "weighting_percent"))

    # -- components, shares and bands
    def components(self) -> None:
        co, cn = self.both("components")
        co, cn = co if isinstance(co, dict) else {}, cn if isinstance(cn, dict) else {}
        for cid in [*co, *(c for c in cn if c not in co)]:
            a: Any = co.get(cid)
            b: Any = cn.get(cid)
            if self.added_or_removed(
                "Components",
                cid,
                a,
                b,
                ("components", cid),
                lambda comp, word, cid=cid: (
                    f"component {cid} ({comp.get('name', '')}, {comp.get('year')}) {word}, "
                    f"worth {_pct(comp.get('share_percent', 0))} of the year"
                ),
                old=a,
                new=b,
            ):
                continue
            base = ("components", cid)
            if a.get("share_percent") != b.get("share_percent"):
                self.add(
                    "Components",
                    cid,
                    f"{cid} share of {b.get('year')}'s value: {_pct(a['share_percent'])} → {_pct(b['share_percent'])}",
                    old=a.get("share_percent"),
                    new=b.get("share_percent"),
                )
            for key, what in (("numerator", "numerator"), ("denominator", "denominator"), ("year", "year")):
                if a.get(key) != b.get(key):
                    self.add("Components", cid, f"{cid} {what}: {text(a.get(key))} → {text(b.get(key))}")
            if a.get("name") != b.get("name"):
                self.add("Components", cid, f"{cid} name: {text(a.get('name'))} → {text(b.get('name'))}", "patch")
            if a.get("bands") != b.get("bands") or a.get("bands_on") != b.get("bands_on"):
                old_rows = self.band_rows(self.old, self.old.component(cid)) if "bands" in a else []
                new_rows = self.band_rows(self.new, self.new.component(cid)) if "bands" in b else []
                self.add("Bands", cid, f"{cid} ({b.get('name', '')}): bands moved", old=old_rows, new=new_rows)
            if a.get("attainment") != b.get("attainment"):
                self.add(
                    "Bands",
                    cid,
                    f"{cid} ({b.get('name', '')}): attainment levels changed",
                    old=[self.level_row(x) for x in a.get("attainment") or []],
                    new=[self.level_row(x) for x in b.get("attainment") or []],
                )
            self.cover(
                *(
                    base + (k,)
                    for k in ("share_percent", "numerator", "denominator", "year", "name", "bands", "bands_on", "attainment")
                )
            )

    @staticmethod
    def band_rows(r: Ruleset, comp: dict[str, Any]) -> list[str]:
        unit = "" if comp.get("bands_on") == "numerator_count" else "%"
        rows = []
        for band, spec in zip(r.bands(comp), comp["bands"], strict=True):
            label = f" ({spec['label']})" if spec.get("label") else ""
            rows.append(f"{band.describe(unit)} pays {_pct(spec['pays_percent'])}{label}")
        return rows

    @staticmethod
    def level_row(level: dict[str, Any]) -> str:
        req = ", ".join(f"{k} by {v}" for k, v in (level.get("requires") or {}).items()) or "otherwise"
        return f"{level.get('label')} ({req}) pays {_pct(level.get('pays_percent', 0))}"

    def keyed_pairs(self, key: str) -> Iterator[tuple[str, Any, Any]]:
        """(id, old, new) for every id in either ruleset's mapping ``key``; a side without it gives None."""
        old, new = self.both(key)
        old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
        for item in [*old, *(i for i in new if i not in old)]:
            yield item, old.get(item), new.get(item)

    # -- periods and quarters
    def periods(self) -> None:
        for pid, a, b in self.keyed_pairs("periods"):
            if self.added_or_removed(
                "Dates and periods",
                pid,
                a,
                b,
                ("periods", pid),
                lambda p, w, pid=pid: f"period {pid} {w}: {p.get('from')} to {p.get('to')}",
            ):
                continue
            if (a.get("from"), a.get("to")) != (b.get("from"), b.get("to")):
                self.add(
                    "Dates and periods",
                    pid,
                    f"period {pid}: {a.get('from')} to {a.get('to')} → {b.get('from')} to {b.get('to')}",
                    old=(a.get("from"), a.get("to")),
                    new=(b.get("from"), b.get("to")),
                )
            if a.get("label") != b.get("label"):
                self.add(
                    "Dates and periods", pid, f"period {pid} label: {text(a.get('label'))} → {text(b.get('label'))}", "patch"
                )
            qa, qb = a.get("quarters") or {}, b.get("quarters") or {}
            qa, qb = qa if isinstance(qa, dict) else {}, qb if isinstance(qb, dict) else {}
            for qid in [*qa, *(q for q in qb if q not in qa)]:
                x, y = qa.get(qid), qb.get(qid)
                if x != y:
                    old_q = f"{x.get('from')} to {x.get('to')}" if x else "(none)"
                    new_q = f"{y.get('from')} to {y.get('to')}" if y else "(removed)"
                    self.add("Dates and periods", f"{pid}.{qid}", f"quarter {pid}.{qid}: {old_q} → {new_q}", old=x, new=y)
            self.cover(*(("periods", pid, k) for k in ("from", "to", "label", "quarters")))

    # -- PAM levels and GPPS options
    def instruments(self) -> None:
        pam_o, pam_n = self.both("instruments", "pam")
        if isinstance(pam_o, dict) and isinstance(pam_n, dict):
            if pam_o.get("levels") != pam_n.get("levels"):
                self.add(
                    "Activation instruments",
                    "pam",
                    "PAM level cut points changed",
                    old=[f"level {lv['level']} up to {lv['score_at_most']}" for lv in pam_o.get("levels") or []],
                    new=[f"level {lv['level']} up to {lv['score_at_most']}" for lv in pam_n.get("levels") or []],
                )
            for key, what in (
                ("low_activation_levels", "low activation PAM levels"),
                ("score_range", "PAM score range"),
                ("level_range", "PAM level range"),
            ):
                if pam_o.get(key) != pam_n.get(key):
                    self.add("Activation instruments", "pam", f"{what}: {text(pam_o.get(key))} → {text(pam_n.get(key))}")
            self.cover(*(("instruments", "pam", k) for k in ("levels", "low_activation_levels", "score_range", "level_range")))
        g_o, g_n = self.both("instruments", "gpps")
        if isinstance(g_o, dict) and isinstance(g_n, dict):
            qo, qn = g_o.get("questions") or {}, g_n.get("questions") or {}
            for qid in [*qo, *(q for q in qn if q not in qo)]:
                a, b = qo.get(qid) or {}, qn.get(qid) or {}
                oa = {o["answer"]: o["points"] for o in a.get("options") or []}
                ob = {o["answer"]: o["points"] for o in b.get("options") or []}
                for ans in [*oa, *(x for x in ob if x not in oa)]:
                    if oa.get(ans, MISSING) != ob.get(ans, MISSING):
                        self.add(
                            "Activation instruments",
                            f"gpps {qid}",
                            f"GPPS {qid} answer {ans!r}: {self.points(oa.get(ans, MISSING))} → {self.points(ob.get(ans, MISSING))}",
                        )
                for key in ("field", "text"):
                    if a.get(key) != b.get(key):
                        level = "patch" if key == "text" else "major"
                        self.add(
                            "Activation instruments",
                            f"gpps {qid}",
                            f"GPPS {qid} {key}: {text(a.get(key))} → {text(b.get(key))}",
                            level,
                        )
                self.cover(*(("instruments", "gpps", "questions", qid, k) for k in ("options", "field", "text", "id")))
            a, b = g_o.get("low_activation_points_at_most"), g_n.get("low_activation_points_at_most")
            if a != b:
                self.add(
                    "Activation instruments", "gpps", f"GPPS low activation: at most {text(a)} points → at most {text(b)} points"
                )
            self.cover(("instruments", "gpps", "low_activation_points_at_most"))
        a, b = self.both("instruments", "preference")
        if a != b:
            self.add("Activation instruments", "preference", f"instrument preference on a tie: {text(a)} → {text(b)}")
        self.cover(("instruments", "preference"))

    @staticmethod
    def points(value: Any) -> str:
        return "(not an option)" if value is MISSING else f"{text(value)} point(s)"

    # -- measurement windows
    def measurements(self) -> None:
        for mid, a, b in self.keyed_pairs("measurements"):
            if self.added_or_removed(
                "Measurements", mid, a, b, ("measurements", mid), lambda _m, w, mid=mid: f"measurement {mid} {w}"
            ):
                continue
            for key, what in (
                ("within", "window (period)"),
                ("pick", "which assessment"),
                ("respondent", "respondent"),
                ("same_instrument_as", "same instrument as"),
            ):
                if a.get(key) != b.get(key):
                    self.add("Measurements", mid, f"measurement {mid} {what}: {text(a.get(key))} → {text(b.get(key))}")
                self.cover(("measurements", mid, key))

    # -- populations (cohort rules)
    def populations(self) -> None:
        for pid, a, b in self.keyed_pairs("populations"):
            if self.added_or_removed(
                "Populations and cohort rules",
                pid,
                a,
                b,
                ("populations", pid),
                lambda p, w, pid=pid: f"population {pid} ({p.get('label')}) {w}: {rule_text(p.get('rule'))}",
            ):
                continue
            if a.get("rule") != b.get("rule"):
                self.add(
                    "Populations and cohort rules",
                    pid,
                    f"population {pid} ({b.get('label')}): rule changed",
                    old=[rule_text(a.get("rule"))],
                    new=[rule_text(b.get("rule"))],
                )
            if a.get("entity") != b.get("entity"):
                self.add("Populations and cohort rules", pid, f"population {pid} counts {a.get('entity')} → {b.get('entity')}")
            if a.get("label") != b.get("label"):
                self.add(
                    "Populations and cohort rules", pid, f"population {pid} label: {a.get('label')} → {b.get('label')}", "patch"
                )
            self.cover(*(("populations", pid, k) for k in ("rule", "entity", "label")))

    # -- milestones
    def milestones(self) -> None:
        for mid, a, b in self.keyed_pairs("milestones"):
            if self.added_or_removed(
                "Milestones",
                mid,
                a,
                b,
                ("milestones", mid),
                lambda m, w, mid=mid: f"milestone {mid} {w}: due {m.get('due')}, {m.get('description')}",
            ):
                continue
            for key, what in (("due", "due"), ("year", "year"), ("check", "check")):
                if a.get(key) != b.get(key):
                    self.add("Milestones", mid, f"milestone {mid} {what}: {text(a.get(key))} → {text(b.get(key))}")
            if a.get("description") != b.get("description"):
                self.add(
                    "Milestones", mid, f"milestone {mid} description: {a.get('description')} → {b.get('description')}", "patch"
                )
            self.cover(*(("milestones", mid, k) for k in ("due", "year", "check", "description")))

    # -- LTC categories and shared codes
    def categories(self) -> None:
        co, cn = self.both("ltc", "categories")
        co, cn = co if isinstance(co, dict) else {}, cn if isinstance(cn, dict) else {}
        for cid in [*co, *(c for c in cn if c not in co)]:
            a: Any = co.get(cid)
            b: Any = cn.get(cid)
            rs = self.new if a is None else self.old  # the ruleset that has the category, when only one does
            if self.added_or_removed(
                "LTC categories",
                cid,
                a,
                b,
                ("ltc", "categories", cid),
                lambda cat, w, cid=cid, rs=rs: (
                    f"category {cid} ({cat.get('label')}) {w}, code lists {', '.join(cat.get('code_lists') or [])} "
                    f"({sum(len(rs.code_lists[x].codes) for x in cat.get('code_lists') or [] if x in rs.code_lists)} codes)"
                ),
            ):
                continue
            if a.get("label") != b.get("label"):
                self.add("LTC categories", cid, f"category {cid} label: {a.get('label')} → {b.get('label')}", "patch")
            if a.get("code_lists") != b.get("code_lists"):
                self.add(
                    "LTC categories",
                    cid,
                    f"category {cid} code lists: {text(a.get('code_lists'))} → {text(b.get('code_lists'))}",
                    "minor",
                )
            if a.get("lookback_years") != b.get("lookback_years"):
                self.add(
                    "LTC categories",
                    cid,
                    f"category {cid} look-back: {text(a.get('lookback_years'))} → {text(b.get('lookback_years'))} years",
                )
            self.cover(*(("ltc", "categories", cid, k) for k in ("label", "code_lists", "lookback_years", "id")))
        so, sn = self.both("ltc", "shared_codes")
        so, sn = so if isinstance(so, dict) else {}, sn if isinstance(sn, dict) else {}
        for key in [*so, *(k for k in sn if k not in so)]:
            x, y = so.get(key), sn.get(key)
            if x is None or y is None:
                e: Any = y if x is None else x
                self.add(
                    "LTC categories",
                    "shared codes",
                    f"shared code {e.get('code')} ({e.get('system')}) {'declared' if x is None else 'no longer declared'} in "
                    f"{' and '.join(e.get('categories') or [])}: {e.get('why')}",
                    "minor",
                )
            elif x != y:
                self.add("LTC categories", "shared codes", f"shared code {y.get('code')}: {text(x)} → {text(y)}", "patch")
        self.cover(("ltc", "shared_codes"))
        a, b = self.both("ltc", "direct_recording_code_system")
        if a != b:
            self.add("LTC categories", "direct recording", f"code system for directly recorded categories: {text(a)} → {text(b)}")
        self.cover(("ltc", "direct_recording_code_system"))

    # -- code lists: codes added and removed
    def code_lists(self) -> None:
        lo, ln = self.both("code_lists")
        lo, ln = lo if isinstance(lo, dict) else {}, ln if isinstance(ln, dict) else {}
        owners = self.list_owners()
        for lid in [*lo, *(x for x in ln if x not in lo)]:
            a: Any = lo.get(lid)
            b: Any = ln.get(lid)
            owner = f" ({owners[lid]})" if lid in owners else ""
            cl = (self.new if a is None else self.old).code_lists.get(lid)  # of the ruleset that has it
            n = len(cl.codes) if cl else 0
            if self.added_or_removed(
                "Code lists",
                lid,
                a,
                b,
                ("code_lists", lid),
                lambda spec, w, lid=lid, owner=owner, n=n: (
                    f"code list {lid}{owner} {w}: {spec.get('title')}, {n} {spec.get('system')} codes"
                ),
                "minor",
                details=tuple(self.examples(cl.codes, cl.terms) if cl else ()),
            ):
                continue
            old_cl, new_cl = self.old.code_lists.get(lid), self.new.code_lists.get(lid)
            if old_cl and new_cl:
                added = sorted(set(new_cl.codes) - set(old_cl.codes))
                removed = sorted(set(old_cl.codes) - set(new_cl.codes))
                if added:
                    self.add(
                        "Code lists",
                        lid,
                        f"code list {lid}{owner}: {len(added)} code(s) added",
                        "minor",
                        new=added,
                        details=tuple(self.examples(added, new_cl.terms)),
                    )
                if removed:
                    self.add(
                        "Code lists",
                        lid,
                        f"code list {lid}{owner}: {len(removed)} code(s) removed",
                        "minor",
                        old=removed,
                        details=tuple(self.examples(removed, old_cl.terms)),
                    )
            meta = [k for k in ("system", "file", "title", "version", "sources", "notes", "uri") if a.get(k) != b.get(k)]
            if meta:
                level = "patch" if set(meta) <= {"title", "notes", "version", "sources", "file"} else "major"
                self.add(
                    "Code lists",
                    lid,
                    f"code list {lid}{owner}: {', '.join(meta)} changed",
                    level,
                    details=tuple(f"{k}: {text(a.get(k, MISSING))} → {text(b.get(k, MISSING))}" for k in meta),
                )
            self.cover(("code_lists", lid))
        a, b = self.both("conversation_codes", "code_lists")
        if a != b:
            self.add("Code lists", "conversations", f"conversation code lists: {text(a)} → {text(b)}", "minor")
        self.cover(("conversation_codes", "code_lists"))

    def list_owners(self) -> dict[str, str]:
        owners: dict[str, str] = {}
        for doc in (self.new.doc, self.old.doc):
            for cat in doc["ltc"]["categories"]:
                for lid in cat.get("code_lists") or []:
                    owners.setdefault(lid, f"category {cat['id']}")
            for lid in doc["conversation_codes"]["code_lists"]:
                owners.setdefault(lid, "conversations")
        return owners

    @staticmethod
    def examples(found: Any, terms: Mapping[str, str]) -> list[str]:
        ordered = sorted(found)
        shown = [f"{c} {terms.get(c, '')}".strip() for c in ordered[:EXAMPLES]]
        if len(ordered) > EXAMPLES:
            shown.append(f"... and {len(ordered) - EXAMPLES} more")
        return shown

    # -- interpretations and citations, wherever they are
    def interpretations(self) -> None:
        owners: dict[Key, set[str]] = {}
        for path in sorted(self.changed):
            for n, part in enumerate(path):
                if part in ("citation", "interpretation") and not self.is_covered(path[:n]):
                    owners.setdefault(path[:n], set()).add(part)
                    break
        for owner, parts in sorted(owners.items()):
            for part in sorted(parts):
                a, b = self.get(self.ko, *owner, part), self.get(self.kn, *owner, part)
                keys = ("decision", "why") if part == "interpretation" else ("source", "section", "quote")
                details = tuple(
                    line
                    for k in keys
                    if self.get(a, k) != self.get(b, k)
                    for line in (f"{k} was: {text(self.get(a, k))}", f"{k} now: {text(self.get(b, k))}")
                )
                word = "added" if a is MISSING else "removed" if b is MISSING else "changed"
                self.add(
                    "Interpretations and citations",
                    describe_owner(owner),
                    f"{part} of {describe_owner(owner)} {word}",
                    "patch",
                    old=a if a is not MISSING else None,
                    new=b if b is not MISSING else None,
                    details=details,
                )
                self.cover(owner + (part,))
        so, sn = self.both("sources")
        so, sn = so if isinstance(so, dict) else {}, sn if isinstance(sn, dict) else {}
        for sid in [*so, *(s for s in sn if s not in so)]:
            if so.get(sid) != sn.get(sid):
                word = "added" if sid not in so else "removed" if sid not in sn else "changed"
                shown = (sn.get(sid) or so.get(sid) or {}).get("title", "")
                self.add("Interpretations and citations", f"source {sid}", f"source {sid} {word}: {shown}", "patch")
        self.cover(("sources",))

    def other(self) -> None:
        for path in sorted(p for p in self.changed if not self.is_covered(p)):
            a, b = self.flat_old.get(path, MISSING), self.flat_new.get(path, MISSING)
            level = "patch" if path[-1] in WORDING_KEYS else "major"
            section = "Other changes"
            if path[0] == "care_planning":
                # The care-plan views pay nothing: a change to them changes what the commissioner sees, not the money.
                section, level = "Care-plan views", "patch" if path[-1] in WORDING_KEYS else "minor"
            self.add(section, ".".join(path), f"{'.'.join(path)}: {text(a)} → {text(b)}", level, old=a, new=b)


def describe_owner(path: Key) -> str:
    """A keyed path in words: ('components', 'y1.plan') -> 'component y1.plan'."""
    names = {
        ("components",): "component",
        ("populations",): "population",
        ("periods",): "period",
        ("measurements",): "measurement",
        ("milestones",): "milestone",
        ("ltc", "categories"): "LTC category",
        ("instruments",): "instrument",
    }
    for prefix, word in names.items():
        if path[: len(prefix)] == prefix and len(path) == len(prefix) + 1:
            return f"{word} {path[-1]}"
    return ".".join(path) or "the ruleset"


def diff_rulesets(old: Ruleset, new: Ruleset) -> RulesetDiff:
    """Every difference between two resolved rulesets, grouped for a policy reader."""
    return RulesetDiff((old.id, old.version, old.sha256), (new.id, new.version, new.sha256), _Differ(old, new).run())
