"""Safe YAML loading that remembers where every value came from.

Rulesets are untrusted input: only plain YAML (mappings, sequences, strings,
numbers, booleans, null, dates) is accepted; any other tag is refused, and the
size of the expanded document is capped so alias bombs fail fast.  Every value's
position is kept so errors can name ``file:line:column``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from cquin.exceptions import RulesetError

MAX_FILE_BYTES = 5_000_000
MAX_NODES = 250_000
MAX_DEPTH = 60
# Refused from the parser's events before a tree is built; MAX_DEPTH is checked, with its place, on the tree.
# Kept well below libyaml's own nesting limit (1,000 in libyaml 0.2.6), so cquin's message, not the parser's, is what a user sees.
UNREADABLE_DEPTH = 200
_TOO_DEEP = f"nested too deeply to read (more than {UNREADABLE_DEPTH} levels; a ruleset needs at most {MAX_DEPTH}); refused"
# libyaml's parser when PyYAML has it (the same YAML, read many times faster); the pure-Python one otherwise.
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Location:
    """A position in a source file (1-based line and column)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass
class SourceDocument:
    """A loaded YAML document and the location of every value in it."""

    data: Any
    file: str
    locations: dict[Path_, Location] = field(default_factory=dict)

    def locate(self, path: Path_) -> Location:
        """The location of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.locations:
                return self.locations[p]
            p = p[:-1]
        return self.locations.get((), Location(self.file, 1, 1))


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes = 0
        self.locations: dict[Path_, Location] = {}

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, node: yaml.Node, message: str) -> RulesetError:
        return RulesetError(f"{self.loc(node)}: {message}", location=self.loc(node), bare_message=message)

    def build(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail(
                node,
                f"the document expands to more than {MAX_NODES:,} values (an alias bomb or a far too large ruleset); refused",
            )
        if depth > MAX_DEPTH:
            raise self.fail(node, f"nested more than {MAX_DEPTH} levels deep; refused")
        self.locations.setdefault(path, self.loc(node))
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP:
                raise self.fail(node, f"the tag {node.tag!r} is not allowed in a ruleset")
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self.fail(key_node, "a mapping key must be a plain value")
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise self.fail(key_node, "merge keys (<<) are not supported; use 'extends'")
                # Keys are names, taken as written: YAML 1.1 would read `on:` as True.
                key = str(key_node.value)
                if key in out:
                    raise self.fail(key_node, f"the key {key!r} appears twice in this mapping")
                self.locations[path + (key,)] = self.loc(value_node)
                out[key] = self.build(value_node, path + (key,), depth + 1)
                # Point errors about a key's value at the value, but keep the key too.
                self.locations.setdefault(path + (key, "__key__"), self.loc(key_node))
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self.fail(node, f"the tag {node.tag!r} is not allowed in a ruleset")
            return [self.build(item, path + (i,), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)  # the composer makes only mappings, sequences and scalars
        return self.scalar(node)

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return value.lower() in ("true", "yes", "on")
        if tag == _INT:
            try:
                return int(value.replace("_", ""), 0) if not value.startswith("0o") else int(value[2:], 8)
            except ValueError:
                raise self.fail(node, f"{value!r} is not a whole number") from None
        if tag == _FLOAT:
            # Exact decimals: 55.1 stays 55.1, never the nearest binary float.
            try:
                number = Decimal(value.replace("_", ""))
            except InvalidOperation:
                raise self.fail(node, f"{value!r} is not a usable number") from None
            if not number.is_finite():
                raise self.fail(node, f"{value!r} is not a finite number")
            return number
        if tag == _TIMESTAMP:
            return value  # kept as written; the schema checks the date format
        raise self.fail(node, f"the tag {tag!r} is not allowed in a ruleset")


def _check_expanded_size(root: yaml.Node, file: str) -> None:
    """Refuse documents whose aliases expand beyond MAX_NODES, counting each distinct node once."""
    sizes: dict[int, int] = {}
    entered: set[int] = set()  # nodes whose children are being counted: the path from the root
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if not done and id(node) in entered:
            # Reached again while its own children are being counted: an alias inside its anchor.
            where = Location(file, node.start_mark.line + 1, node.start_mark.column + 1)
            text = "an alias refers to the value that contains it (a recursive structure); refused"
            raise RulesetError(f"{where}: {text}", location=where, bare_message=text)
        entered.add(id(node))
        children = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        sizes[id(node)] = total
        if total > MAX_NODES:
            where = Location(file, node.start_mark.line + 1, node.start_mark.column + 1)
            text = f"the document expands to more than {MAX_NODES:,} values (an alias bomb or a far too large ruleset); refused"
            raise RulesetError(f"{where}: {text}", location=where, bare_message=text)


def _refusal(file: str, mark: Any, text: str) -> RulesetError:
    where = Location(file, mark.line + 1, mark.column + 1)
    return RulesetError(f"{where}: {text}", location=where, bare_message=text)


def _prescan(text: str, file: str) -> None:
    """Refuse a document with too many values or absurd nesting from the parser's events alone.

    Events stream in constant memory, so a huge or deeply nested file is
    refused before any tree is built (building 250,000 nodes costs far more time
    and memory than reading their events).  Aliases count once here; what they
    expand to is checked on the tree by :func:`_check_expanded_size`.
    """
    values = depth = 0
    loader = _LOADER(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.CollectionStartEvent)):
                values += 1
                if values > MAX_NODES:
                    raise _refusal(file, event.start_mark, f"the document has more than {MAX_NODES:,} values; refused")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > UNREADABLE_DEPTH:
                    raise _refusal(file, event.start_mark, _TOO_DEEP)
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def load_yaml_text(text: str, file: str) -> SourceDocument:
    """Parse YAML ``text`` (named ``file`` in messages) into a located document."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise RulesetError(f"{file}: larger than {MAX_FILE_BYTES // 1_000_000} MB; refused")
    try:
        _prescan(text, file)
        loader = _LOADER(text)  # inside the try: the reader refuses some characters (NUL) as it is made
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file, 1, 1)
        problem = str(exc.problem or exc)
        # Some parsers (libyaml >= 0.2.6) stop deep nesting themselves; the user still gets cquin's words.
        text = _TOO_DEEP if "nesting depth" in problem else f"not valid YAML: {problem}"
        raise RulesetError(f"{where}: {text}", location=where, bare_message=text) from None
    except yaml.YAMLError as exc:
        raise RulesetError(f"{file}: not valid YAML: {exc}") from None
    except RecursionError:
        raise RulesetError(f"{file}: {_TOO_DEEP}") from None
    if node is None:
        raise RulesetError(f"{file}: the file is empty")
    _check_expanded_size(node, file)
    builder = _Builder(file)
    try:
        data = builder.build(node, (), 0)
    except RecursionError:
        raise RulesetError(f"{file}: {_TOO_DEEP}") from None
    return SourceDocument(data=data, file=file, locations=builder.locations)


def load_yaml_file(path: Path) -> SourceDocument:
    """Read and parse a YAML file safely; errors name the file."""
    from cquin.files import read_capped

    # A regular file of bounded size (never a device or a pipe: /dev/zero would fill the memory, a FIFO hang).
    raw = read_capped(Path(path), limit=MAX_FILE_BYTES, what="YAML file", error=RulesetError)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RulesetError(f"{path}: not UTF-8 text; save the ruleset as UTF-8") from None
    return load_yaml_text(text, str(path))
