"""The rule language as typed values: one frozen class per rule kind, parsed from a population's YAML rule.

A population's ``rule`` in the ruleset is a tree of one-key mappings (``all_of``, ``ltc``, ``cohort`` ...).
:func:`parse_rule` turns it into these nodes once, so the checker, the SQL compiler
(:mod:`cquin.engine.compile_rules`), the breakdowns and the ruleset diff all read the same typed tree rather
than each re-reading the dict and repeating the list of kinds.

Each class says which YAML key it is (``@rule_kind``), who it can test (patients, staff or either), its
children, the references it makes that the checker must resolve, and its one-line text for the ruleset diff.
Adding a rule kind is the recipe in docs/architecture.md: its schema under ``$defs.rule`` in
``cquin/schemas/ruleset.schema.json``, a class here, and a compile function in ``compile_rules.py``.

Long because the language is: one short class per rule kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from cquin.config.schema_errors import canonical_json

Path = tuple[str | int, ...]


class CheckContext(Protocol):
    """What a node needs to check its references: the ruleset's data and a way to report a problem."""

    doc: dict[str, Any]

    def error(self, path: Path, message: str) -> None: ...

    def date_ref(self, path: Path, ref: Any) -> dt.date | None: ...


@dataclass(frozen=True)
class Rule:
    """A node of a population's rule tree."""

    kind: ClassVar[str]  # the YAML key
    applies_to: ClassVar[str | None] = None  # "patient" or "staff" for a leaf that tests only those; None for either
    reads: ClassVar[tuple[str, ...]] = ()  # the canonical tables the test reads (for the missing-evidence check)

    @classmethod
    def parse(cls, value: Any) -> Rule:
        raise NotImplementedError

    def children(self) -> Iterator[tuple[Path, Rule]]:
        """The nodes under this one, each with its path below this node's key."""
        return iter(())

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        """Report references this node makes that the ruleset does not define (``path`` is this node's value)."""

    def text(self) -> str:
        """The node on one line, as the ruleset diff shows it."""
        raise NotImplementedError


RULE_KINDS: dict[str, type[Rule]] = {}
R = TypeVar("R", bound=type[Rule])


def rule_kind(key: str, *, applies_to: str | None = None, reads: tuple[str, ...] = ()) -> Callable[[R], R]:
    """Register a node class as the rule kind written ``key:`` in a ruleset (``reads``: the canonical tables it reads)."""

    def register(cls: R) -> R:
        if key in RULE_KINDS and RULE_KINDS[key] is not cls:
            raise ValueError(f"rule kind {key!r} is registered twice")
        cls.kind = key
        cls.applies_to = applies_to
        cls.reads = reads
        RULE_KINDS[key] = cls
        return cls

    return register


def parse_rule(spec: Any) -> Rule:
    """The typed tree of a (schema-valid) rule; ``KeyError`` for a kind no class is registered for."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise TypeError(f"a rule is a mapping with one key, not {spec!r}")
    ((key, value),) = spec.items()
    return RULE_KINDS[key].parse(value)


@dataclass(frozen=True)
class Population:
    """A named set of patients (or staff) that components count: who is in is decided by its rule."""

    id: str
    entity: str  # "patient" or "staff"
    label: str
    rule: Rule

    @classmethod
    def parse(cls, pid: str, spec: dict[str, Any]) -> Population:
        return cls(id=pid, entity=str(spec["entity"]), label=str(spec["label"]), rule=parse_rule(spec["rule"]))


@dataclass(frozen=True)
class Measurement:
    """Which assessment measures a patient's activation at a point in the scheme (e.g. the baseline)."""

    id: str
    label: str
    respondent: str  # whose own answers count: "patient" or "carer"
    within: str  # the period the assessment is dated in
    pick: str  # "earliest" or "latest" in that period
    same_instrument_as: str | None = None  # another measurement whose instrument this one must use

    @classmethod
    def parse(cls, mid: str, spec: dict[str, Any]) -> Measurement:
        return cls(
            id=mid,
            label=str(spec["label"]),
            respondent=str(spec["respondent"]),
            within=str(spec["within"]),
            pick=str(spec["pick"]),
            same_instrument_as=spec.get("same_instrument_as"),
        )


def walk(node: Rule, path: Path = ()) -> Iterator[tuple[Path, Rule]]:
    """Every node of a tree with its path (each node's path ends at its kind's key), parents before children."""
    here = path + (node.kind,)
    yield path, node
    for below, child in node.children():
        yield from walk(child, here + below)


