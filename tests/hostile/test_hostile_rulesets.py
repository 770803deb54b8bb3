"""Hostile rulesets are refused quickly, with a clear RulesetError, in bounded memory.

``tests/ruleset/test_yaml_safety.py`` covers tags, the classic alias bomb,
flow-style nesting and the file size cap on the YAML reader; this file adds
the attacks it does not, and drives them through the whole ruleset loader
(``load_ruleset`` on a file) as a user would.  Memory is measured with
``tracemalloc`` (Python allocations, where a YAML tree lives): each refusal
must stay under :data:`MEMORY_BOUND` however large the document claims to be.
"""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from cquin.config import yaml_source
from cquin.config.yaml_source import load_yaml_text
from cquin.engine.ruleset import check_ruleset, load_ruleset
from cquin.exceptions import RulesetError

MEMORY_BOUND = 64 * 1024 * 1024  # bytes of Python allocations while refusing


def peak_memory(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def refused_file(path: Path) -> str:
    """Load ``path`` as a ruleset: it must be refused with a RulesetError (and nothing else); its message."""
    messages: list[str] = []

    def attempt() -> None:
        with pytest.raises(RulesetError) as raised:
            load_ruleset(path)
        messages.append(str(raised.value))

    assert peak_memory(attempt) < MEMORY_BOUND
    return messages[0]


def write(tmp_path: Path, text: str, name: str = "hostile.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- aliases


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: &a [*a]\n", id="a-list-containing-itself"),
        pytest.param("a: &a {child: *a}\n", id="a-mapping-containing-itself"),
        pytest.param("a: &a [1, [2, [3, *a]]]\n", id="a-cycle-three-levels-down"),
        pytest.param("a: &a {*a : 1}\n", id="a-mapping-keyed-by-itself"),
    ],
)
def test_an_alias_inside_its_own_anchor_is_refused_not_followed_forever(text: str):
    with pytest.raises(RulesetError, match="an alias refers to the value that contains it") as raised:
        load_yaml_text(text, "rules.yaml")
    assert str(raised.value).startswith("rules.yaml:1:4: ")


def test_aliases_repeating_a_large_list_are_refused_before_they_are_expanded():
    """10,000 values repeated 1,000 times: ten million values from a 70 kB file."""
    text = "a: &a [" + ", ".join(["1"] * 10_000) + "]\nb: [" + ", ".join(["*a"] * 1_000) + "]\n"
    messages = []

    def attempt() -> None:
        with pytest.raises(RulesetError) as raised:
            load_yaml_text(text, "rules.yaml")
        messages.append(str(raised.value))

    assert peak_memory(attempt) < MEMORY_BOUND
    assert "expands to more than 250,000 values" in messages[0]
    assert messages[0].startswith("rules.yaml:2:")


def test_a_billion_laughs_ruleset_file_is_refused_by_the_ruleset_loader(tmp_path: Path):
    levels = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        levels.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(levels) + "\n")
    message = refused_file(path)
    assert "alias bomb" in message
    assert str(path) in message


# --------------------------------------------------------------------------- size and nesting


def test_a_file_just_under_the_size_cap_with_a_million_values_is_refused_early(tmp_path: Path):
    """4.8 MB of one-character list items: under the byte cap, far over the value cap."""
    path = write(tmp_path, "x:\n" + "- 1\n" * 1_200_000)
    assert path.stat().st_size < yaml_source.MAX_FILE_BYTES
    message = refused_file(path)
    assert f"more than {yaml_source.MAX_NODES:,} values" in message
    # Refused where the limit was crossed (a quarter of the way in), not after reading the whole file.
    line = int(re.search(r"hostile\.yaml:(\d+):", message).group(1))  # type: ignore[union-attr]
    assert line <= yaml_source.MAX_NODES + 1


def test_indentation_nested_2000_levels_deep_is_refused(tmp_path: Path):
    path = write(tmp_path, "".join("  " * i + "a:\n" for i in range(2_000)))
    message = refused_file(path)
    # Refused at the line where the limit was crossed, in cquin's words, not the parser's.
    assert f"{path}:{yaml_source.UNREADABLE_DEPTH + 1}:" in message
    assert f"more than {yaml_source.UNREADABLE_DEPTH} levels" in message and "not valid YAML" not in message


def test_one_huge_string_is_read_and_then_refused_by_the_schema(tmp_path: Path):
    """A 4.9 MB value is not an attack on the reader; the schema says what is wrong with it."""
    path = write(tmp_path, "id: " + "x" * 4_900_000 + "\n")
    message = refused_file(path)
    assert "problem(s)" in message


# --------------------------------------------------------------------------- characters and documents


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        pytest.param(b"id: a\x00b\n", "not valid YAML", id="nul-character"),
        pytest.param(b"id: a\x1bb\n", "not valid YAML", id="escape-control-character"),
        pytest.param(b"id: x\n---\nid: y\n", "not valid YAML", id="two-documents"),
        pytest.param("id: café\n".encode("utf-16"), "not UTF-8", id="utf-16"),
        pytest.param(b"\xff\xfe\x00\x00garbage", "not UTF-8", id="binary"),
        pytest.param(b"", "empty", id="empty-file"),
        pytest.param(b"# only a comment\n", "empty", id="only-a-comment"),
    ],
)
def test_text_that_is_not_one_yaml_document_is_refused(tmp_path: Path, content: bytes, fragment: str):
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    message = refused_file(path)
    assert fragment in message
    assert str(path) in message


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("- just\n- a list\n", id="a-list"),
        pytest.param("just a sentence\n", id="a-string"),
        pytest.param("42\n", id="a-number"),
        pytest.param("? [a, b]\n: c\n", id="a-list-as-a-key"),
    ],
)
def test_a_document_that_is_not_a_ruleset_mapping_is_refused(tmp_path: Path, text: str):
    path = write(tmp_path, text)
    refused_file(path)
    ruleset, problems = check_ruleset(path)
    assert ruleset is None
    assert problems


# --------------------------------------------------------------------------- tags through the whole loader


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/apply:subprocess.check_output",
        "!!python/object/new:os.system",
        "!!python/name:os.system",
        "!!python/module:os",
    ],
)
def test_object_constructing_tags_in_a_ruleset_file_run_nothing(tmp_path: Path, tag: str):
    marker = tmp_path / "ran"
    path = write(tmp_path, f'id: cquin_hostile\ntitle: {tag} ["touch {marker}"]\n')
    message = refused_file(path)
    assert "not allowed in a ruleset" in message
    assert not marker.exists()


def test_a_ruleset_extending_an_alias_bomb_is_refused(tmp_path: Path):
    bomb = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        bomb.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    write(tmp_path, "\n".join(bomb) + "\n", "parent.yaml")
    child = write(tmp_path, "extends: ./parent.yaml\nid: child\nversion: 9.0.0\nstatus: draft\n", "child.yaml")
    assert "alias bomb" in refused_file(child)


def test_a_ruleset_extending_itself_is_refused(tmp_path: Path):
    path = write(tmp_path, "extends: ./self.yaml\nid: loop\nversion: 9.0.0\nstatus: draft\n", "self.yaml")
    assert "in a circle" in refused_file(path)
