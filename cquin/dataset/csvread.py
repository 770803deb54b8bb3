"""Read a canonical-format CSV file into a raw staging table, fast and without losing a row.

DuckDB's CSV reader does the parsing (a million rows a second); this module
decides the encoding (UTF-8, with or without a byte-order mark, or
Windows-1252), checks the header, maps columns by name, and turns rows the
parser cannot split into rejections with their line numbers.  A file that
cannot be read at all raises :class:`DataError` naming the file and the problem.

Long because encodings, dialects and rows the parser cannot split each need their own handling; it is one job, a file to a staging table with nothing lost.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from cquin import workspace
from cquin.dataset.duck import scalar, sql_str
from cquin.dataset.ledger import Ledger
from cquin.dataset.tables import Table
from cquin.exceptions import DataError
from cquin.faults import reraise_fault

_CHUNK = 1 << 22
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


def sniff_encoding(path: Path) -> str:
    """'utf-8' or 'cp1252'; raise DataError for anything else."""
    return _inspect(path).encoding


@dataclass(frozen=True)
class _Shape:
    """What one pass over a file's bytes found: its encoding and anything the CSV reader must be spared."""

    encoding: str  # 'utf-8' or 'cp1252'
    has_nul: bool  # NUL bytes somewhere (never in text; their rows are rejected)
    mixed_newlines: bool  # lone CR line ends, or CRLF mixed with LF: normalised before reading
    blank_lines: bool = False  # maybe blank lines (DuckDB skips them, so line numbers are worked out in Python)
    # How often each candidate delimiter occurs in the file, and its line ends: many more delimiters than the
    # header needs may mean a row with thousands of surplus fields (see WIDE_SURPLUS).
    separators: Mapping[str, int] | None = None
    lines: int = 0

    def may_have_wide_rows(self, delimiter: str, columns: int) -> bool:
        count = (self.separators or {}).get(delimiter, 0)
        return count > (self.lines + 1) * max(columns - 1, 1) + WIDE_SURPLUS


def _inspect(path: Path) -> _Shape:
    """Encoding, NUL bytes, line ends and delimiters, in one streaming pass; DataError for text that is neither encoding.

    A file is opened for its header and then staged: the pass is made once per file as it is now (its size,
    modification time and inode), not twice.
    """
    st = path.stat()
    return _inspect_once(path.resolve(), st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=32)
def _inspect_once(path: Path, size: int, mtime_ns: int, inode: int) -> _Shape:
    with path.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{path.name}: the file is UTF-16 encoded; save it as UTF-8 (or Windows-1252) CSV")
    shape = _inspect_bytes(path, detect_encoding=True)
    if shape.encoding == "cp1252":
        try:
            with path.open("r", encoding="cp1252", newline="") as fh:
                for _ in iter(lambda: fh.read(_CHUNK), ""):
                    pass
        except UnicodeDecodeError:
            raise DataError(f"{path.name}: the file is neither UTF-8 nor Windows-1252 text; is it really a CSV file?") from None
    return shape


def _inspect_bytes(path: Path, *, detect_encoding: bool = False) -> _Shape:
    """NUL bytes, line ends, maybe-blank lines and delimiter counts; the encoding 'utf-8' unless detected as 'cp1252'."""
    cr = lf = crlf = 0
    separators = dict.fromkeys(DELIMITERS, 0)
    keys = [(d, d.encode()) for d in DELIMITERS]
    has_nul, blank, last = False, False, b""
    encoding = "utf-8"
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        for n, chunk in enumerate(iter(lambda: fh.read(_CHUNK), b"")):
            if n == 0:
                # Only a delimiter in the header can be the file's (detect_delimiter), and the header is in the
                # first chunk: the others are not counted (a comma, the default, always is).
                keys = [(d, b) for d, b in keys if d == "," or b in chunk]
            lf += chunk.count(b"\n")
            # Most files have no CR at all: then there is no CRLF to count and no CR in a blank line.
            has_cr = b"\r" in chunk or last[-1:] == b"\r"
            if has_cr:
                cr, crlf = cr + chunk.count(b"\r"), crlf + chunk.count(b"\r\n")
                crlf += last[-1:] == b"\r" and chunk[:1] == b"\n"
            for d, b in keys:
                separators[d] += chunk.count(b)
            has_nul = has_nul or b"\x00" in chunk
            edge = last + chunk[:2]  # a blank line split across two chunks
            marks = (b"\n\n", b"\n\r", b"\r\r") if has_cr else (b"\n\n",)
            blank = blank or any(m in part for part in (chunk, edge) for m in marks)
            last = chunk[-2:]
            if detect_encoding and encoding == "utf-8":
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    encoding = "cp1252"
        if detect_encoding and encoding == "utf-8":
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                encoding = "cp1252"
    return _Shape(encoding, has_nul, cr > 0 and not (cr == crlf == lf), blank, separators, lf + cr - crlf)


