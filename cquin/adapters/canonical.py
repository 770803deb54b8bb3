"""The canonical adapter: a folder of the canonical CSV files (only patients.csv is required).

File names match without regard to case (``Conditions.csv`` is the conditions
table, as Windows and macOS would open it anyway), with a note; two files for one
table (``conditions.csv`` and ``Conditions.csv`` on a case-sensitive file system)
are refused, naming both.  A table's file that is there but is not a regular file
(a folder, a pipe, a device such as a link to ``/dev/zero``, a broken link or a
link loop) stops the load naming the path: reading it would hang or mislead, and
calling it "not supplied" would quietly evaluate without it.  Other ``*.csv``
files in the folder are listed in a note as not read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import TABLE_NAMES, DatasetBuilder, table
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl


def _entries(folder: Path) -> dict[str, list[Path]]:
    """The folder's entries by lower-cased name (several when names differ only in case)."""
    out: dict[str, list[Path]] = {}
    try:
        for p in sorted(folder.iterdir()):
            out.setdefault(p.name.lower(), []).append(p)
    except OSError as exc:
        raise DataError(f"{folder}: the folder cannot be read ({exc.strerror or exc})") from None
    return out


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` (which exists as a name) cannot be read as a CSV file, or None when it is a regular file."""
    try:
        mode = path.stat().st_mode  # follows links
    except OSError as exc:
        if os.path.islink(path):
            return "a link that leads nowhere (broken, or a loop of links)"
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder, not a file"
    if stat.S_ISFIFO(mode):
        return "a pipe (FIFO), not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    return "not a regular file"


def table_file(folder: Path, file_name: str, entries: Mapping[str, list[Path]] | None = None) -> Path | None:
    """The file holding ``file_name`` in ``folder`` (any case), None when there is none; DataError when unusable."""
    found = (entries if entries is not None else _entries(folder)).get(file_name.lower(), [])
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise DataError(f"{folder}: {names} are both the {file_name} file (names differing only in case); keep one")
    if not found:
        return None
    path = found[0]
    why = not_a_regular_file(path)
    if why is not None:
        raise DataError(f"{path}: {why}; {file_name} must be a CSV file (remove it, or put the file there)")
    return path


class CanonicalAdapter(Adapter):
    name = "canonical"
    description = "A folder of cquin's canonical CSV files (patients.csv required; conditions, assessments, conversations, staff, training, overrides, provider optional)"
    tables = TABLE_NAMES
    options = (
        AdapterOption(
            "dates", "Date format in the files: iso (YYYY-MM-DD) or uk (DD/MM/YYYY, ISO also accepted)", "iso", ("iso", "uk")
        ),
    )

    def detect(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        try:
            return any(p.name.lower() == "patients.csv" for p in path.iterdir())
        except OSError:
            return False

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        if not path.is_dir():
            raise DataError(f"{path}: the canonical adapter reads a folder of CSV files, and this is not a folder")
        entries = _entries(path)
        files = {name: table_file(path, table(name).file_name, entries) for name in TABLE_NAMES}
        if files["patients"] is None:
            raise DataError(f"{path}: patients.csv is missing (it is the one required file)")
        style = options.get("dates", "iso")
        # The organisational tables (provider, staff, training, overrides) are read for every adapter alike,
        # from this folder or --org DIR: see cquin.adapters.organisation.
        for name in (n for n in TABLE_NAMES if not table(n).organisational):
            file, expected = files[name], table(name).file_name
            if file is None:
                builder.note(f"{expected}: not supplied, so there are no {name} records")
                continue
            if file.name != expected:
                builder.note(f"{file.name}: read as {expected} (file names are matched without regard to case)")
            builder.add_csv(name, file, date_style=style)
        known = {table(n).file_name.lower() for n in TABLE_NAMES}
        for lower, found in entries.items():
            if lower.endswith(".csv") and lower not in known:
                for p in found:
                    builder.note(f"{p.name}: not one of the canonical files ({', '.join(sorted(known))}), so not read")


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(CanonicalAdapter)
