"""Choosing a ruleset: the catalogue with every ruleset's effective period resolved, and the one in effect on a date.

Above both :mod:`cquin.engine.catalogue` (the files, as written) and :mod:`cquin.engine.inherit` (a child
merged over its parents), because a child's effective period may be its parent's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from pathlib import Path

from cquin.engine.catalogue import Entry, catalogue, effective_dates, user_dirs, version_key
from cquin.engine.inherit import resolve_document
from cquin.exceptions import RulesetError


def resolved_catalogue(dirs: Iterable[Path] = (), *, bundled: bool = True) -> list[Entry]:
    """The catalogue, each ruleset that extends another with the effective period it resolves to (or the problem)."""
    out = []
    for entry in catalogue(dirs, bundled=bundled):
        if entry.extends and not entry.problem:
            try:
                start, end = effective_dates(resolve_document(entry.path).data.get("effective"))
                entry = dataclasses.replace(entry, effective_from=start, effective_to=end)
            except RulesetError as exc:
                entry = dataclasses.replace(entry, problem=exc.bare_message)
        out.append(entry)
    return out


def select_ruleset(when: dt.date | None = None, allow_draft: bool = False, dirs: Iterable[Path] | None = None) -> Path:
    """The ruleset whose effective period holds ``when`` (today if None), for a run that names none.

    Published rulesets win over drafts, then the highest version.  When no
    ruleset is in effect on the date, the most recent one that has started is
    used.  A draft is refused unless ``allow_draft``.
    """
    day = when or dt.date.today()
    entries = [e for e in resolved_catalogue(user_dirs() if dirs is None else dirs) if not e.problem and e.effective_from]
    candidates = [e for e in entries if e.in_effect_on(day)]
    if not candidates:
        started = [e for e in entries if e.effective_from is not None and e.effective_from <= day]
        if started:
            latest = max(e.effective_from for e in started if e.effective_from is not None)
            candidates = [e for e in started if e.effective_from == latest]
    if not candidates:
        known = "; ".join(f"{e.id} {e.version} ({e.status}, {e.effective})" for e in entries) or "none"
        raise RulesetError(f"no ruleset is in effect on {day} (catalogue: {known}); name one with --ruleset")
    published = [e for e in candidates if e.status == "published"]
    if published:
        return max(published, key=lambda e: version_key(e.version)).path
    best = max(candidates, key=lambda e: version_key(e.version))
    if not allow_draft:
        others = [e for e in entries if e.status == "published"]
        hint = ""
        if others:
            newest = max(others, key=lambda e: (e.effective_from or dt.date.min, version_key(e.version)))
            hint = f" (the latest published one is {newest.id} {newest.version}, in effect {newest.effective})"
        raise RulesetError(
            f"the ruleset in effect on {day} is {best.id} {best.version}, which is a draft ({best.path}); "
            f"pass --allow-draft to use a draft, or name a published ruleset with --ruleset{hint}"
        )
    return best.path
