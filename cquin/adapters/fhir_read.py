"""Reading FHIR files for the ``fhir`` adapter: which files hold records, and their records one by one.

A source is a FHIR Bundle JSON file, a folder of them, or a FHIR Bulk Data
export folder of NDJSON files (one resource per line).  NDJSON files are
streamed line by line, so an export of any size is read in constant memory;
a Bundle is one JSON document and is parsed whole.  Each record carries the
number users see beside it: the line of an NDJSON file, or the entry's
position (1-based) in a Bundle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from cquin.exceptions import DataError

# Bulk Data export metadata, not records.
METADATA_FILES = frozenset({"manifest.json", "log.ndjson"})
PEEK_BYTES = 64 * 1024
# After this many unparseable lines and none parsed, the file is not NDJSON at all.
NOT_NDJSON_AFTER = 20

_BUNDLE_MARK = re.compile(rb'"resourceType"\s*:\s*"Bundle"')
_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")


@dataclass(frozen=True)
class FhirFile:
    """One file of a FHIR source: ``name`` is how users see it (and the ledger's file name)."""

    name: str
    path: Path
    kind: str  # "ndjson" or "bundle"


@dataclass(frozen=True)
class Record:
    """One resource (or one unreadable line) of a file."""

    line: int
    resource: dict[str, Any] | None
    error: str | None = None  # why the line or entry is not a resource
    text: str | None = None  # the raw text, for unreadable lines
    full_url: str | None = None  # a Bundle entry's fullUrl


def looks_like_bundle(path: Path) -> bool:
    """True when a JSON file's opening bytes say it is a FHIR Bundle (without parsing a large file)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(PEEK_BYTES)
    except OSError:
        return False
    return bool(_BUNDLE_MARK.search(head))


def is_data_file(path: Path) -> bool:
    """An NDJSON resource file or a JSON Bundle (export metadata excluded)."""
    if not path.is_file() or path.name in METADATA_FILES:
        return False
    if path.suffix == ".ndjson":
        return True
    return path.suffix == ".json" and looks_like_bundle(path)


def find_files(path: Path) -> tuple[list[FhirFile], list[str]]:
    """The FHIR files at ``path`` (a file, or a folder's files in name order), and a folder's JSON files that are not FHIR."""
    if path.is_file():
        kind = "ndjson" if path.suffix == ".ndjson" else "bundle"
        return [FhirFile(path.name, path, kind)], []
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    found, skipped = [], []
    for p in sorted(path.iterdir()):
        if not p.is_file() or p.name in METADATA_FILES:
            continue
        if p.suffix == ".ndjson":
            found.append(FhirFile(p.name, p, "ndjson"))
        elif p.suffix == ".json":
            if _looks_like_fhir(p):
                found.append(FhirFile(p.name, p, "bundle"))
            else:
                skipped.append(p.name)
    if not found:
        raise DataError(f"{path}: no FHIR files here (expected Bundle *.json files or Bulk Data *.ndjson files)")
    return found, skipped


def _looks_like_fhir(path: Path) -> bool:
    with path.open("rb") as fh:
        return b'"resourceType"' in fh.read(PEEK_BYTES)


_DECODER = json.JSONDecoder(parse_float=Decimal)


def parse(text: str) -> Any:
    """JSON with decimals kept exactly as written (a PAM score of 55.2 stays 55.2)."""
    return _DECODER.decode(text)


def _unreadable(exc: BaseException) -> str:
    """Why text is not usable JSON, in words (Python's JSON reader also fails on absurd nesting and numbers)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply to read"
    return f"malformed JSON: a value cannot be read ({str(exc).split(';')[0]})"


def records(f: FhirFile, *, only_if_contains: tuple[str, ...] | None = None) -> Iterator[Record]:
    """Every record of ``f``.

    ``only_if_contains`` lets a caller that wants a few resource types skip,
    without parsing, NDJSON lines that cannot be one of them (lines that
    contain none of the strings); lines it skips are not yielded at all.
    """
    if f.kind == "ndjson":
        yield from _ndjson_records(f, only_if_contains)
    else:
        yield from _bundle_records(f)


def _ndjson_records(f: FhirFile, only_if_contains: tuple[str, ...] | None) -> Iterator[Record]:
    parsed = failed = 0
    first_problem = ""
    try:
        with f.path.open(encoding="utf-8") as fh:
            for number, raw in enumerate(fh, 1):
                text = raw.strip()
                if number == 1:
                    text = text.lstrip("\ufeff")
                if not text:
                    continue
                if only_if_contains is not None and not any(s in text for s in only_if_contains):
                    continue
                try:
                    value = parse(text)
                except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
                    failed += 1
                    problem = _unreadable(exc)
                    first_problem = first_problem or f"line {number}: {problem}"
                    if only_if_contains is None and parsed == 0 and failed >= NOT_NDJSON_AFTER:
                        break
                    yield Record(number, None, problem + " (each line of an NDJSON file must be one FHIR resource)", text)
                    continue
                parsed += 1
                if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
                    yield Record(number, None, "not a FHIR resource: a JSON object with a resourceType was expected", text)
                    continue
                yield Record(number, value)
    except UnicodeDecodeError as exc:
        raise DataError(f"{f.name}: not UTF-8 text ({exc.reason} at byte {exc.start}); FHIR NDJSON files are UTF-8") from None
    if parsed == 0 and failed and only_if_contains is None:
        raise DataError(f"{f.name}: not NDJSON: no line is JSON ({first_problem})")


def _bundle_records(f: FhirFile) -> Iterator[Record]:
    try:
        with f.path.open(encoding="utf-8") as fh:
            doc = json.load(fh, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{f.name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); expected a FHIR Bundle"
        ) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{f.name}: not UTF-8 text ({exc.reason} at byte {exc.start}); FHIR JSON files are UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise DataError(f"{f.name}: cannot be read as a FHIR Bundle ({_unreadable(exc)})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resourceType"), str):
        raise DataError(f"{f.name}: not a FHIR resource or Bundle (no resourceType at the top level)")
    if doc["resourceType"] != "Bundle":
        yield Record(1, doc)  # a file holding a single resource
        return
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        raise DataError(f"{f.name}: Bundle.entry is not a list")
    for index, entry in enumerate(entries, 1):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        full_url = full_url if isinstance(full_url, str) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            yield Record(
                index, None, "Bundle entry has no resource (a resource with a resourceType was expected)", None, full_url
            )
            continue
        yield Record(index, resource, full_url=full_url)


def resource_key(resource: dict[str, Any], full_url: str | None = None) -> str:
    """``Type/id``: how references name a resource (a Bundle entry without an id is known by its fullUrl)."""
    rid = resource.get("id")
    if isinstance(rid, str) and rid:
        return f"{resource['resourceType']}/{rid}"
    return full_url or f"{resource['resourceType']}/(no id)"


def reference_key(reference: Any, full_urls: dict[str, str]) -> str | None:
    """The ``Type/id`` a FHIR Reference points to, or its raw text when it cannot be read as one; None if absent."""
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    if ref in full_urls:
        return full_urls[ref]
    m = _REFERENCE.search(ref)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    return ref


def reference_type(reference: Any, key: str | None) -> str | None:
    """The resource type a Reference points to: from its ``Type/id`` key, else its ``type`` element."""
    if key and "/" in key and not key.startswith(("urn:", "http")):
        return key.split("/", 1)[0]
    if isinstance(reference, dict) and isinstance(reference.get("type"), str):
        return reference["type"]
    return None


def date_part(value: Any) -> str | None:
    """The calendar date of a FHIR date or dateTime, as recorded (``2017-05-03T23:30:00+01:00`` -> ``2017-05-03``).

    Text that does not start with a full date is passed on whole, so the
    builder rejects it with the value shown (e.g. a partial date ``2017-05``).
    """
    if not isinstance(value, str) or not value.strip():
        return None
    value = value.strip()
    if re.match(r"\d{4}-\d{2}-\d{2}(T|$)", value):
        return value[:10]
    return value