def population_order(doc: dict[str, Any], entity: str | None = None) -> list[str]:
    """Population ids in dependency order (each after every population its rule names), ties in declared order."""
    pops = doc["populations"]
    deps = {
        pid: {n.population for _, n in walk(parse_rule(p["rule"])) if isinstance(n, PopulationRef)} & set(pops)
        for pid, p in pops.items()
    }
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(pops):
        ready = [pid for pid in pops if pid not in placed and deps[pid] <= placed]
        if not ready:  # a cycle cannot pass validation; keep the rest as declared rather than loop
            ready = [pid for pid in pops if pid not in placed]
        order.append(ready[0])
        placed.add(ready[0])
    return [pid for pid in order if entity is None or pops[pid]["entity"] == entity]


N = TypeVar("N", bound=Rule)


def first_test(doc: dict[str, Any], kind: type[N]) -> N | None:
    """The first test of a kind in the patient populations, in dependency order (e.g. the LTC test that
    identifies patients, which the report's LTC breakdowns follow)."""
    for pid in population_order(doc, "patient"):
        for _, node in walk(parse_rule(doc["populations"][pid]["rule"])):
            if isinstance(node, kind):
                return node
    return None


def value_text(value: Any) -> str:
    """A YAML value on one line: lists and mappings as compact JSON, everything else as written."""
    if isinstance(value, (dict, list, tuple)):
        return canonical_json(list(value) if isinstance(value, tuple) else value).replace('","', '", "').replace('":', '": ')
    return str(value)


def _fields(kind: str, pairs: list[tuple[str, Any]]) -> str:
    return f"{kind} " + ", ".join(f"{k} {value_text(v)}" for k, v in pairs if v is not None)


def _unknown_measurement(ctx: CheckContext, path: Path, mid: Any, *, list_known: bool) -> None:
    measurements = ctx.doc.get("measurements") or {}
    if mid not in measurements:
        known = f" (known: {', '.join(measurements)})" if list_known else ""
        ctx.error(path, f"unknown measurement {mid!r}{known}")


# --------------------------------------------------------------------------- combinations


@dataclass(frozen=True)
class _Combination(Rule):
    rules: tuple[Rule, ...]

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(tuple(parse_rule(v) for v in value))

    def children(self) -> Iterator[tuple[Path, Rule]]:
        return (((i,), r) for i, r in enumerate(self.rules))

    def text(self) -> str:
        return f"{self.kind.replace('_', ' ')} ({'; '.join(r.text() for r in self.rules)})"


@rule_kind("all_of")
@dataclass(frozen=True)
class AllOf(_Combination):
    """Holds when every child holds."""


@rule_kind("any_of")
@dataclass(frozen=True)
class AnyOf(_Combination):
    """Holds when any child holds."""


@rule_kind("not")
@dataclass(frozen=True)
class Not(Rule):
    """Holds when its child does not."""

    rule: Rule

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(parse_rule(value))

    def children(self) -> Iterator[tuple[Path, Rule]]:
        yield (), self.rule

    def text(self) -> str:
        return f"not ({self.rule.text()})"


@rule_kind("population")
@dataclass(frozen=True)
class PopulationRef(Rule):
    """Holds for the members of another population of the same entity."""

    population: str

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(str(value))

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        pops = ctx.doc.get("populations") or {}
        if self.population not in pops:
            ctx.error(path, f"unknown population {self.population!r}")
        elif pops[self.population].get("entity") != entity:
            ctx.error(path, f"population {self.population!r} counts {pops[self.population].get('entity')}, not {entity}")

    def text(self) -> str:
        return f"population {self.population}"


# --------------------------------------------------------------------------- patient tests


@rule_kind("served", applies_to="patient", reads=("patients",))
@dataclass(frozen=True)
class Served(Rule):
    """Under the provider's care during a period (an episode overlapping it) or on a day."""

    during: str | None = None
    on: str | None = None

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(during=value.get("during"), on=value.get("on"))

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        if self.during is not None and self.during not in (ctx.doc.get("periods") or {}):
            ctx.error(path + ("during",), f"unknown period {self.during!r}")
        if self.on is not None:
            ctx.date_ref(path + ("on",), self.on)

    def text(self) -> str:
        return _fields(self.kind, [("during", self.during), ("on", self.on)])


