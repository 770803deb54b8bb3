"""The catalogue of rulesets: the bundled ones and a policy team's own, by id, version and effective period.

Versions follow semantic versioning (MAJOR.MINOR.PATCH, an optional ``-pre``
suffix).  A range such as ``1.x`` or ``1.2.x`` matches every release with
that prefix; ``extends: cquin_2017_19@1.x`` picks the highest *published*
match.  The catalogue lists the files as written (a child's inherited period is
resolved by :mod:`cquin.engine.selection`, which also picks the ruleset in effect
on a date); it is what resolving ``extends`` looks parents up in.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cquin.config.yaml_source import SourceDocument, load_yaml_file
from cquin.exceptions import RulesetError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "rulesets"
ENV_VAR = "CQUIN_RULESETS"
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$")
_RANGE_PART = re.compile(r"^(0|[1-9]\d*|x|\*)$")


# --------------------------------------------------------------------------- semantic versions


def parse_version(text: str) -> tuple[int, int, int, str]:
    """(major, minor, patch, pre-release) of a semantic version; ValueError if it is not one."""
    m = _VERSION.match(str(text))
    if not m:
        raise ValueError(f"{text!r} is not a semantic version such as 1.0.0")
    return int(m[1]), int(m[2]), int(m[3]), m[4] or ""


def version_key(text: str) -> tuple[int, int, int, int, str]:
    """Sort key: a pre-release (1.0.0-rc.1) comes before its release (1.0.0)."""
    major, minor, patch, pre = parse_version(text)
    return major, minor, patch, 0 if pre else 1, pre


def version_matches(version_range: str, version: str) -> bool:
    """Whether ``version`` is in ``version_range`` (``1.x``, ``1.2.x``, ``1``, ``1.2``, ``1.2.3`` or ``*``)."""
    try:
        major, minor, patch, pre = parse_version(version)
    except ValueError:
        return False
    if _VERSION.match(version_range):
        return version_range == version
    parts = version_range.split(".")
    if not parts or len(parts) > 3 or not all(_RANGE_PART.match(p) for p in parts):
        raise ValueError(f"{version_range!r} is not a version range such as 1.x, 1.2.x or 1.2.3")
    if pre:  # pre-releases match only when named exactly
        return False
    for want, have in zip(parts, (major, minor, patch), strict=False):
        if want in ("x", "*"):
            return True
        if int(want) != have:
            return False
    return True


# --------------------------------------------------------------------------- reading ruleset files

_PARSED: dict[tuple[str, int, int], SourceDocument] = {}


def load_cached(path: Path) -> SourceDocument:
    """Parse a ruleset file, reusing the parse while the file is unchanged (a parent is read by every child)."""
    try:
        st = path.stat()
    except OSError:
        return load_yaml_file(path)  # reports the problem in its own words
    key = (str(path), st.st_mtime_ns, st.st_size)  # as named: locations carry the name
    if key not in _PARSED:
        if len(_PARSED) > 64:
            _PARSED.clear()
        _PARSED[key] = load_yaml_file(path)
    cached = _PARSED[key]
    return SourceDocument(copy.deepcopy(cached.data), str(path), dict(cached.locations))


# --------------------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class Entry:
    """One ruleset file as the catalogue lists it."""

    id: str
    version: str
    status: str
    effective_from: dt.date | None
    effective_to: dt.date | None
    title: str
    path: Path
    origin: str  # "bundled" or "user"
    extends: str = ""
    problem: str = ""  # why the file could not be fully read (it is listed anyway)

    @property
    def effective(self) -> str:
        if self.effective_from is None or self.effective_to is None:
            return "?"
        return f"{self.effective_from} to {self.effective_to}"

    def in_effect_on(self, day: dt.date) -> bool:
        return (
            self.effective_from is not None and self.effective_to is not None and self.effective_from <= day <= self.effective_to
        )


def user_dirs(explicit: Iterable[Path] = (), cwd: Path | None = None) -> list[Path]:
    """Folders of user rulesets: those given, ``./rulesets`` if it exists, and each folder in $CQUIN_RULESETS."""
    found: list[Path] = [Path(p) for p in explicit]
    local = (cwd or Path.cwd()) / "rulesets"
    if local.is_dir():
        found.append(local)
    for part in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if part.strip():
            found.append(Path(part.strip()))
    unique: list[Path] = []
    for p in found:
        if p.resolve() != BUNDLED_DIR and p.resolve() not in [u.resolve() for u in unique]:
            unique.append(p)
    return unique


def ruleset_files(folder: Path) -> list[Path]:
    """Ruleset files in a folder: *.yaml and *.yml, leaving out test files (*.tests.yaml)."""
    if not folder.is_dir():
        return []
    files = [*folder.glob("*.yaml"), *folder.glob("*.yml")]
    return sorted(p for p in files if not p.name.endswith((".tests.yaml", ".tests.yml")))


def read_entry(path: Path, origin: str) -> Entry | None:
    """The catalogue entry for a file as written, or None when the file is not a ruleset (no ``id``).

    A ruleset that extends another may inherit its effective period; the entry holds only what the file
    says (looking a parent up by id needs only id, version and status).  :func:`cquin.engine.selection.resolved_catalogue`
    resolves the periods.
    """
    try:
        data = load_cached(path).data
    except RulesetError as exc:
        return Entry("?", "?", "?", None, None, "", path, origin, problem=exc.bare_message)
    if not isinstance(data, dict) or "id" not in data:
        return None
    start, end = effective_dates(data.get("effective"))
    return Entry(
        str(data.get("id")),
        str(data.get("version", "?")),
        str(data.get("status", "?")),
        start,
        end,
        str(data.get("title", "")),
        path,
        origin,
        str(data.get("extends", "")),
    )


def effective_dates(effective: Any) -> tuple[dt.date | None, dt.date | None]:
    if not isinstance(effective, dict):
        return None, None
    try:
        return dt.date.fromisoformat(str(effective.get("from"))), dt.date.fromisoformat(str(effective.get("to")))
    except ValueError:
        return None, None


def catalogue(dirs: Iterable[Path] = (), *, bundled: bool = True) -> list[Entry]:
    """Every ruleset in the bundled folder (if ``bundled``) and in ``dirs``, as written, sorted by id then version."""
    entries: list[Entry] = []
    sources = ([(BUNDLED_DIR, "bundled")] if bundled else []) + [(Path(d), "user") for d in dirs]
    for folder, origin in sources:
        for path in ruleset_files(folder):
            entry = read_entry(path, origin)
            if entry is not None:
                entries.append(entry)
    return sorted(entries, key=_sort_key)


def _sort_key(e: Entry) -> tuple[Any, ...]:
    try:
        v: tuple[Any, ...] = version_key(e.version)
    except ValueError:
        v = (-1,)
    return e.id, v, str(e.path)


def find_published(ruleset_id: str, version_range: str, dirs: Iterable[Path] = (), exclude: Path | None = None) -> Entry:
    """The highest published version of ``ruleset_id`` within ``version_range`` (``*`` for any), never ``exclude``."""
    skip = exclude.resolve() if exclude is not None else None
    entries = [e for e in catalogue(dirs) if e.id == ruleset_id and not e.problem and e.path.resolve() != skip]
    matching = [e for e in entries if version_matches(version_range, e.version)]
    published = [e for e in matching if e.status == "published"]
    if published:
        return max(published, key=lambda e: version_key(e.version))
    shown = ", ".join(f"{e.version} ({e.status})" for e in entries) or "none"
    if matching:
        raise RulesetError(
            f"no published version of {ruleset_id} matches {version_range} (only drafts do: {shown}); "
            "a ruleset can extend only a published one, or name the draft's file"
        )
    raise RulesetError(f"no ruleset {ruleset_id} version {version_range} in the catalogue (versions found: {shown})")
