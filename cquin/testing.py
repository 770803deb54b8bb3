"""The adapter conformance kit: check that an adapter keeps cquin's contract, from any test suite.

An IT team writing an adapter plugin runs this against its adapter and a sample
export::

    from cquin.testing import assert_conforms
    from my_plugin import MyAdapter

    def test_my_adapter_conforms():
        assert_conforms(MyAdapter, Path("sample/export.txt"))

:func:`check_adapter` returns the problems found (an empty list means the
adapter conforms); :func:`assert_conforms` raises ``AssertionError`` listing
them.  The checks are the promises every adapter makes to cquin and to the
commissioner reading its reports:

1. it declares a name, a description and the canonical tables it fills, and
   its options' defaults are among their choices;
2. ``detect`` recognises the sample, and says no (without raising) to an empty
   folder and to an unrelated file, so automatic detection keeps working for
   every installed adapter;
3. it loads the sample through the builder without raising;
4. it fills only the tables it declares;
5. every source file's counts balance (read = accepted + rejected) and each
   registered file had at least one record read;
6. every rejection names a registered file, a line or reference, and a reason;
7. every row carries ``_file`` naming a source it registered, and a ``_line``;
8. loading twice gives identical canonical tables, rejections and counts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cquin.adapters.base import Adapter, AdapterRegistry
from cquin.dataset import TABLE_NAMES, CanonicalDataset, DatasetBuilder, Vocabulary
from cquin.dataset.duck import scalar

__all__ = ["assert_conforms", "check_adapter"]


def _default_vocabulary() -> Vocabulary:
    from cquin.engine.ruleset import load_ruleset

    return load_ruleset("cquin_2017_19").vocabulary()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def check_adapter(
    adapter_cls: type[Adapter],
    sample_path: Path,
    vocabulary: Vocabulary | None = None,
    options: Mapping[str, str] | None = None,
) -> list[str]:
    """The ways ``adapter_cls`` breaks the adapter contract on ``sample_path`` (empty: it conforms)."""
    problems: list[str] = []
    sample_path = Path(sample_path)
    problems += _check_declaration(adapter_cls)
    try:
        adapter = adapter_cls()
    except Exception as exc:
        return problems + [f"the adapter class cannot be instantiated without arguments ({_describe(exc)})"]
    problems += _check_detect(adapter, sample_path)
    try:
        values = adapter.option_values(dict(options or {}))
    except ValueError as exc:
        return problems + [f"the options given are refused: {exc}"]

    vocab = vocabulary or _default_vocabulary()
    first = _load(adapter, sample_path, vocab, values)
    if isinstance(first, str):
        return problems + [first]
    ds, registered = first
    problems += _check_tables(adapter, ds)
    problems += _check_counts(ds, registered)
    problems += _check_rejections(ds, registered)
    problems += _check_rows(ds, registered)

    second = _load(adapter, sample_path, vocab, values)
    if isinstance(second, str):
        return problems + [f"a second load failed: {second}"]
    problems += _check_same(ds, second[0])
    return problems


def assert_conforms(
    adapter_cls: type[Adapter],
    sample_path: Path,
    vocabulary: Vocabulary | None = None,
    options: Mapping[str, str] | None = None,
) -> None:
    """Raise ``AssertionError`` listing every way ``adapter_cls`` breaks the adapter contract."""
    problems = check_adapter(adapter_cls, sample_path, vocabulary, options)
    if problems:
        name = getattr(adapter_cls, "name", "") or adapter_cls.__name__
        raise AssertionError(
            f"adapter {name!r} does not conform ({len(problems)} problem(s)):\n" + "\n".join(f"- {p}" for p in problems)
        )


# --------------------------------------------------------------------------- the checks


def _check_declaration(cls: type[Adapter]) -> list[str]:
    problems = []
    try:
        AdapterRegistry().add(cls)  # the same checks cquin makes when a plugin registers it
    except TypeError as exc:
        problems.append(f"declaration: {exc}")
    if not str(getattr(cls, "description", "") or "").strip():
        problems.append("declaration: the adapter has no description (users see it in the list of adapters)")
    for opt in getattr(cls, "options", ()):
        if opt.choices and opt.default is not None and opt.default not in opt.choices:
            problems.append(
                f"declaration: option {opt.name!r} has default {opt.default!r}, which is not one of its choices {opt.choices}"
            )
    return problems


def _check_detect(adapter: Adapter, sample: Path) -> list[str]:
    problems = []
    try:
        if adapter.detect(sample) is not True:
            problems.append(f"detect: does not recognise the sample {sample} (returned False)")
    except Exception as exc:
        problems.append(f"detect: raised on the sample {sample} ({_describe(exc)})")
    with tempfile.TemporaryDirectory(prefix="cquin-conformance-") as tmp:
        empty = Path(tmp) / "empty"
        empty.mkdir()
        unrelated = Path(tmp) / "notes.txt"
        unrelated.write_text("Not a record export: just some notes.\n", encoding="utf-8")
        for other, what in ((empty, "an empty folder"), (unrelated, "an unrelated text file")):
            try:
                if adapter.detect(other):
                    problems.append(
                        f"detect: claims {what} ({other.name}), which would stop automatic detection choosing one adapter"
                    )
            except Exception as exc:
                problems.append(f"detect: raised on {what} instead of returning False ({_describe(exc)})")
    return problems


def _load(
    adapter: Adapter, sample: Path, vocab: Vocabulary, values: Mapping[str, str]
) -> tuple[CanonicalDataset, set[str]] | str:
    """Load as :func:`cquin.loading.load_dataset` does; the dataset and the sources registered, or why it failed."""
    builder = DatasetBuilder(vocab)
    try:
        adapter.load(sample, builder, values)
    except Exception as exc:
        return f"load: raised while reading the sample ({_describe(exc)})"
    registered = set(builder.ledger.files)  # before build(), which adds any file a row names
    try:
        ds = builder.build()
    except Exception as exc:
        return f"load: the staged rows could not be built into a dataset ({_describe(exc)})"
    return ds, registered


def _check_tables(adapter: Adapter, ds: CanonicalDataset) -> list[str]:
    problems = []
    for name in TABLE_NAMES:
        if name in adapter.tables:
            continue
        if name in ds.present and ds.count(name) > 0:
            problems.append(
                f"tables: fills {name} ({ds.count(name)} rows), which it does not declare in tables {tuple(adapter.tables)}"
            )
    return problems


def _check_counts(ds: CanonicalDataset, registered: set[str]) -> list[str]:
    problems = []
    if not registered:
        problems.append("counts: no source file was registered (call builder.source or builder.add_csv for every file read)")
    for name, stats in sorted(ds.ledger.files.items()):
        if stats.read != stats.accepted + stats.rejected:
            problems.append(f"counts: {name}: read {stats.read} but accepted {stats.accepted} + rejected {stats.rejected}")
        if name in registered and stats.read <= 0:
            problems.append(
                f"counts: {name}: registered but no record was read from it (every record must be staged, accepted or rejected)"
            )
    return problems


def _check_rejections(ds: CanonicalDataset, registered: set[str]) -> list[str]:
    problems = []
    for file, line, ref, _column, _value, reason in ds.ledger.rejection_rows():
        where = f"{file} line {line}" if line is not None else f"{file} ref {ref}"
        if not file:
            problems.append(f"rejections: a rejection names no file (reason: {reason!r})")
        elif file not in registered:
            problems.append(f"rejections: {where} names a file that was never registered with builder.source")
        if line is None and not ref:
            problems.append(f"rejections: a rejection in {file} has neither a line nor a reference")
        if not (reason or "").strip():
            problems.append(f"rejections: {where} has no reason (say what was wrong and what was expected)")
    return problems


def _check_rows(ds: CanonicalDataset, registered: set[str]) -> list[str]:
    problems = []
    for name in sorted(ds.present):
        files = ds.con.execute(f"SELECT _file, count(*) FROM {name} GROUP BY _file ORDER BY _file NULLS FIRST").fetchall()
        for file, n in files:
            if file is None:
                problems.append(f"rows: {n} {name} row(s) have no _file")
            elif file not in registered:
                problems.append(f"rows: {n} {name} row(s) name _file {file!r}, which was never registered with builder.source")
        no_line = scalar(ds.con, f"SELECT count(*) FROM {name} WHERE _line IS NULL")  # type: ignore[index]
        if no_line:
            problems.append(f"rows: {no_line} {name} row(s) have no _line")
    return problems


def _snapshot(ds: CanonicalDataset) -> dict[str, Any]:
    tables = {name: ds.con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall() for name in sorted(ds.present)}
    rejections = ds.con.execute("SELECT * FROM rejections ORDER BY ALL").fetchall()
    counts = {name: stats.as_dict() for name, stats in ds.ledger.files.items()}
    return {"tables": tables, "rejections": rejections, "counts": counts, "notes": sorted(ds.ledger.notes)}


def _check_same(first: CanonicalDataset, second: CanonicalDataset) -> list[str]:
    a, b = _snapshot(first), _snapshot(second)
    problems = []
    for name in sorted(set(a["tables"]) | set(b["tables"])):
        if a["tables"].get(name) != b["tables"].get(name):
            problems.append(f"deterministic: loading the sample twice gave different {name} rows")
    for key in ("rejections", "counts", "notes"):
        if a[key] != b[key]:
            problems.append(f"deterministic: loading the sample twice gave different {key}")
    return problems
