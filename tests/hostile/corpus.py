"""The bad-input corpus: what real exports, real people and hostile files do to an input, and what cquin must say.

Each :class:`Case` is one hostile file (its bytes built here from readable
parts, so a reader sees exactly what is wrong with it) placed in an otherwise
good source, with the outcome expected next to it:

- :class:`Refused`: the file cannot be read at all; loading raises
  :class:`~cquin.exceptions.DataError` naming the file, with the fragment in its
  message (never another exception type, never a traceback);
- :class:`Read`: the load succeeds; the hostile file yields exactly ``records``
  records, the listed rejections (line and reason fragment), and every other
  row still arrives (``arrive``: a query over the canonical tables and its rows).

:func:`check` runs a case and asserts all of that, plus that every file's
counts balance (read = accepted + rejected).  ``python -m tests.hostile.corpus
DIR`` writes the corpus out as folders, for trying by hand (``cquin load``) or
as seeds for a fuzzer.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cquin.dataset import CanonicalDataset, Vocabulary
from cquin.exceptions import AdapterError, CquinError, DataError
from cquin.loading import load_dataset


@dataclass(frozen=True)
class Refused:
    """The whole file is refused with a DataError whose message contains ``fragment``."""

    fragment: str


@dataclass(frozen=True)
class Read:
    """The file is read: ``records`` records, these rejections, and these rows arriving."""

    records: int
    rejected: tuple[tuple[int, str], ...] = ()  # (line, reason fragment), in line order
    arrive: tuple[str, list[tuple]] | None = None  # (SQL over the canonical tables, the rows it must return)
    note: str | None = None  # a fragment one of the load's notes must contain


@dataclass(frozen=True)
class Case:
    id: str
    adapter: str
    files: Mapping[str, bytes]  # file name -> bytes; the hostile one is ``target``
    target: str
    expect: Refused | Read
    options: Mapping[str, str] = field(default_factory=dict)
    source: str | None = None  # load this file (FHIR) instead of the folder

    def param(self) -> object:
        return pytest.param(self, id=self.id)


def write(case: Case, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        (folder / name).write_bytes(data)
    return folder / case.source if case.source else folder


def balance(ds: CanonicalDataset) -> None:
    """Every file's counts balance: read = accepted + rejected."""
    for name, stats in ds.ledger.files.items():
        assert stats.read == stats.accepted + stats.rejected, f"{name}: {stats.as_dict()}"


def check(case: Case, folder: Path, vocab: Vocabulary) -> CanonicalDataset | None:
    """Load ``case`` from ``folder`` and assert its expected outcome; returns the dataset when it loads."""
    source = write(case, folder)
    if isinstance(case.expect, Refused):
        with pytest.raises(CquinError) as raised:
            load_dataset(source, vocab, adapter=case.adapter, options=case.options)
        assert type(raised.value) is DataError, f"expected a DataError, got {type(raised.value).__name__}: {raised.value}"
        assert not isinstance(raised.value, AdapterError)
        message = str(raised.value)
        assert case.target in message, f"the message does not name {case.target}: {message}"
        assert case.expect.fragment in message
        return None
    ds, _ = load_dataset(source, vocab, adapter=case.adapter, options=case.options)
    balance(ds)
    stats = ds.ledger.files[case.target]
    assert stats.read == case.expect.records, f"{case.target}: {stats.as_dict()}"
    found = ds.con.execute("SELECT line, reason FROM rejections WHERE file = ? ORDER BY line, reason", [case.target]).fetchall()
    assert len(found) == len(case.expect.rejected), found
    for (line, reason), (want_line, fragment) in zip(found, case.expect.rejected, strict=True):
        assert line == want_line, found
        assert fragment in reason, f"line {line}: {reason!r} does not contain {fragment!r}"
    assert stats.rejected == len({line for line, _ in found})
    if case.expect.arrive is not None:
        sql, rows = case.expect.arrive
        assert ds.con.execute(sql).fetchall() == rows
    if case.expect.note is not None:
        assert any(case.expect.note in n for n in ds.ledger.notes), ds.ledger.notes
    return ds


# --------------------------------------------------------------------------- byte helpers


def lines(*rows: str, end: str = "\n") -> str:
    return "".join(r + end for r in rows)


def utf8(text: str) -> bytes:
    return text.encode("utf-8")


Transform = Callable[[str], bytes]


def main(out: Path) -> None:  # pragma: no cover - a convenience for people, not run by the tests
    from tests.hostile import test_canonical_corpus, test_csds_corpus, test_fhir_corpus

    for module in (test_canonical_corpus, test_csds_corpus, test_fhir_corpus):
        for case in module.CASES:
            write(case, out / case.adapter / case.id)
            print(out / case.adapter / case.id)


if __name__ == "__main__":  # pragma: no cover
    main(Path(sys.argv[1]))
