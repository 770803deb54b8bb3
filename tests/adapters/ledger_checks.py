"""Shared assertion for adapter tests: every record of every source file is accounted for."""

from __future__ import annotations

import csv
from pathlib import Path

from cquin.dataset import CanonicalDataset


def records_in(path: Path) -> int:
    """Data records in a CSV file (UTF-8 or Windows-1252), header and blank rows excluded."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            with path.open(encoding=encoding, newline="") as fh:
                return sum(1 for row in list(csv.reader(fh))[1:] if row)
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"{path} is neither UTF-8 nor Windows-1252")


def assert_every_record_counted(ds: CanonicalDataset, folder: Path) -> None:
    """For every file: read = accepted + rejected, and read = the records in the file."""
    for name, stats in ds.ledger.files.items():
        assert stats.read == stats.accepted + stats.rejected, name
        assert stats.read == records_in(folder / name), name
