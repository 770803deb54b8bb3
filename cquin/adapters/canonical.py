"""The canonical adapter: a folder of the canonical CSV files (only patients.csv is required)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import TABLE_NAMES, DatasetBuilder, table
from cquin.exceptions import DataError
from cquin.hookspecs import hookimpl

DELIMITER_OPTION: dict[str, str | None] = {"auto": None, "comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}


class CanonicalAdapter(Adapter):
    name = "canonical"
    description = "A folder of cquin's canonical CSV files (patients.csv required; conditions, assessments, conversations, staff, training, overrides, provider optional)"
    tables = TABLE_NAMES
    options = (
        AdapterOption(
            "dates", "Date format in the files: iso (YYYY-MM-DD) or uk (DD/MM/YYYY, ISO also accepted)", "iso", ("iso", "uk")
        ),
        AdapterOption(
            "delimiter",
            "What separates the columns: auto (found from each file's header row), comma, semicolon, tab or pipe",
            "auto",
            ("auto", "comma", "semicolon", "tab", "pipe"),
        ),
    )

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / "patients.csv").is_file()

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        if not path.is_dir():
            raise DataError(f"{path}: the canonical adapter reads a folder of CSV files, and this is not a folder")
        if not (path / "patients.csv").is_file():
            raise DataError(f"{path}: patients.csv is missing (it is the one required file)")
        style = options.get("dates", "iso")
        delimiter = DELIMITER_OPTION[options.get("delimiter", "auto")]
        for name in TABLE_NAMES:
            file = path / table(name).file_name
            if file.is_file():
                builder.add_csv(name, file, date_style=style, delimiter=delimiter)
            else:
                builder.note(f"{table(name).file_name}: not supplied, so there are no {name} records")


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(CanonicalAdapter)
