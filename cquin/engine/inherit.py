"""Ruleset inheritance: a ruleset that ``extends`` another states only what differs.

``extends`` names the parent as ``id@range`` (the highest published version in
the catalogue within the range, e.g. ``cquin_2017_19@1.x``) or as a file path
relative to the child.  Resolution is a deep merge of the child over the
parent:

* mappings merge key by key, recursively;
* lists of objects that carry an ``id`` (components, categories, quarters,
  milestones, GPPS questions) merge item by item on the id, parent order
  first, new items appended; ``ltc.shared_codes`` entries merge on their
  system and code;
* any other list (bands, a category's code lists, answer options) is replaced
  whole;
* ``{id: x, remove: true}`` in an id'd list, or ``key: {remove: true}`` in a
  mapping, removes the inherited entry.

Every value keeps the location (file, line, column) of the document that set
it, so problems in the resolved ruleset point at the right file; code list
``file`` paths therefore resolve relative to the file that declared them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cquin.config.yaml_source import Location, Path_, SourceDocument
from cquin.engine.catalogue import find_published, load_cached, user_dirs
from cquin.exceptions import RulesetError

MAX_CHAIN = 10
SAME_AS_CHILD = ("id", "version", "status")


@dataclass
class Resolved:
    """A ruleset resolved through its ``extends`` chain."""

    source: SourceDocument  # merged data; locations point into whichever file set each value
    chain: list[tuple[str, str, Path]] = field(default_factory=list)  # (id, version, path), child first
    problems: list[tuple[Location, str]] = field(default_factory=list)  # non-fatal merge problems

    @property
    def data(self) -> Any:
        return self.source.data


def resolve_document(path: Path, search_dirs: list[Path] | None = None) -> Resolved:
    """Load ``path`` and merge it over its parents; RulesetError (with the line of ``extends``) if a parent is missing."""
    return _resolve(path, search_dirs, [])


def _resolve(path: Path, search_dirs: list[Path] | None, seen: list[Path]) -> Resolved:
    source = load_cached(path)
    data = source.data
    me = (str(data.get("id", "?")), str(data.get("version", "?")), path) if isinstance(data, dict) else ("?", "?", path)
    if not isinstance(data, dict) or "extends" not in data:
        return Resolved(source, [me])
    where = source.locate(("extends",))
    ref = data["extends"]
    if not isinstance(ref, str) or not ref.strip():
        raise _fail(where, "extends must name a ruleset: id@version-range (e.g. cquin_2017_19@1.x) or a file path")
    missing = [k for k in SAME_AS_CHILD if k not in data]
    if missing:
        raise _fail(
            where,
            f"a ruleset that extends another must state its own {', '.join(missing)} "
            "(a new ruleset is never the same version, or silently as published, as its parent)",
        )
    parent_path = find_parent(ref.strip(), path, search_dirs, where)
    if parent_path.resolve() in seen + [path.resolve()]:
        raise _fail(where, f"extends {ref}: rulesets extend each other in a circle ({parent_path})")
    if len(seen) >= MAX_CHAIN:
        raise _fail(where, f"extends {ref}: more than {MAX_CHAIN} levels of extends")
    try:
        parent = _resolve(parent_path, search_dirs, seen + [path.resolve()])
    except RulesetError as exc:
        raise _fail(where, f"extends {ref}: the parent ruleset cannot be read: {exc.bare_message}") from None
    merger = _Merger(parent.source, source)
    child_data = {k: v for k, v in data.items() if k != "extends"}
    merged = merger.merge(parent.data, (), child_data, (), ())
    merger.locations[()] = source.locate(())
    merged_source = SourceDocument(data=merged, file=str(path), locations=merger.locations)
    return Resolved(merged_source, [me, *parent.chain], parent.problems + merger.problems)


def _fail(where: Location, message: str) -> RulesetError:
    return RulesetError(f"{where}: {message}", location=where, bare_message=message)


def find_parent(ref: str, child: Path, search_dirs: list[Path] | None, where: Location) -> Path:
    """The file ``ref`` names: a path relative to the child, or the catalogue's match for id@range."""
    if ref.endswith((".yaml", ".yml")):
        target = child.parent / ref
        if not target.is_file():
            raise _fail(where, f"extends {ref}: no such ruleset file (looked for {target})")
        return target
    rid, _, version_range = ref.partition("@")
    dirs = [child.parent, *(user_dirs() if search_dirs is None else search_dirs)]
    try:
        return find_published(rid, version_range or "*", dirs, exclude=child).path
    except (RulesetError, ValueError) as exc:
        raise _fail(where, f"extends {ref}: {exc}") from None


