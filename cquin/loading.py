"""Load a source through an adapter into the canonical dataset, containing any plugin failure."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import duckdb

from cquin import plugins
from cquin.dataset import CanonicalDataset, DatasetBuilder, Vocabulary
from cquin.dataset.builder import DEFAULT_MEMORY_LIMIT
from cquin.exceptions import AdapterError, CquinError, ResourceError


def load_dataset(
    source: Path,
    vocabulary: Vocabulary,
    adapter: str | None = None,
    options: Mapping[str, str] | None = None,
) -> tuple[CanonicalDataset, str]:
    """Read ``source`` with the named (or detected) adapter; returns the dataset and the adapter's name."""
    if not source.exists():
        raise AdapterError(f"{source}: no such file or folder")
    chosen = plugins.get_adapter(adapter) if adapter else plugins.detect_adapter(source)
    try:
        values = chosen.option_values(dict(options or {}))
    except ValueError as exc:
        raise AdapterError(str(exc)) from None
    builder = DatasetBuilder(vocabulary)
    try:
        chosen.load(source, builder, values)
    except CquinError:
        raise
    except duckdb.OutOfMemoryException:
        raise out_of_memory("reading") from None
    except Exception as exc:  # a plugin's bug: report it by name, never a half-built dataset
        raise AdapterError(f"adapter {chosen.name!r} failed while reading {source}: {type(exc).__name__}: {exc}") from None
    try:
        return builder.build(), chosen.name
    except duckdb.OutOfMemoryException:
        raise out_of_memory("checking the records") from None


def out_of_memory(while_doing: str) -> ResourceError:
    """A clear message for running out of the data engine's memory budget."""
    limit = os.environ.get("CQUIN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
    return ResourceError(
        f"ran out of memory while {while_doing} (limit {limit}); this dataset needs more: "
        "set CQUIN_MEMORY_LIMIT (e.g. CQUIN_MEMORY_LIMIT=4GB) and run again"
    )
