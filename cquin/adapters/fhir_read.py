"""Reading FHIR files for the ``fhir`` adapter: which files hold records, and their records one by one.

A source is a FHIR Bundle JSON file, a folder of them, or a FHIR Bulk Data
export folder of NDJSON files (one resource per line), plain or gzip-compressed
(``*.ndjson.gz``: Bulk Data servers may serve files with gzip content encoding,
and tools save them so; FHIR Bulk Data Access IG, "Bulk Data Output File
Request").  File names are matched without regard to case
(``Condition.000.NDJSON``).  NDJSON files are streamed line by line, so an
export of any size is read in constant memory; a Bundle is one JSON document
and is parsed whole.  Each record carries the number users see beside it: the
line of an NDJSON file, or the entry's position (1-based) in a Bundle.

Numbers are read exactly (decimals as :class:`~decimal.Decimal`, so a PAM score
of 55.2 stays 55.2, and an exponent such as ``1e30000000`` costs nothing to
read); ``NaN`` and ``Infinity`` are not JSON (RFC 8259 section 6) and make the
line malformed.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from cquin.exceptions import DataError

# Bulk Data export metadata, not records (names compared in lower case).
METADATA_FILES = frozenset({"manifest.json", "log.ndjson", "log.ndjson.gz"})
PEEK_BYTES = 64 * 1024

_BUNDLE_MARK = re.compile(rb'"resourceType"\s*:\s*"Bundle"')
# A relative reference: Type/id, optionally a version (FHIR R4 3.3.1 "Literal references"; id is [A-Za-z0-9\-\.]{1,64}).
_RELATIVE = re.compile(r"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")
_ABSOLUTE = re.compile(r"(https?://.+?)/([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?")


@dataclass(frozen=True)
class FhirFile:
    """One file of a FHIR source: ``name`` is how users see it (and the ledger's file name)."""

    name: str
    path: Path
    kind: str  # "ndjson" or "bundle"
    compressed: bool = False  # gzip (``*.ndjson.gz``)


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


def file_kind(path: Path) -> str | None:
    """``ndjson``, ``ndjson.gz`` or ``json`` by the file's name (any case); None for any other name."""
    name = path.name.lower()
    for kind in ("ndjson.gz", "ndjson", "json"):
        if name.endswith("." + kind):
            return kind
    return None


def _regular(path: Path) -> bool:
    """A regular file (never a FIFO, device or folder, which would hang or fail on reading); False when unreadable."""
    try:
        return path.is_file()
    except OSError:  # a symlink loop, a name too long
        return False


def is_data_file(path: Path) -> bool:
    """An NDJSON resource file (plain or gzip) or a JSON Bundle (export metadata excluded)."""
    if not _regular(path) or path.name.lower() in METADATA_FILES:
        return False
    kind = file_kind(path)
    if kind in ("ndjson", "ndjson.gz"):
        return True
    return kind == "json" and looks_like_bundle(path)


def find_files(path: Path) -> tuple[list[FhirFile], list[str]]:
    """The FHIR files at ``path`` (a file, or a folder's files in name order), and why each other entry is not read.

    In a folder every entry is either read or listed (``name: why``) for the load report: JSON files that
    are not FHIR, files of other kinds, subfolders and anything that is not a regular file.
    """
    if not path.is_dir():
        if not _regular(path):
            raise DataError(f"{path}: not a regular file or folder (a FHIR Bundle, an NDJSON file or a folder of them expected)")
        kind = file_kind(path)
        if kind in ("ndjson", "ndjson.gz"):
            return [FhirFile(path.name, path, "ndjson", kind == "ndjson.gz")], []
        return [FhirFile(path.name, path, "bundle")], []
    found, skipped = [], []
    for p in sorted(path.iterdir()):
        kind = file_kind(p)
        if p.is_dir():
            skipped.append(f"{p.name}: a folder; cquin reads the files of the folder it is given, not subfolders")
        elif not _regular(p):
            skipped.append(f"{p.name}: not a regular file (a pipe, device or broken link), so not read")
        elif p.name.lower() in METADATA_FILES:
            skipped.append(f"{p.name}: Bulk Data export metadata, not resources")
        elif kind in ("ndjson", "ndjson.gz"):
            found.append(FhirFile(p.name, p, "ndjson", kind == "ndjson.gz"))
        elif kind == "json":
            if _looks_like_fhir(p):
                found.append(FhirFile(p.name, p, "bundle"))
            else:
                skipped.append(f"{p.name}: not a FHIR resource or Bundle (no resourceType), so not read")
        else:
            skipped.append(f"{p.name}: not a FHIR file (expected *.ndjson, *.ndjson.gz or Bundle *.json), so not read")
    if not found:
        raise DataError(f"{path}: no FHIR files here (expected Bundle *.json files or Bulk Data *.ndjson or *.ndjson.gz files)")
    return found, skipped


def _looks_like_fhir(path: Path) -> bool:
    with path.open("rb") as fh:
        return b'"resourceType"' in fh.read(PEEK_BYTES)


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# Decimal reads any number literal in time linear in its length (1e30000000 is one digit and an exponent);
# Python's int() refuses integer literals over 4300 digits with a ValueError, which makes the line malformed.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_not_json_constant)


def parse(text: str) -> Any:
    """JSON with decimals kept exactly as written (a PAM score of 55.2 stays 55.2); NaN and Infinity refused."""
    return _DECODER.decode(text)


def _unreadable(exc: BaseException) -> str:
    """Why text is not usable JSON, in words (Python's JSON reader also fails on absurd nesting and numbers)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg} at column {exc.colno}"
    if isinstance(exc, RecursionError):
        return "malformed JSON: nested too deeply to read"
    if "is not a JSON value" in str(exc):
        return f"malformed JSON: {exc}"
    return f"malformed JSON: a value cannot be read ({str(exc).split(';')[0]})"


def records(f: FhirFile, *, only_if_contains: tuple[str, ...] | None = None) -> Iterator[Record]:
    """Every record of ``f``.

    ``only_if_contains`` lets a caller that wants a few resource types skip,
    without parsing, NDJSON lines that cannot be one of them (lines that
    contain none of the strings and no backslash: a JSON string may spell
    ``Patient`` as ``\\u0050atient``); lines it skips are not yielded at all.
    """
    if f.kind == "ndjson":
        yield from _ndjson_records(f, only_if_contains)
    else:
        yield from _bundle_records(f)


def _open_text(f: FhirFile) -> io.TextIOBase:
    """The file as UTF-8 text (decompressed for gzip), with universal newlines as for a plain file."""
    if f.compressed:
        return io.TextIOWrapper(gzip.open(f.path, "rb"), encoding="utf-8")
    return f.path.open(encoding="utf-8")


def _ndjson_records(f: FhirFile, only_if_contains: tuple[str, ...] | None) -> Iterator[Record]:
    parsed = failed = 0
    first_problem = ""
    what = "gzip-compressed NDJSON" if f.compressed else "NDJSON"
    try:
        with _open_text(f) as fh:
            for number, raw in enumerate(fh, 1):
                text = raw.strip()
                if number == 1:
                    text = text.lstrip("\ufeff")
                if not text:
                    continue
                if only_if_contains is not None and "\\" not in text and not any(s in text for s in only_if_contains):
                    continue
                try:
                    value = parse(text)
                except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
                    failed += 1
                    problem = _unreadable(exc)
                    first_problem = first_problem or f"line {number}: {problem}"
                    yield Record(number, None, problem + " (each line of an NDJSON file must be one FHIR resource)", text)
                    continue
                parsed += 1
                if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
                    yield Record(number, None, "not a FHIR resource: a JSON object with a resourceType was expected", text)
                    continue
                yield Record(number, value)
    except UnicodeDecodeError as exc:
        raise DataError(f"{f.name}: not UTF-8 text ({exc.reason} at byte {exc.start}); FHIR NDJSON files are UTF-8") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        detail = "it ends before the compressed data does" if isinstance(exc, EOFError) else str(exc)
        raise DataError(f"{f.name}: not a readable gzip file ({detail}); is it damaged or not really compressed?") from None
    except OSError as exc:
        raise DataError(f"{f.name}: cannot be read ({exc.strerror or exc})") from None
    # A file none of whose lines is JSON is not NDJSON at all (a CSV file misnamed, say): refused whole.
    if parsed == 0 and failed and only_if_contains is None:
        raise DataError(f"{f.name}: not {what}: no line is JSON ({first_problem})")


def _bundle_records(f: FhirFile) -> Iterator[Record]:
    try:
        with f.path.open(encoding="utf-8") as fh:
            doc = _DECODER.decode(fh.read())
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


def reference_base(url: str) -> str | None:
    """The server base of an absolute resource URL (``https://x/fhir/Patient/p1`` -> ``https://x/fhir``)."""
    m = _ABSOLUTE.fullmatch(url)
    return m.group(1) if m else None


def export_base(request: Any) -> str | None:
    """The server base of a Bulk Data kick-off URL (manifest ``request``: ``BASE/$export``, ``BASE/Patient/$export``, ``BASE/Group/ID/$export``)."""
    if not isinstance(request, str):
        return None
    m = re.fullmatch(r"(https?://.+?)(?:/Patient|/Group/[^/?]+)?/\$export(?:\?.*)?", request.strip())
    return m.group(1) if m else None


def reference_key(reference: Any, full_urls: dict[str, str], bases: frozenset[str] | set[str] = frozenset()) -> str | None:
    """The ``Type/id`` a FHIR Reference points to, or its raw text when it cannot be read as one; None if absent.

    Only references to this export's own resources become ``Type/id`` keys (FHIR R4 3.3.1): relative
    references, a Bundle entry's ``fullUrl``, and absolute URLs on one of ``bases`` (the export's own server,
    from its entries' fullUrls or its manifest).  A URL on another server stays as it is, so it resolves to
    nothing here, however its tail looks (``http://other.example/fhir/Patient/p1`` is not the local ``p1``).
    """
    if not isinstance(reference, dict):
        return None
    ref = reference.get("reference")
    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    if ref in full_urls:
        return full_urls[ref]
    m = _RELATIVE.fullmatch(ref)
    if m:
        return f"{m.group(1)}/{m.group(2)}"
    a = _ABSOLUTE.fullmatch(ref)
    if a and a.group(1) in bases:
        return f"{a.group(2)}/{a.group(3)}"
    return ref


def reference_type(reference: Any, key: str | None) -> str | None:
    """The resource type a Reference points to: from its ``Type/id`` key, else its ``type`` element."""
    if key and "/" in key and not key.startswith(("urn:", "http")):
        return key.split("/", 1)[0]
    if isinstance(reference, dict) and isinstance(reference.get("type"), str):
        return reference["type"]
    return None


def is_remote(key: str) -> bool:
    """True for a reference left as an absolute URL: a resource on another server."""
    return key.startswith(("http://", "https://"))


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