# A row with more than this many surplus fields holding values is rejected before DuckDB reads the file: its
# reader records one error per surplus field, each with the whole line, so such a row costs time quadratic in
# its length (measured: 25,000 fields 2.8 s, 100,000 fields 23 s, 2,000,000 more than 20 minutes).
WIDE_SURPLUS = 1000


def _wide_lines(path: Path, encoding: str, columns: int, delimiter: str = ",") -> dict[int, tuple[int, str]]:
    """Lines that are rows with more than ``columns`` + WIDE_SURPLUS fields, some surplus one not empty: line -> (fields, start).

    Only run when the file's delimiter count says such a row may exist.  A line is a row start only outside
    quotes (RFC 4180 doubles a quote inside a quoted cell, so a line's quote count says whether it ends inside one).
    """
    wide: dict[int, tuple[int, str]] = {}
    in_quotes = False
    with path.open("r", encoding=encoding, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            starts_row = not in_quotes
            in_quotes ^= line.count('"') % 2 == 1
            if number == 1 or not starts_row or line.count(delimiter) < columns + WIDE_SURPLUS:
                continue
            text = line.rstrip("\r\n")
            if '"' in text:
                try:
                    fields = next(csv.reader([text], delimiter=delimiter), [])
                except csv.Error:
                    fields = text.split(delimiter)
            else:
                fields = text.split(delimiter)
            if len(fields) > columns + WIDE_SURPLUS and any(f.strip() for f in fields[columns:]):
                wide[number] = (len(fields), text[:200])
    return wide


def _without_lines(path: Path, encoding: str, drop: Mapping[int, object]) -> tuple[Path, list[int]]:
    """A copy of ``path`` without its blank lines and the lines in ``drop``, and the original line of each line kept.

    DuckDB skips blank lines without counting them, so its line numbers would run early; reading a copy
    without them and mapping each line back keeps every row's line exact.  A line is blank only outside
    quotes (an empty line inside a quoted cell is part of the cell): quotes are counted, as RFC 4180
    doubles a quote inside a quoted cell.
    """
    fd, name = workspace.new_file("copy-", ".csv")
    original: list[int] = []
    in_quotes = False
    try:
        with path.open("r", encoding=encoding, newline="") as src, os.fdopen(fd, "w", encoding=encoding, newline="") as dst:
            for number, line in enumerate(src, start=1):
                if number not in drop and (in_quotes or number == 1 or line.strip("\r\n")):
                    dst.write(line)
                    original.append(number)
                in_quotes ^= line.count('"') % 2 == 1
    except BaseException:
        name.unlink(missing_ok=True)
        raise
    return name, original


# The longest header row read (characters). A real header is a few hundred; this is far above any, and the
# whole first line is read up to it, so a long header is never cut short (a cut name reads as a wrong column).
HEADER_LIMIT = 1 << 20
# The most columns read: every column is a column of the reader's working table, and tens of thousands of them
# exhaust its memory; no export has anything like this many.
MAX_COLUMNS = 1000


def first_text(path: Path, encoding: str, skip_lines: int = 0) -> str:
    """The start of the file as text (after ``skip_lines`` lines), enough to hold its header row."""
    with path.open("r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
        for _ in range(skip_lines):
            fh.readline()
        return fh.read(HEADER_LIMIT + 1)


def detect_delimiter(first: str, expected: list[str]) -> str:
    """The delimiter (comma, semicolon, tab or pipe) that splits the header row into the most expected names.

    The header is what the file promises, so it is the surest guide: a semicolon file split at commas has one
    column named ``patient_id;date_of_birth;...``.  When no candidate yields an expected name, the one that
    splits the header into the most columns wins; a header with none of them is a one-column comma file.
    """
    line = first.splitlines()[0] if first.strip() else ""
    wanted = {e.lower() for e in expected}
    best, best_score = ",", (-1, -1)
    for delim in DELIMITERS:
        try:
            fields = next(csv.reader([line], delimiter=delim))
        except (csv.Error, StopIteration):
            continue
        score = (sum(f.strip().lower() in wanted for f in fields), len(fields))
        if score > best_score:
            best, best_score = delim, score
    return best


def _read_header(path: Path, encoding: str, delimiter: str = ",", skip_lines: int = 0) -> list[str]:
    first = first_text(path, encoding, skip_lines)
    if not first.strip():
        raise DataError(f"{path.name}: the file is empty (expected a header row)")
    if len(first) > HEADER_LIMIT and "\n" not in first and "\r" not in first:
        raise DataError(
            f"{path.name}: the first line (the header row) is longer than {HEADER_LIMIT:,} characters; "
            "is this really a CSV file with a header row of column names?"
        )
    try:
        # newline="": a header ended by CR alone (old Mac exports) is still one line.
        header = next(csv.reader(io.StringIO(first, newline=""), delimiter=delimiter))
    except (csv.Error, StopIteration):
        raise DataError(f"{path.name}: the first line is not a CSV header row") from None
    if any("\x00" in h for h in header):
        raise DataError(
            f"{path.name}: the header contains NUL bytes; this is not CSV text (UTF-16 saved without a byte-order mark looks like this)"
        )
    return [h.strip().lower() for h in header]


@dataclass(frozen=True)
class CsvFormat:
    """How a delimited file is written, where a user or mapping says so; None means found from the file."""

    delimiter: str | None = None  # ',', ';', '\t' or '|'; None: detected from the header row
    encoding: str | None = None  # a Python codec name; None: UTF-8 (with or without BOM) or Windows-1252, detected
    skip_lines: int = 0  # lines before the header row (an extract's title and run date)


def read_csv_into(
    con: duckdb.DuckDBPyConnection,
    raw_table: str,
    t: Table,
    path: Path,
    source: str,
    ledger: Ledger,
    fmt: CsvFormat | None = None,
) -> str:
    """Stage every row of ``path`` into ``raw_table``; rows the parser cannot split become rejections.

    Returns the delimiter used (detected from the header unless ``fmt`` names one).
    """
    fmt = fmt or CsvFormat()
    header, delimiter = open_delimited(path, fmt, t.column_names, ledger)
    if len(header) > MAX_COLUMNS:
        raise DataError(
            f"{path.name}: the header has {len(header):,} columns; cquin reads at most {MAX_COLUMNS:,} "
            f"(a {t.name} file needs only {', '.join(t.column_names)}): remove the columns it does not need"
        )
    check_canonical_header(path.name, header, t, ledger, _delimiter_hint(path, fmt, header))
    stage_delimited(con, raw_table, t.column_names, path, header, source, ledger, delimiter, fmt)
    return delimiter


def check_canonical_header(shown: str, header: list[str], t: Table, ledger: Ledger, hint: str = "") -> None:
    """Refuse a header without the table's required columns (or with a repeated one); note extra and absent columns."""
    seen: set[str] = set()
    for name in header:
        if name in seen and name:
            raise DataError(f"{shown}: the column {name!r} appears twice in the header")
        seen.add(name)
    missing = [c for c in t.required_columns if c not in seen]
    if missing:
        raise DataError(
            f"{shown}: missing required column(s) {', '.join(missing)} "
            f"(the header has: {', '.join(h or '(blank)' for h in header[:30])}{' ...' if len(header) > 30 else ''}; "
            f"expected: {', '.join(t.column_names)})" + hint
        )
    extra = [h for h in header if h and h not in t.column_names]
    if extra:
        listed = ", ".join(h or "(blank)" for h in extra[:20]) + (f" and {len(extra) - 20:,} more" if len(extra) > 20 else "")
        ledger.note(f"{shown}: column(s) {listed} are not canonical and were ignored")
    absent = [c for c in t.column_names if c not in seen]
    if absent:
        ledger.note(f"{shown}: optional column(s) {', '.join(absent)} are absent (treated as empty)")


def _delimiter_hint(path: Path, fmt: CsvFormat, header: list[str]) -> str:
    if len(header) == 1 and fmt.delimiter is None:
        return (
            "; the header is one column, so the file may use a delimiter other than comma, semicolon, tab or pipe"
            " (name it with --option delimiter=...)"
        )
    return ""


def open_delimited(path: Path, fmt: CsvFormat, expected: list[str], ledger: Ledger) -> tuple[list[str], str]:
    """Check ``path`` can be read and return its header (lower-cased) and the delimiter used (noted when not a comma)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty (expected a header row)")
    encoding = encoding_for(path, fmt)
    delimiter = fmt.delimiter
    if delimiter is None:
        delimiter = detect_delimiter(first_text(path, encoding, fmt.skip_lines), expected)
        if delimiter != ",":
            ledger.note(f"{path.name}: columns separated by {DELIMITERS[delimiter]}s (found from the header row)")
    header = _read_header(path, encoding, delimiter, fmt.skip_lines)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path.name}: the column {name!r} appears twice in the header")
        seen.add(name)
    return header, delimiter


def encoding_for(path: Path, fmt: CsvFormat) -> str:
    """The encoding a file is read with: as ``fmt`` says, else as its bytes show (UTF-8, with or without BOM, or Windows-1252)."""
    if fmt.encoding is None:
        return _inspect(path).encoding
    try:
        return codecs.lookup(fmt.encoding).name
    except LookupError:
        raise DataError(f"{path.name}: unknown text encoding {fmt.encoding!r} (e.g. utf-8, windows-1252)") from None


def stage_delimited(
    con: duckdb.DuckDBPyConnection,
    raw_table: str,
    columns: list[str],
    path: Path,
    header: list[str],
    source: str,
    ledger: Ledger,
    delimiter: str = ",",
    fmt: CsvFormat | None = None,
) -> None:
    """Stage ``path`` into ``raw_table`` (``_file, _line, _ref`` then ``columns``), each column taken from the header.

    Every record becomes a staged row with its physical line, or a rejection with its line.
    """
    fmt = fmt or CsvFormat()
    shape = _inspect(path) if fmt.encoding is None else replace(_inspect_bytes(path), encoding=encoding_for(path, fmt))
    encoding = shape.encoding
    read_path, tmp = path, None
    if encoding not in ("utf-8",):
        if fmt.encoding is None:
            ledger.note(f"{path.name}: read as Windows-1252 (not UTF-8)")
    if shape.mixed_newlines:
        ledger.note(f"{path.name}: mixed line endings (CR, LF, CR LF) were read as plain line ends")
    if encoding != "utf-8" or shape.mixed_newlines or fmt.skip_lines:
        # A UTF-8 copy with every line end as LF (newline=None translates CR and CR LF on reading),
        # starting at the header row.
        fd, tmp = workspace.new_file("copy-", ".csv")
        source_encoding = "utf-8-sig" if encoding == "utf-8" else encoding
        translate = None if shape.mixed_newlines else ""
        try:
            with (
                path.open("r", encoding=source_encoding, newline=translate) as src,
                os.fdopen(fd, "w", encoding="utf-8", newline="") as dst,
            ):
                for _ in range(fmt.skip_lines):
                    src.readline()
                for chunk in iter(lambda: src.read(_CHUNK), ""):
                    dst.write(chunk)
        except UnicodeDecodeError as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{path.name}: not valid {encoding} text (byte {exc.start}); check the encoding") from None
        except OSError as exc:  # the copy could not be written (a full temporary folder)
            tmp.unlink(missing_ok=True)
            reraise_fault(exc, f"a temporary copy of {path.name}")
            raise
        read_path = tmp
    try:
        original = None
        wide: dict[int, tuple[int, str]] = {}
        if shape.may_have_wide_rows(delimiter, len(header)):
            wide = _wide_lines(read_path, "utf-8", len(header), delimiter)  # a non-UTF-8 file was copied as UTF-8 above
        if shape.blank_lines or wide:
            compact, original = _without_lines(read_path, "utf-8", wide)
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            read_path = tmp = compact
        _duckdb_read(con, raw_table, columns, read_path, header, source, path.name, shape.has_nul, original, ledger, delimiter)
        if wide:
            ledger.records_read(source, len(wide))
            con.executemany(
                "INSERT INTO rejections VALUES (?, ?, NULL, NULL, ?, ?)",
                [
                    (source, line, start, f"the row has {fields} value(s) but the header has {len(header)} column(s)")
                    for line, (fields, start) in sorted(wide.items())
                ],
            )
    except OSError as exc:  # a copy could not be written (a full temporary folder)
        reraise_fault(exc, f"a temporary copy of {path.name}")
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    if fmt.skip_lines:
        # Read from the header row on: every line is as many further down the original file.
        src_sql = sql_str(source)
        con.execute(f"UPDATE {raw_table} SET _line = _line + {int(fmt.skip_lines)} WHERE _file = {src_sql}")
        con.execute(f"UPDATE rejections SET line = line + {int(fmt.skip_lines)} WHERE file = {src_sql}")


def _duckdb_read(
    con: duckdb.DuckDBPyConnection,
    raw_table: str,
    target: list[str],
    path: Path,
    header: list[str],
    source: str,
    shown: str,
    has_nul: bool = False,
    original: list[int] | None = None,
    ledger: Ledger | None = None,
    delimiter: str = ",",
) -> None:
    names = [f"c{i}" for i in range(len(header))]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    rej_table, rej_scan = f"rej_{raw_table}", f"rejscan_{raw_table}"
    path_sql = sql_str(str(path))
    try:
        con.execute(
            f"""CREATE OR REPLACE TABLE staged AS SELECT * FROM read_csv({path_sql},
                  columns = {columns}, header = true, auto_detect = false, delim = {sql_str(delimiter)}, quote = '"', escape = '"',
                  store_rejects = true, rejects_table = '{rej_table}', rejects_scan = '{rej_scan}',
                  max_line_size = 4000000, strict_mode = true)"""
        )
    except duckdb.Error as exc:
        reraise_fault(exc, f"the data engine's temporary work files (reading {shown})")
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{shown}: cannot be read as CSV ({first})") from None
    # DuckDB numbers records (header = 1) and skips rows it rejects; recover each
    # accepted row's line from its position and the rejected lines before it.
    rejects = con.execute(
        f"SELECT line, min(csv_line), string_agg(DISTINCT error_type, ', ') FROM {rej_table} GROUP BY line ORDER BY line"
    ).fetchall()
    con.execute("CREATE OR REPLACE TABLE rej_lines (adj BIGINT)")
    if rejects:
        con.executemany("INSERT INTO rej_lines VALUES (?)", [(line - 2 - i,) for i, (line, _, _) in enumerate(rejects)])
    mapped = ", ".join(f"c{header.index(c)}" if c in header else "NULL" for c in target)
    newline_count = " + ".join(f"coalesce(length(c{i}) - length(replace(c{i}, chr(10), '')), 0)" for i in range(len(header)))
    any_newline = " OR ".join(f"contains(coalesce(c{i}, ''), chr(10))" for i in range(len(header)))
    has_newlines = scalar(con, f"SELECT coalesce(bool_or({any_newline}), false) FROM staged")
    extra_lines = (
        f"coalesce(sum({newline_count}) OVER (ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
        if has_newlines
        else "0"
    )
    line_sql = f"rowid + 2 + (SELECT count(*) FROM rej_lines WHERE adj <= s.rowid) + {extra_lines}"
    src_sql = sql_str(source)
    if ledger is not None:
        # Every record of the file is now either a staged row or a rejected line: the ledger need not count them again.
        ledger.records_read(source, int(scalar(con, "SELECT count(*) FROM staged")) + len(rejects))  # type: ignore[index]
    if not (rejects or has_newlines or has_nul):
        # The common case: each row is the line after the one before, so its line is its position + 2 (the header is 1).
        con.execute(f"INSERT INTO {raw_table} SELECT {src_sql}, rowid + 2, NULL, {mapped} FROM staged")
    else:
        # A NUL byte is never text: its row is rejected whole rather than passed on (only looked for when the file has one).
        nul = " OR ".join(f"contains(coalesce(c{i}, ''), chr(0))" for i in range(len(header))) if has_nul else "false"
        con.execute(
            f"""CREATE OR REPLACE TABLE numbered AS SELECT {src_sql} AS _file,
                  {line_sql} AS _line,
                  NULL AS _ref, ({nul}) AS _nul, {mapped} FROM (SELECT rowid, * FROM staged) s"""
        )
        con.execute(f"INSERT INTO {raw_table} SELECT * EXCLUDE (_nul) FROM numbered WHERE NOT _nul")
        if has_nul:
            con.execute(
                """INSERT INTO rejections SELECT _file, _line, NULL, NULL, NULL,
                      'the row contains a NUL byte (character 0), which is never part of text; is the file damaged?'
                    FROM numbered WHERE _nul"""
            )
        con.execute("DROP TABLE numbered")
    # DuckDB gives a rejected row's record number; quoted newlines in the accepted rows before it
    # move it down the file, just as they move the accepted rows (above).
    shift = [0] * len(rejects)
    if rejects and has_newlines:
        cumulative = dict(
            con.execute(
                f"""SELECT r.adj, coalesce(c.before, 0) FROM rej_lines r LEFT JOIN
                      (SELECT rowid + 1 AS next_row, sum({newline_count}) OVER (ORDER BY rowid) AS before FROM staged) c
                    ON c.next_row = r.adj"""
            ).fetchall()
        )
        shift = [int(cumulative.get(line - 2 - i, 0)) for i, (line, _, _) in enumerate(rejects)]
    for (line, csv_line, kinds), extra in zip(rejects, shift, strict=True):
        line += extra
        reason = "the row cannot be split into the header's columns"
        if "UNQUOTED" in (kinds or "") or "QUOTE" in (kinds or ""):
            reason = "the row has a quote that is not closed or not escaped"
        elif "MISSING COLUMNS" in (kinds or "") or "TOO MANY COLUMNS" in (kinds or ""):
            try:
                found = len(next(csv.reader([csv_line or ""], delimiter=delimiter), []))
            except csv.Error:
                found = (csv_line or "").count(delimiter) + 1
            reason = f"the row has {found} value(s) but the header has {len(header)} column(s)"
        elif "INVALID" in (kinds or "") and "UNICODE" in (kinds or ""):
            reason = "the row is not valid text in the file's encoding"
        con.execute(
            "INSERT INTO rejections VALUES (?, ?, NULL, NULL, ?, ?)",
            [source, int(line), (csv_line or "")[:200], reason],
        )
    con.execute(f"DROP TABLE IF EXISTS {rej_table}; DROP TABLE IF EXISTS {rej_scan}; DROP TABLE staged; DROP TABLE rej_lines")
    if original is not None:
        # Read from a copy without blank lines: give every row and rejection its line in the original file.
        con.register(
            "line_map",
            pa.table({"copy": pa.array(range(1, len(original) + 1), pa.int64()), "orig": pa.array(original, pa.int64())}),
        )
        try:
            con.execute(f"UPDATE {raw_table} SET _line = m.orig FROM line_map m WHERE _file = {src_sql} AND _line = m.copy")
            con.execute(f"UPDATE rejections SET line = m.orig FROM line_map m WHERE file = {src_sql} AND line = m.copy")
        finally:
            con.unregister("line_map")
