"""Rulesets are untrusted input: plain YAML only, bounded in size, exact in value.

Every refusal is a RulesetError naming where the problem is, never a crash,
a hang or code run on the reader's machine.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from cquin.config import yaml_source
from cquin.config.yaml_source import Location, load_yaml_file, load_yaml_text
from cquin.exceptions import RulesetError


def refusal(text: str) -> str:
    with pytest.raises(RulesetError) as raised:
        load_yaml_text(text, "rules.yaml")
    return str(raised.value)


# --------------------------------------------------------------------------- tags


def test_python_object_tag_is_refused_without_running_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    marker = tmp_path / "ran"
    monkeypatch.chdir(tmp_path)
    message = refusal(f'action: !!python/object/apply:os.system ["touch {marker}"]\n')
    assert message.startswith("rules.yaml:1:9: ")
    assert "python/object/apply:os.system" in message
    assert "not allowed" in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("x: !!python/name:os.system\n", "python/name:os.system"),
        ("x: !!python/object/new:builtins.dict {}\n", "python/object/new"),
        ("x: !custom 5\n", "!custom"),
        ("x: !!binary aGk=\n", "binary"),
        ("x: !!set {a, b}\n", "set"),
        ("x: !!omap [a: 1]\n", "omap"),
        ("x: !!pairs [a: 1]\n", "pairs"),
    ],
)
def test_non_standard_tags_are_refused_at_their_location(text: str, tag: str):
    message = refusal(text)
    assert message.startswith("rules.yaml:1:4: ")
    assert tag in message
    assert "not allowed in a ruleset" in message


def test_standard_tags_are_accepted():
    doc = load_yaml_text("a: !!str 5\nb: !!int '7'\nc: !!float 1.5\n", "rules.yaml")
    assert doc.data == {"a": "5", "b": 7, "c": Decimal("1.5")}


def test_merge_keys_are_refused():
    message = refusal("base: &b {a: 1}\nx:\n  <<: *b\n")
    assert message.startswith("rules.yaml:3:3: ")
    assert "merge keys" in message


# --------------------------------------------------------------------------- size and shape


def billion_laughs(levels: int = 9) -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused():
    message = refusal(billion_laughs())
    assert "expands to more than" in message
    assert "alias bomb" in message
    assert message.startswith("rules.yaml:")


def test_aliases_that_expand_modestly_are_fine():
    doc = load_yaml_text("a: &a [1, 2]\nb: *a\n", "rules.yaml")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_ten_thousand_nested_lists_are_refused():
    message = refusal("x: " + "[" * 10_000 + "]" * 10_000 + "\n")
    # cquin's own words with the limit, whatever the installed YAML parser would have said.
    assert f"nested too deeply to read (more than {yaml_source.UNREADABLE_DEPTH} levels" in message
    assert "not valid YAML" not in message
    assert message.startswith("rules.yaml:1:")


def test_nesting_beyond_the_depth_limit_is_refused_at_its_place():
    depth = yaml_source.MAX_DEPTH + 5
    message = refusal("x: " + "[" * depth + "]" * depth + "\n")
    assert f"nested more than {yaml_source.MAX_DEPTH} levels deep" in message
    assert message.startswith("rules.yaml:1:")


def test_text_over_the_size_cap_is_refused():
    text = "title: big\n" + "# padding\n" * (yaml_source.MAX_FILE_BYTES // 10)
    assert len(text.encode()) > yaml_source.MAX_FILE_BYTES
    assert "larger than 5 MB" in refusal(text)


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(yaml_source.MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(RulesetError, match="more than the 5 MB cquin reads") as caught:
        load_yaml_file(path)
    assert str(path) in str(caught.value)


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("title: Caf\xe9\n".encode("latin-1"))
    with pytest.raises(RulesetError, match="not UTF-8"):
        load_yaml_file(path)


def test_a_missing_file_is_refused_with_its_name(tmp_path: Path):
    with pytest.raises(RulesetError, match="no such file") as caught:
        load_yaml_file(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in str(caught.value)


def test_an_empty_file_is_refused():
    assert "empty" in refusal("")


# --------------------------------------------------------------------------- keys


def test_duplicate_keys_are_refused_with_the_key_and_its_line():
    message = refusal("id: one\ntitle: A\nid: two\n")
    assert message.startswith("rules.yaml:3:1: ")
    assert "'id'" in message
    assert "twice" in message


def test_duplicate_keys_are_refused_in_nested_mappings():
    message = refusal("periods:\n  year1:\n    from: 2017-04-01\n    from: 2017-05-01\n")
    assert message.startswith("rules.yaml:4:5: ")
    assert "'from'" in message


def test_on_stays_a_string_key():
    """YAML 1.1 reads an unquoted `on` as true; a ruleset key is a name and stays 'on'."""
    doc = load_yaml_text("served: {on: year2.start}\non: 1\n", "rules.yaml")
    assert doc.data == {"served": {"on": "year2.start"}, "on": 1}
    assert all(isinstance(k, str) for k in doc.data)


def test_keys_that_look_like_numbers_stay_text():
    doc = load_yaml_text("1: a\n2.5: b\nnull: c\n", "rules.yaml")
    assert list(doc.data) == ["1", "2.5", "null"]


# --------------------------------------------------------------------------- values


def test_decimals_stay_exact():
    doc = load_yaml_text("score_at_most: 55.1\nweighting_percent: 0.25\n", "rules.yaml")
    assert doc.data["score_at_most"] == Decimal("55.1")
    assert isinstance(doc.data["score_at_most"], Decimal)
    assert doc.data["weighting_percent"] == Decimal("0.25")


def test_plain_values_load_as_expected():
    doc = load_yaml_text("n: 30\nf: true\nz: ~\nd: 2017-04-01\ns: text\nu: 1_000\n", "rules.yaml")
    assert doc.data == {"n": 30, "f": True, "z": None, "d": "2017-04-01", "s": "text", "u": 1000}


def test_dates_are_kept_as_written():
    """The schema checks the date format, so a YAML timestamp is not turned into a datetime."""
    doc = load_yaml_text("from: 2017-04-01\nat: 2017-04-01T10:00:00Z\n", "rules.yaml")
    assert doc.data == {"from": "2017-04-01", "at": "2017-04-01T10:00:00Z"}


@pytest.mark.parametrize("text", ["x: .inf\n", "x: .nan\n", "x: -.inf\n"])
def test_infinite_and_nan_numbers_are_refused(text: str):
    message = refusal(text)
    assert message.startswith("rules.yaml:1:4: ")
    assert "number" in message


def test_syntax_errors_name_the_line_and_column():
    message = refusal("id: x\nstatus: published: twice\n")
    assert message.startswith("rules.yaml:2:18: ")
    assert "not valid YAML" in message


# --------------------------------------------------------------------------- locations


def test_every_value_is_located():
    doc = load_yaml_text("periods:\n  year1:\n    from: 2017-04-01\n    quarters:\n      - {id: Q1}\n", "rules.yaml")
    assert doc.locate(("periods", "year1", "from")) == Location("rules.yaml", 3, 11)
    assert doc.locate(("periods", "year1", "quarters", 0, "id")) == Location("rules.yaml", 5, 14)
    assert doc.locate(("periods", "year1", "from", "__key__")) == Location("rules.yaml", 3, 5)


def test_an_unknown_path_is_located_at_its_nearest_known_ancestor():
    doc = load_yaml_text("periods:\n  year1:\n    from: 2017-04-01\n", "rules.yaml")
    assert doc.locate(("periods", "year1", "to")) == Location("rules.yaml", 3, 5)
    assert str(doc.locate(())) == "rules.yaml:1:1"
