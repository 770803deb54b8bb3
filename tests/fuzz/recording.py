"""A stand-in for the dataset builder that records what an adapter does with each source record.

Adapters may touch the dataset only through the builder (stage rows, reject
records, count merged records, register files, note things), so a recorder
with the same methods sees every record an adapter reads, with no database
behind it: fuzzing an adapter's reading and mapping then costs microseconds
an input, and "no lost record" becomes a set comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cquin.dataset import Vocabulary


@dataclass
class RecordingBuilder:
    vocabulary: Vocabulary
    files: dict[str, Path | None] = field(default_factory=dict)
    touched: dict[str, set[int]] = field(default_factory=dict)  # file -> lines staged, rejected or accepted
    rejected: dict[str, set[int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def source(self, name: str, path: Path | None, table_name: str | None = None, *, date_style: str = "iso") -> None:
        self.files[name] = path

    def _touch(self, file: str, line: int | None) -> None:
        assert file in self.files, f"{file} was not registered with source()"
        assert isinstance(line, int), f"{file}: a record without a line number ({line!r})"
        self.touched.setdefault(file, set()).add(line)

    def add_rows(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self._touch(row["_file"], row["_line"])

    def reject(
        self, file: str, line: int | None, column: str | None, value: str | None, reason: str, ref: str | None = None
    ) -> None:
        assert reason, f"{file} line {line}: a rejection without a reason"
        self._touch(file, line)
        self.rejected.setdefault(file, set()).add(line)  # type: ignore[arg-type]

    def accept_record(self, file: str, line: int) -> None:
        self._touch(file, line)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def unique_refs(self, *names: str) -> None:
        """Records sharing a ``_ref`` are compared at build time, which a recorder never reaches."""
