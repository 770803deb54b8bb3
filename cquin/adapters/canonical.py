"""The canonical adapter: cquin's own tables, as a folder of CSV files or Excel workbooks, or one workbook.

A folder holds one file per table, ``patients.csv`` or ``patients.xlsx`` (only
patients is required).  File names match without regard to case
(``Conditions.csv`` is the conditions table, as Windows and macOS would open it
anyway), with a note; two files for one table (``conditions.csv`` and
``Conditions.csv``, or ``conditions.csv`` and ``conditions.xlsx``) are refused,
naming both.  A table's file that is there but is not a regular file (a folder,
a pipe, a device such as a link to ``/dev/zero``, a broken link or a link loop)
stops the load naming the path: reading it would hang or mislead, and calling it
"not supplied" would quietly evaluate without it.  Other ``*.csv`` files in the
folder are listed in a note as not read.

A single workbook holds one sheet per table, each sheet named after its table
(``patients``, ``staff``...).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import TABLE_NAMES, DatasetBuilder, table
from cquin.dataset.xlsxread import EXCEL_SUFFIXES, is_workbook, sheet_names
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl

DELIMITER_OPTION: dict[str, str | None] = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
TABLE_SUFFIXES = (".csv", *EXCEL_SUFFIXES)


def workbook_tables(path: Path) -> dict[str, str]:
    """A workbook's sheets that are named after canonical tables (any case): table -> sheet."""
    out: dict[str, str] = {}
    for sheet in sheet_names(path):
        key = sheet.strip().lower()
        if key in TABLE_NAMES and key not in out:
            out[key] = sheet
    return out


def folder_entries(folder: Path) -> dict[str, list[Path]]:
    """The folder's entries by lower-cased name (several when names differ only in case)."""
    out: dict[str, list[Path]] = {}
    try:
        for p in sorted(folder.iterdir()):
            out.setdefault(p.name.lower(), []).append(p)
    except OSError as exc:
        raise DataError(f"{folder}: the folder cannot be read ({exc.strerror or exc})") from None
    return out


def not_a_regular_file(path: Path) -> str | None:
    """Why ``path`` (which exists as a name) cannot be read as a table file, or None when it is a regular file."""
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


def table_file(folder: Path, name: str, entries: Mapping[str, list[Path]] | None = None) -> Path | None:
    """The file holding canonical table ``name`` in ``folder`` (CSV or workbook, any case), None when there is none.

    Two candidates, or one that is not a regular file, are a DataError naming the path(s).
    """
    entries = entries if entries is not None else folder_entries(folder)
    found = [p for suffix in TABLE_SUFFIXES for p in entries.get(f"{name}{suffix}", [])]
    if len(found) > 1:
        names = " and ".join(p.name for p in found)
        raise DataError(f"{folder}: {names} both hold the {name} table (names differ only in case or type); keep one")
    if not found:
        return None
    path = found[0]
    why = not_a_regular_file(path)
    if why is not None:
        raise DataError(
            f"{path}: {why}; {path.name} must be a CSV file or an Excel workbook of the {name} records "
            "(remove it, or put the file there)"
        )
    return path


class CanonicalAdapter(Adapter):
    name = "canonical"
    description = (
        "cquin's canonical tables: a folder of CSV files or Excel workbooks (patients.csv or patients.xlsx required; "
        "conditions, assessments, conversations, staff, training, overrides, provider optional), "
        "or one workbook with a sheet per table"
    )
    tables = TABLE_NAMES
    options = (
        AdapterOption(
            "dates", "Date format in the files: iso (YYYY-MM-DD) or uk (DD/MM/YYYY, ISO also accepted)", "iso", ("iso", "uk")
        ),
        AdapterOption(
            "delimiter",
            "What separates the columns of CSV files: auto (found from each file's header row), comma, semicolon, tab or pipe",
            "auto",
            ("auto", "comma", "semicolon", "tab", "pipe"),
        ),
    )

    def detect(self, path: Path) -> bool:
        try:
            if path.is_dir():
                return any(p.name.lower() in {f"patients{s}" for s in TABLE_SUFFIXES} for p in path.iterdir())
            if path.is_file() and is_workbook(path):
                return "patients" in workbook_tables(path)
        except (OSError, DataError):
            return False
        return False

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        style = options.get("dates", "iso")
        if path.is_file() and is_workbook(path):
            self._load_workbook(path, builder, style)
            return
        if not path.is_dir():
            raise DataError(
                f"{path}: the canonical adapter reads a folder of CSV files or Excel workbooks, or one workbook, "
                "and this is neither"
            )
        entries = folder_entries(path)
        files = {name: table_file(path, name, entries) for name in TABLE_NAMES}
        if files["patients"] is None:
            raise DataError(f"{path}: patients.csv (or patients.xlsx) is missing (it is the one required file)")
        delimiter = DELIMITER_OPTION[options.get("delimiter", "auto")]
        # The organisational tables (provider, staff, training, overrides) are read for every adapter alike,
        # from this folder or --org DIR: see cquin.adapters.organisation.
        for name in (n for n in TABLE_NAMES if not table(n).organisational):
            file, expected = files[name], table(name).file_name
            if file is None:
                builder.note(f"{expected}: not supplied, so there are no {name} records")
                continue
            if file.name != file.name.lower():
                builder.note(f"{file.name}: read as {file.name.lower()} (file names are matched without regard to case)")
            builder.add_csv(name, file, date_style=style, delimiter=delimiter)
        known = {table(n).file_name.lower() for n in TABLE_NAMES}
        for lower, found in entries.items():
            if lower.endswith(".csv") and lower not in known:
                for p in found:
                    builder.note(f"{p.name}: not one of the canonical files ({', '.join(sorted(known))}), so not read")

    def _load_workbook(self, path: Path, builder: DatasetBuilder, style: str) -> None:
        found = workbook_tables(path)
        if "patients" not in found:
            raise DataError(
                f"{path.name}: no sheet called patients (the workbook has: {', '.join(sheet_names(path))}); "
                "name each sheet after its table"
            )
        for name in TABLE_NAMES:
            if name in found:
                builder.add_xlsx(name, path, found[name], date_style=style)
            elif not table(name).organisational:  # organisational tables may still come from --org DIR
                builder.note(f"{path.name}: no sheet called {name}, so there are no {name} records")
        others = [s for s in sheet_names(path) if s not in found.values()]
        if others:
            builder.note(f"{path.name}: sheet(s) {', '.join(others)} are not canonical tables and were ignored")


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(CanonicalAdapter)
