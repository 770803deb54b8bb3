"""Load a source through an adapter into the canonical dataset, containing any plugin failure."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import duckdb

from cquin import plugins
from cquin.adapters.organisation import add_organisation_files, check_org_folder
from cquin.dataset import CanonicalDataset, DatasetBuilder, Vocabulary
from cquin.dataset.builder import DEFAULT_MEMORY_LIMIT
from cquin.exceptions import AdapterError, CquinError, ResourceError
from cquin.faults import reraise_fault


def load_dataset(
    source: Path,
    vocabulary: Vocabulary,
    adapter: str | None = None,
    options: Mapping[str, str] | None = None,
    org: Path | None = None,
) -> tuple[CanonicalDataset, str]:
    """Read ``source`` with the named (or detected) adapter; returns the dataset and the adapter's name.

    The organisation's own records (provider, staff, training, overrides) are then read from ``org``, or
    from beside the export, whatever the adapter (:mod:`cquin.adapters.organisation`).
    """
    if not source.exists():
        raise AdapterError(f"{source}: no such file or folder")
    if org is not None:
        check_org_folder(org)
    chosen = plugins.get_adapter(adapter) if adapter else plugins.detect_adapter(source)
    try:
        values = chosen.option_values(dict(options or {}))
    except ValueError as exc:
        raise AdapterError(str(exc)) from None
    builder = DatasetBuilder(vocabulary, on_disk=work_on_disk(source))
    try:
        chosen.load(source, builder, values)
        add_organisation_files(builder, source, org, date_style=values.get("dates", "iso"), adapter=chosen.name)
    except CquinError:
        raise
    except duckdb.OutOfMemoryException as exc:
        reraise_fault(exc, "the data engine's temporary work files (reading the records)")
        raise out_of_memory("reading") from None
    except Exception as exc:  # a plugin's bug: report it by name, never a half-built dataset
        # ... unless it is Ctrl-C, a termination or a full temporary folder, which are said as such.
        reraise_fault(exc, "the data engine's temporary work files (reading the records)")
        raise AdapterError(f"adapter {chosen.name!r} failed while reading {source}: {type(exc).__name__}: {exc}") from None
    try:
        return builder.build(), chosen.name
    except duckdb.OutOfMemoryException as exc:
        reraise_fault(exc, "the data engine's temporary work files (checking the records)")
        raise out_of_memory("checking the records") from None
    except duckdb.Error as exc:
        reraise_fault(exc, "the data engine's temporary work files (checking the records)")
        raise


# Work on disk when the source is larger than this share of the memory limit: the checked tables and the
# evaluation's tables together take several times the size of the text read (measured: 1M patients, 209 MB
# of CSV, peak 1.3 GB in memory with a 1 GB limit; 5M patients, 1.1 GB of CSV, needs disk).
DISK_ABOVE_SHARE_OF_LIMIT = 0.5


def work_on_disk(source: Path) -> bool:
    """Whether to build the dataset in a database file rather than in memory (``CQUIN_WORK_STORAGE`` overrides)."""
    choice = (os.environ.get("CQUIN_WORK_STORAGE") or "auto").strip().lower()
    if choice in ("disk", "memory"):
        return choice == "disk"
    if choice != "auto":
        raise ResourceError(f"CQUIN_WORK_STORAGE must be auto, memory or disk (it is {choice!r})")
    limit = memory_bytes(os.environ.get("CQUIN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT)
    files = [source] if source.is_file() else (f for f in source.rglob("*") if f.is_file())
    size = 0
    for f in files:
        size += f.stat().st_size
        if size > limit * DISK_ABOVE_SHARE_OF_LIMIT:
            return True
    return False


def memory_bytes(text: str) -> float:
    """A DuckDB memory size ("1GB", "512MB", "4GiB") in bytes; unknown forms count as unlimited."""
    units = {"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "b": 1}
    t = text.strip().lower().replace(" ", "")
    for unit in sorted(units, key=len, reverse=True):
        if t.endswith(unit):
            try:
                return float(t[: -len(unit)]) * units[unit]
            except ValueError:
                break
    return float("inf")


def out_of_memory(while_doing: str) -> ResourceError:
    """A clear message for running out of the data engine's memory budget."""
    limit = os.environ.get("CQUIN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    return ResourceError(
        f"ran out of memory while {while_doing} (limit {limit}); this dataset needs more: "
        "set CQUIN_WORK_STORAGE=disk to work in a file on disk, or raise CQUIN_MEMORY_LIMIT (e.g. CQUIN_MEMORY_LIMIT=4GB), "
        "and run again"
    )
