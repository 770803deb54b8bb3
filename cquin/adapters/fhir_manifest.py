"""A FHIR Bulk Data export's ``manifest.json``: every file it lists must be there, and is read in full.

A Bulk Data server pages large exports: one resource type may come as several
NDJSON files (``Condition.000.ndjson``, ``Condition.001.ndjson``, ...), each
listed in the manifest's ``output`` array with its ``type`` and ``url`` (and,
from some servers, a ``count``).  See the FHIR Bulk Data Access IG, "Response
- Complete Status" (https://hl7.org/fhir/uv/bulkdata/export.html).  cquin reads
every NDJSON file in the folder; the manifest lets it say when the folder does
not hold the whole export (a listed file is missing: the load stops, since the
numbers would be built on part of the records) and when a file's record count
differs from the manifest's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from cquin.adapters.fhir_read import FhirFile
from cquin.dataset import DatasetBuilder
from cquin.exceptions import DataError

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass
class Manifest:
    """What the manifest lists, matched to the files found."""

    listed: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # file name -> (type, count)
    unlisted: list[str] = field(default_factory=list)
    problem: str | None = None  # why the manifest could not be used to check the export

    def report(self, builder: DatasetBuilder) -> None:
        """Notes for counts that differ from the manifest's, and files the manifest does not list."""
        if self.problem is not None:
            builder.note(f"{MANIFEST}: {self.problem}, so cquin could not check that the export is complete")
            return
        for name, (rtype, count) in sorted(self.listed.items()):
            stats = builder.ledger.files.get(name)
            if count is not None and stats is not None and stats.read != count:
                builder.note(f"{name}: {MANIFEST} lists {count:,} {rtype} resources, {stats.read:,} records were read")
        if self.unlisted:
            builder.note(f"{MANIFEST} does not list {', '.join(self.unlisted)}; read as part of the export all the same")


def _file_name(url: str) -> str:
    return PurePosixPath(urlparse(url).path).name


def check_manifest(path: Path, files: list[FhirFile]) -> Manifest | None:
    """The export folder's manifest matched to ``files``; a listed file that is missing stops the load."""
    manifest = path / MANIFEST if path.is_dir() else None
    if manifest is None or not manifest.is_file():
        return None
    if manifest.stat().st_size > MAX_MANIFEST_BYTES:
        raise DataError(f"{manifest}: larger than {MAX_MANIFEST_BYTES // 2**20} MB, which no Bulk Data manifest is")
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return Manifest(problem=f"not JSON ({str(exc)[:80]})")
    outputs = doc.get("output") if isinstance(doc, dict) else None
    if not isinstance(outputs, list):
        return Manifest(problem="it has no 'output' list of the exported files")
    present = {f.name.lower(): f.name for f in files}
    out = Manifest()
    missing = []
    for entry in outputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            continue
        name = _file_name(entry["url"])
        count = entry.get("count") if isinstance(entry.get("count"), int) else None
        found = present.get(name.lower())
        if found is None:
            missing.append(name)
            continue
        out.listed[found] = (str(entry.get("type") or "?"), count)
    if missing:
        raise DataError(
            f"{path}: {MANIFEST} lists {len(missing)} file(s) that are not in the folder ({', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}); the export is incomplete, so cquin will not count part of it — "
            "download every file the manifest lists"
        )
    out.unlisted = sorted(f.name for f in files if f.name not in out.listed and f.kind == "ndjson")
    return out