def identity(item: Any) -> Any:
    """What an item of a list is merged on: its ``id``, or for a shared-code entry its system and code."""
    if not isinstance(item, dict):
        return None
    if "id" in item:
        return ("id", item["id"])
    if "code" in item and "system" in item:
        return ("code", item.get("system"), str(item["code"]))
    return None


def _removes(value: Any) -> bool:
    return isinstance(value, dict) and value.get("remove") is True


class _Merger:
    def __init__(self, parent: SourceDocument, child: SourceDocument) -> None:
        self.parent = parent
        self.child = child
        self.locations: dict[Path_, Location] = {}
        self.problems: list[tuple[Location, str]] = []

    def copy(self, value: Any, src: SourceDocument, sp: Path_, op: Path_) -> Any:
        """Take ``value`` whole from ``src`` at ``sp`` into the result at ``op``, with its locations."""
        if sp in src.locations:
            self.locations[op] = src.locations[sp]
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                key_loc = src.locations.get(sp + (k, "__key__"))
                if key_loc is not None:
                    self.locations[op + (k, "__key__")] = key_loc
                out[k] = self.copy(v, src, sp + (k,), op + (k,))
            return out
        if isinstance(value, list):
            return [self.copy(v, src, sp + (i,), op + (i,)) for i, v in enumerate(value)]
        return value

    def merge(self, pv: Any, pp: Path_, cv: Any, cp: Path_, op: Path_) -> Any:
        if isinstance(pv, dict) and isinstance(cv, dict):
            return self.merge_mapping(pv, pp, cv, cp, op)
        if isinstance(pv, list) and isinstance(cv, list) and self.by_id(pv) and self.by_id(cv):
            return self.merge_list(pv, pp, cv, cp, op)
        return self.copy(cv, self.child, cp, op)

    @staticmethod
    def by_id(items: list[Any]) -> bool:
        return bool(items) and all(identity(i) is not None for i in items)

    def merge_mapping(self, pv: dict[str, Any], pp: Path_, cv: dict[str, Any], cp: Path_, op: Path_) -> dict[str, Any]:
        self.locations[op] = self.child.locations.get(cp) or self.parent.locations.get(pp) or self.child.locate(cp)
        out: dict[str, Any] = {}
        for key in [*pv, *(k for k in cv if k not in pv)]:
            if key in cv:
                if _removes(cv[key]):
                    if key not in pv:
                        self.problems.append((self.child.locate(cp + (key,)), f"remove: there is no inherited {key!r} to remove"))
                    continue
                key_loc = self.child.locations.get(cp + (key, "__key__"))
                if key_loc is not None:
                    self.locations[op + (key, "__key__")] = key_loc
                if key in pv:
                    out[key] = self.merge(pv[key], pp + (key,), cv[key], cp + (key,), op + (key,))
                else:
                    out[key] = self.copy(cv[key], self.child, cp + (key,), op + (key,))
            else:
                key_loc = self.parent.locations.get(pp + (key, "__key__"))
                if key_loc is not None:
                    self.locations[op + (key, "__key__")] = key_loc
                out[key] = self.copy(pv[key], self.parent, pp + (key,), op + (key,))
        return out

    def merge_list(self, pv: list[Any], pp: Path_, cv: list[Any], cp: Path_, op: Path_) -> list[Any]:
        self.locations[op] = self.child.locations.get(cp) or self.parent.locate(pp)
        child_at = {identity(item): j for j, item in enumerate(cv)}
        parent_ids = {identity(item) for item in pv}
        out: list[Any] = []
        for i, item in enumerate(pv):
            j = child_at.get(identity(item))
            if j is None:
                out.append(self.copy(item, self.parent, pp + (i,), op + (len(out),)))
            elif not _removes(cv[j]):
                out.append(self.merge(item, pp + (i,), cv[j], cp + (j,), op + (len(out),)))
        for j, item in enumerate(cv):
            if identity(item) in parent_ids:
                continue
            if _removes(item):
                self.problems.append(
                    (self.child.locate(cp + (j,)), f"remove: there is no inherited item {_name(item)} to remove")
                )
                continue
            out.append(self.copy(item, self.child, cp + (j,), op + (len(out),)))
        return out


def _name(item: dict[str, Any]) -> str:
    key = identity(item)
    return repr(key[1]) if key and key[0] == "id" else repr(item.get("code"))
