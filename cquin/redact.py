"""Rejection reasons without patient-level values, for outputs that leave the audit store.

A rejection keeps its value in a structured field (the ``value`` column, beside
``file``, ``line`` and ``ref``); its reason is written for the person fixing the
export and may quote that value.  Anything shared (the report, the reason groups
BI tools and Datasette facet on) shows the reason's *kind* instead: the reason
with the rejection's own value and reference, anything quoted, and every word
holding a digit taken out (NHS numbers however written, ``999 000 0018`` or
``999-000-0018``; local ids; dates; line numbers), except the few format and
field words below.  The words left are cquin's own wording, so the kind says
what the problem is, never whose.
"""

from __future__ import annotations

import re

MASK = "…"
_QUOTED = re.compile(r"'[^']*'")
_WORD = re.compile(r"[^\s'(),;:\[\]{}]+")
_KEEP = re.compile(r"(?i)(icd-10|gpps_q3[23]|q3[23]|cyp\d{3}[a-z]*|c19(haem)?can_cod|utf-8|utf-16|windows-1252|pam-13|r4)")
_PHRASES = {"Modulus 11": "Modulus-eleven"}  # wording with a digit in it, kept


def reason_kind(reason: str | None, value: str | None = None, ref: str | None = None) -> str:
    """``reason`` without patient-level values: "unknown patient 999 000 0018: not in patients.csv" -> "unknown patient …: not in patients.csv"."""
    text = reason or ""
    for known in sorted({v for v in (value, ref) if v and len(v.strip()) > 1}, key=len, reverse=True):
        text = text.replace(known, MASK)
    text = _QUOTED.sub(MASK, text)
    for phrase, kept in _PHRASES.items():
        text = text.replace(phrase, kept)
    text = _WORD.sub(lambda m: m[0] if not any(ch.isdigit() for ch in m[0]) or _KEEP.fullmatch(m[0]) else MASK, text)
    text = re.sub(f"{MASK}(?:[\\s/.-]+{MASK})+", MASK, text)  # a spaced or hyphenated number is one value
    for phrase, kept in _PHRASES.items():
        text = text.replace(kept, phrase)
    return text
