"""Reasons as data: a template (the words, fixed when the rules are compiled) and the values that fill it.

Every node table's ``reason`` is a ``STRUCT(t INTEGER, v VARCHAR)``: ``t`` the number of a template in the
evaluation's :class:`Templates` (``%s`` where each value goes, ``%%`` for a literal ``%``) and ``v`` the
values, each written as the inside of a JSON string (so ``"`` and ``\\`` are escaped) with ``|`` written as
``\\u007c``, joined by ``|``.  Building the sentence is left to whoever reads it (:meth:`Templates.render`,
``cquin explain``, the audit store's views), so a million patients' reasons are a few short values each,
not half a kilobyte of prose.

A value from a small set the compiler knows (a code system, an LTC category, a source file) is written
into the template instead (:func:`one_of`): the stored values are then mostly dates and numbers.  A value
from the records with digits never goes into a template (templates are shown where patient values are
hidden: a file name may hold an NHS number), and neither does one beyond ONE_OF_LIMIT choices (a template
per FHIR bundle would be a dictionary per patient).
"""

from __future__ import annotations

import itertools
import json
import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cquin.dataset.duck import sql_str

REASON_TYPE = "STRUCT(t INTEGER, v VARCHAR)"
NO_REASON = f"CAST(NULL AS {REASON_TYPE})"
SEPARATOR = "|"
# A value written into the template only when it is one of at most this many known texts (per value).
ONE_OF_LIMIT = 24
_SLOT = re.compile(r"%[%s]")
_DIGIT = re.compile(r"[0-9]")


@dataclass(frozen=True)
class Safe:
    """A value whose SQL text can never hold a separator, quote or backslash (a date or number cast to VARCHAR)."""

    sql: str


@dataclass(frozen=True)
class Text:
    """A value of any text (a code, a free-text reason): escaped before it is joined."""

    sql: str


@dataclass(frozen=True)
class OneOf:
    """A text value that is usually one of ``options``: those are written into the template, others kept as values."""

    sql: str
    options: tuple[str, ...]


Value = Safe | Text | OneOf | str  # a str is a constant, written into the template


def one_of(sql: str, options: Iterable[str], *, from_records: bool = False) -> Safe | Text | OneOf:
    """A value that is usually one of ``options`` (if there are few): those are written into the words.

    ``from_records``: the options come from the records (file names), not the ruleset, so one with digits
    (which may be an NHS number) is kept as a value.
    """
    kept = tuple(dict.fromkeys(o for o in options if not (from_records and _DIGIT.search(o))))
    if not kept or len(kept) > ONE_OF_LIMIT:
        return Text(sql)
    return OneOf(sql, kept)


def escape_sql(sql: str) -> str:
    """SQL for the value ``sql`` as stored: the inside of its JSON string, ``|`` as ``\\u007c``."""
    encoded = f"CAST(to_json(CAST({sql} AS VARCHAR)) AS VARCHAR)"
    return f"replace(substr({encoded}, 2, length({encoded}) - 2), '|', '\\u007c')"


def escape(value: str) -> str:
    """A value as :func:`escape_sql` stores it (what :func:`values_of` reads back)."""
    return json.dumps(value, ensure_ascii=False)[1:-1].replace(SEPARATOR, "\\u007c")


def values_of(vals: str | None) -> list[str]:
    """The stored values ``v`` as a list (``''`` is one empty value: a template says how many it takes)."""
    if not vals:
        return [""]
    if "\\" not in vals:
        return vals.split(SEPARATOR)
    return list(json.loads('["' + vals.replace(SEPARATOR, '","') + '"]'))


def slots(template: str) -> int:
    """How many values ``template`` takes."""
    return sum(1 for m in _SLOT.finditer(template) if m.group() == "%s")


def render(template: str | None, values: Sequence[str]) -> str | None:
    """The sentence ``template`` filled with the first of ``values`` it takes."""
    if template is None:
        return None
    return template % tuple(values[: slots(template)])


@dataclass
class Templates:
    """One evaluation's templates, numbered in the order the compiler first used them."""

    texts: list[str] = field(default_factory=list)
    _ids: dict[str, int] = field(default_factory=dict)

    def add(self, text: str) -> int:
        if text not in self._ids:
            self._ids[text] = len(self.texts)
            self.texts.append(text)
        return self._ids[text]

    def render(self, t: int | None, v: str | None) -> str | None:
        """The sentence of a reason ``(t, v)`` read back from a node table."""
        if t is None:
            return None
        return render(self.texts[t], values_of(v))

    def reason_sql(self, words: str, **values: Value) -> str:
        """SQL for the reason ``words`` (``{name}`` where each of ``values`` goes) as a ``REASON_TYPE`` struct.

        ``words`` is written by the rule kind; a constant (a ``str``) is put in as it is, a SQL value as a
        slot.  Each :class:`OneOf` value multiplies the templates registered by its choices (plus one for
        any other text), and the template number is worked out per row from which choice it took.
        """
        pieces: list[tuple[str, Value | None]] = []  # (literal words before, value)
        for literal, name, spec, conv in string.Formatter().parse(words):
            if spec or conv:
                raise ValueError(f"reason {words!r}: write {{{name}}} without a format")
            pieces.append((literal, values[name] if name is not None else None))
        choices = [v for _, v in pieces if isinstance(v, OneOf)]
        # Every combination of the choices (the last of each: "another text", kept as a value).
        combos = list(itertools.product(*[[*c.options, None] for c in choices]))
        ids = []
        for combo in combos:
            chosen = iter(combo)
            text = []
            for literal, value in pieces:
                text.append(literal.replace("%", "%%"))
                if isinstance(value, str):
                    text.append(value.replace("%", "%%"))
                elif isinstance(value, OneOf):
                    pick = next(chosen)
                    text.append("%s" if pick is None else pick.replace("%", "%%"))
                elif value is not None:
                    text.append("%s")
            ids.append(self.add("".join(text)))
        # The template number: the combination's, by the mixed-radix index of the choices taken.
        if len(ids) == 1:
            t = str(ids[0])
        else:
            index, stride = [], 1
            for c in reversed(choices):
                whens = " ".join(f"WHEN {sql_str(o)} THEN {i}" for i, o in enumerate(c.options))
                index.append(f"{stride} * (CASE {c.sql} {whens} ELSE {len(c.options)} END)")
                stride *= len(c.options) + 1
            taken = " + ".join(index)
            if ids == list(range(ids[0], ids[0] + len(ids))):  # numbered in a block (as when first compiled)
                t = f"{ids[0]} + {taken}"
            else:
                t = f"CASE {taken} " + " ".join(f"WHEN {i} THEN {tid}" for i, tid in enumerate(ids)) + " END"
        parts = []
        for _, value in pieces:
            if isinstance(value, Safe):
                parts.append(f"coalesce({value.sql}, '')")
            elif isinstance(value, Text):
                parts.append(f"coalesce({escape_sql(value.sql)}, '')")
            elif isinstance(value, OneOf):
                known = ", ".join(sql_str(o) for o in value.options)
                parts.append(f"CASE WHEN {value.sql} IN ({known}) THEN NULL ELSE coalesce({escape_sql(value.sql)}, '') END")
        v = f"concat_ws('{SEPARATOR}', {', '.join(parts)})" if parts else "''"
        return f"struct_pack(t := CAST({t} AS INTEGER), v := {v})"
