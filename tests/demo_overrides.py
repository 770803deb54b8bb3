"""A copy of the demo records whose overrides all give one free-text reason (and any extra overrides)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from cquin.demo import DEMO_DIR


def demo_with_override_reason(folder: Path, reason: str, *, extra: tuple[dict[str, str], ...] = ()) -> Path:
    """``folder``: the demo records, every override (the demo's and ``extra``, each over the first's fields) giving ``reason``."""
    shutil.copytree(DEMO_DIR, folder)
    with (folder / "overrides.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows += [{**rows[0], **more} for more in extra]
    for row in rows:
        row["reason"] = reason
    with (folder / "overrides.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return folder
