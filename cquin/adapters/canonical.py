"""The canonical adapter: cquin's own tables, as a folder of CSV files or Excel workbooks, or one workbook.

A folder holds one file per table, ``patients.csv`` or ``patients.xlsx`` (only patients is required).
A single workbook holds one sheet per table, each sheet named after its table (``patients``, ``staff``...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import TABLE_NAMES, DatasetBuilder, table
from cquin.dataset.xlsxread import EXCEL_SUFFIXES, is_workbook, sheet_names
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl

DELIMITER_OPTION: dict[str, str | None] = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}


def table_files(folder: Path, name: str) -> list[Path]:
    """The files in ``folder`` that hold table ``name``: ``name.csv`` and/or ``name.xlsx`` (any case)."""
    wanted = {f"{name}{suffix}" for suffix in (".csv", *EXCEL_SUFFIXES)}
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower() in wanted)


def workbook_tables(path: Path) -> dict[str, str]:
    """A workbook's sheets that are named after canonical tables (any case): table -> sheet."""
    out: dict[str, str] = {}
    for sheet in sheet_names(path):
        key = sheet.strip().lower()
        if key in TABLE_NAMES and key not in out:
            out[key] = sheet
    return out


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
        if path.is_dir():
            return bool(table_files(path, "patients"))
        if path.is_file() and is_workbook(path):
            try:
                return "patients" in workbook_tables(path)
            except DataError:
                return False
        return False

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        style = options.get("dates", "iso")
        if path.is_file() and is_workbook(path):
            self._load_workbook(path, builder, style)
            return
        if not path.is_dir():
            raise DataError(
                f"{path}: the canonical adapter reads a folder of CSV files or Excel workbooks, or one workbook, and this is neither"
            )
        if not table_files(path, "patients"):
            raise DataError(f"{path}: patients.csv (or patients.xlsx) is missing (it is the one required file)")
        delimiter = DELIMITER_OPTION[options.get("delimiter", "auto")]
        for name in TABLE_NAMES:
            files = table_files(path, name)
            if len(files) > 1:
                raise DataError(f"{path}: {' and '.join(f.name for f in files)} both hold the {name} table; keep one of them")
            if files:
                builder.add_csv(name, files[0], date_style=style, delimiter=delimiter)
            else:
                builder.note(f"{table(name).file_name}: not supplied, so there are no {name} records")

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
            else:
                builder.note(f"{path.name}: no sheet called {name}, so there are no {name} records")
        others = [s for s in sheet_names(path) if s not in found.values()]
        if others:
            builder.note(f"{path.name}: sheet(s) {', '.join(others)} are not canonical tables and were ignored")


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(CanonicalAdapter)
