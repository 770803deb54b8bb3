"""Load a source through an adapter into the canonical dataset, containing any plugin failure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cquin import plugins
from cquin.dataset import CanonicalDataset, DatasetBuilder, Vocabulary
from cquin.exceptions import AdapterError, CquinError


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
    except Exception as exc:  # a plugin's bug: report it by name, never a half-built dataset
        raise AdapterError(f"adapter {chosen.name!r} failed while reading {source}: {type(exc).__name__}: {exc}") from None
    return builder.build(), chosen.name