@rule_kind("ltc", applies_to="patient", reads=("conditions",))
@dataclass(frozen=True)
class Ltc(Rule):
    """A condition in an LTC category recorded by a date (within the category's look-back, if it has one)."""

    recorded_by: str
    categories: tuple[str, ...] | None = None  # None: every category

    @classmethod
    def parse(cls, value: Any) -> Rule:
        cats = value.get("categories")
        return cls(recorded_by=value["recorded_by"], categories=tuple(cats) if cats else None)

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        ctx.date_ref(path + ("recorded_by",), self.recorded_by)
        known = {c.get("id") for c in (ctx.doc.get("ltc") or {}).get("categories") or []}
        for i, c in enumerate(self.categories or ()):
            if c not in known:
                ctx.error(path + ("categories", i), f"unknown LTC category {c!r}")

    def text(self) -> str:
        return _fields(self.kind, [("recorded_by", self.recorded_by), ("categories", self.categories)])


@dataclass(frozen=True)
class _OfMeasurement(Rule):
    measurement: str

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(str(value))

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        _unknown_measurement(ctx, path, self.measurement, list_known=True)

    def text(self) -> str:
        return f"{self.kind} {self.measurement}"


@rule_kind("measured", applies_to="patient", reads=("assessments",))
@dataclass(frozen=True)
class Measured(_OfMeasurement):
    """Has an assessment chosen for a measurement (e.g. the baseline)."""


@rule_kind("low_activation", applies_to="patient", reads=("assessments",))
@dataclass(frozen=True)
class LowActivation(_OfMeasurement):
    """A measurement's chosen assessment scores as low activation."""


@dataclass(frozen=True)
class _FromTo(Rule):
    start: str  # written ``from``
    end: str  # written ``to``

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(start=value["from"], end=value["to"])

    def text(self) -> str:
        return _fields(self.kind, [("from", self.start), ("to", self.end)])


@rule_kind("improved", applies_to="patient", reads=("assessments",))
@dataclass(frozen=True)
class Improved(_FromTo):
    """One measurement's value (``to``) is higher than another's (``from``), on the same instrument."""

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        for key, mid in (("from", self.start), ("to", self.end)):
            _unknown_measurement(ctx, path + (key,), mid, list_known=False)


@rule_kind("conversation", applies_to="patient", reads=("conversations",))
@dataclass(frozen=True)
class Conversation(_FromTo):
    """A care and support planning conversation held between two dates (inclusive)."""

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        a = ctx.date_ref(path + ("from",), self.start)
        b = ctx.date_ref(path + ("to",), self.end)
        if a and b and a > b:
            ctx.error(path + ("to",), f"the conversation window ends ({b}) before it starts ({a})")


@rule_kind("cohort", applies_to="patient")
@dataclass(frozen=True)
class Cohort(Rule):
    """The members of a rule, changed by the agreed overrides of one cohort of the overrides file."""

    members: Rule
    overrides: str
    include_requires: Rule | None = None

    @classmethod
    def parse(cls, value: Any) -> Rule:
        requires = value.get("include_requires")
        return cls(
            members=parse_rule(value["members"]),
            overrides=str(value["overrides"]),
            include_requires=parse_rule(requires) if requires is not None else None,
        )

    def children(self) -> Iterator[tuple[Path, Rule]]:
        yield ("members",), self.members
        if self.include_requires is not None:
            yield ("include_requires",), self.include_requires

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        # The overrides file's cohorts are part of its published schema (overrides.schema.json), not policy.
        if self.overrides not in ("year1", "year2"):
            ctx.error(path + ("overrides",), "overrides must name a cohort of the overrides file: year1 or year2")

    def text(self) -> str:
        extra = f", includes require {self.include_requires.text()}" if self.include_requires is not None else ""
        return f"cohort of {self.members.text()} with the {self.overrides} overrides{extra}"


# --------------------------------------------------------------------------- staff tests


@rule_kind("cares_for_cohort", applies_to="staff", reads=("staff",))
@dataclass(frozen=True)
class CaresForCohort(Rule):
    """The member of staff is (or is not) identified as caring for the patient cohort."""

    value: bool

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(bool(value))

    def text(self) -> str:
        return f"{self.kind} {self.value}"


@rule_kind("trained", applies_to="staff", reads=("training",))
@dataclass(frozen=True)
class Trained(Rule):
    """Training completed by a date (and, if given, on or after another)."""

    by: str
    start: str | None = None  # written ``from``

    @classmethod
    def parse(cls, value: Any) -> Rule:
        return cls(by=value["by"], start=value.get("from"))

    def check(self, ctx: CheckContext, path: Path, entity: str | None) -> None:
        ctx.date_ref(path + ("by",), self.by)
        if self.start is not None:
            ctx.date_ref(path + ("from",), self.start)

    def text(self) -> str:
        return _fields(self.kind, [("by", self.by), ("from", self.start)])
