"""The adapter conformance kit (cquin.testing): conforming adapters pass, broken ones are told why."""

from __future__ import annotations

from collections.abc import Mapping
from itertools import count
from pathlib import Path

import pytest

from cquin.adapters.base import Adapter
from cquin.adapters.canonical import CanonicalAdapter
from cquin.dataset import DatasetBuilder
from cquin.demo import DEMO_DIR
from cquin.engine.ruleset import load_ruleset
from cquin.testing import assert_conforms, check_adapter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cquin-adapter-example"
SMALL = ROOT / "tests" / "fixtures" / "equivalence" / "canonical"


@pytest.fixture(scope="module")
def vocab():
    return load_ruleset("cquin_2017_19").vocabulary()


def test_the_canonical_adapter_conforms_on_the_demo_data(vocab):
    assert check_adapter(CanonicalAdapter, DEMO_DIR, vocab) == []


def test_the_example_plugin_conforms_on_its_sample(vocab, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from cquin_adapter_example.plugin import EprEventAdapter

    assert_conforms(EprEventAdapter, EXAMPLE / "sample" / "epr_export.txt", vocab)


# --------------------------------------------------------------------------- broken adapters


class FillsUndeclaredTables(CanonicalAdapter):
    name = "undeclared-tables"
    tables = ("patients",)


class NeverRecognises(CanonicalAdapter):
    name = "never-recognises"

    def detect(self, path: Path) -> bool:
        return False


class ClaimsEverything(CanonicalAdapter):
    name = "claims-everything"

    def detect(self, path: Path) -> bool:
        return True


class RaisesWhileLoading(CanonicalAdapter):
    name = "raises"

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        raise KeyError("NHS_NUMBER")


class UnregisteredFile(CanonicalAdapter):
    name = "unregistered-file"

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        super().load(path, builder, options)
        row = {"patient_id": "9991000011", "code_system": "snomed", "code": "44054006", "recorded_on": "2017-01-01"}
        builder.add_rows("conditions", [row | {"_file": "elsewhere.csv", "_line": 2}])


class SilentRejection(CanonicalAdapter):
    name = "silent-rejection"

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        super().load(path, builder, options)
        builder.source("extra.txt", None)
        builder.reject("extra.txt", None, None, None, "")


class Nondeterministic(CanonicalAdapter):
    name = "nondeterministic"
    loads = count(1)

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        super().load(path, builder, options)
        builder.source("extra.txt", None)
        day = f"2017-01-{next(self.loads):02d}"
        builder.add_rows("conversations", [{"_file": "extra.txt", "_line": 1, "patient_id": "9991000011", "held_on": day}])


class Undescribed(Adapter):
    def detect(self, path: Path) -> bool:
        return False


def problems_of(cls: type[Adapter], vocab) -> list[str]:  # type: ignore[no-untyped-def]
    return check_adapter(cls, SMALL, vocab)


def test_filling_tables_it_does_not_declare_is_a_problem(vocab):
    problems = problems_of(FillsUndeclaredTables, vocab)
    assert "tables: fills conditions (7 rows), which it does not declare in tables ('patients',)" in problems


def test_not_recognising_its_own_sample_is_a_problem(vocab):
    assert any(p.startswith("detect: does not recognise the sample") for p in problems_of(NeverRecognises, vocab))


def test_recognising_anything_is_a_problem_because_detection_must_choose_one_adapter(vocab):
    problems = problems_of(ClaimsEverything, vocab)
    assert any("claims an empty folder" in p for p in problems)
    assert any("claims an unrelated text file" in p for p in problems)


def test_raising_while_loading_is_reported_with_the_exception(vocab):
    assert problems_of(RaisesWhileLoading, vocab) == ["load: raised while reading the sample (KeyError: 'NHS_NUMBER')"]


def test_rows_must_name_a_registered_source_file(vocab):
    problems = problems_of(UnregisteredFile, vocab)
    assert "rows: 1 conditions row(s) name _file 'elsewhere.csv', which was never registered with builder.source" in problems


def test_every_rejection_needs_a_line_or_reference_and_a_reason(vocab):
    problems = problems_of(SilentRejection, vocab)
    assert "rejections: a rejection in extra.txt has neither a line nor a reference" in problems
    assert "rejections: extra.txt ref None has no reason (say what was wrong and what was expected)" in problems


def test_loading_twice_must_give_the_same_dataset(vocab):
    problems = problems_of(Nondeterministic, vocab)
    assert problems == ["deterministic: loading the sample twice gave different conversations rows"]


def test_an_adapter_must_declare_its_name_description_and_tables(vocab):
    problems = check_adapter(Undescribed, SMALL, vocab)
    assert problems[0] == "declaration: adapter Undescribed needs a name of letters, digits, '-' or '_'"
    assert "declaration: the adapter has no description (users see it in the list of adapters)" in problems


def test_assert_conforms_lists_every_problem_in_its_message(vocab):
    with pytest.raises(AssertionError) as err:
        assert_conforms(FillsUndeclaredTables, SMALL, vocab)
    message = str(err.value)
    assert message.startswith("adapter 'undeclared-tables' does not conform (4 problem(s)):")
    assert "\n- tables: fills assessments (5 rows)" in message
