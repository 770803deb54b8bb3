"""The organisation's own records beside any export: provider, staff, training and overrides files.

A patient-record export (FHIR, CSDS, a vendor extract) carries what happened
to patients; it never carries the provider's plan dates, its staff list, its
training records or the cohort overrides agreed with the commissioner.  Those
come from the organisation itself, as canonical files (``provider.csv``,
``staff.csv``, ``training.csv``, ``overrides.csv``, or the same names as
``.xlsx`` workbooks).  Whatever adapter reads
the export, cquin looks for them in ``--org DIR`` when given, else in the
export's folder (the folder itself, or the folder a single export file is
in), and reads each through the canonical reader, so it is checked, counted
in the ledger and hashed like any other input.  Which tables are
organisational is part of the canonical contract (``x-cquin-source`` in
``cquin/schemas``).
"""

from __future__ import annotations

from pathlib import Path

from cquin.adapters.canonical import table_file
from cquin.dataset import DatasetBuilder, table
from cquin.dataset.tables import organisation_tables
from cquin.exceptions import DataError


def organisation_folder(source: Path) -> Path:
    """Where the organisation's files sit beside an export: the export folder, or a single file's folder."""
    return source if source.is_dir() else source.parent


def check_org_folder(org: Path) -> None:
    if not org.exists():
        raise DataError(
            f"--org {org}: no such folder (give the folder holding provider.csv, staff.csv, training.csv, overrides.csv)"
        )
    if not org.is_dir():
        raise DataError(
            f"--org {org}: not a folder (give the folder holding provider.csv, staff.csv, training.csv, overrides.csv)"
        )


def add_organisation_files(
    builder: DatasetBuilder, source: Path, org: Path | None, *, date_style: str = "iso", adapter: str = ""
) -> None:
    """Stage each organisational table the adapter did not fill, from ``org`` (if given) or beside ``source``.

    A table found in both places is an error (which one is meant cannot be
    guessed); a table found nowhere is noted as not supplied, naming where cquin
    looked, so a missing staff list is never silent.
    """
    beside = organisation_folder(source)
    for name in organisation_tables():
        file_name = table(name).file_name
        there = table_file(beside, name)
        given = table_file(org, name) if org is not None else None
        if name in builder.present:
            if given is not None:
                raise DataError(
                    f"{given}: the {adapter or 'chosen'} adapter already read {name} records from the export, "
                    f"so {file_name} in --org {org} would count them twice; remove one of them"
                )
            continue
        if org is not None and given is not None and there is not None and there.resolve() != given.resolve():
            raise DataError(
                f"{file_name} is both beside the export ({there}) and in --org {org} ({given}); "
                "cquin cannot tell which is meant: keep one of them"
            )
        found = given if org is not None else there
        if org is not None and found is None and there is not None:
            found = there  # --org holds some files; this one sits beside the export
        if found is None:
            where = " (neither in --org DIR nor beside the export)" if org is not None else ""
            builder.note(f"{file_name}: not supplied{where}, so there are no {name} records")
            continue
        builder.add_csv(name, found, date_style=date_style)
