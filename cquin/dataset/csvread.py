"""Read a canonical-format CSV file into a raw staging table, fast and without losing a row.

DuckDB's CSV reader does the parsing (a million rows a second); this module
decides the encoding (UTF-8, with or without a byte-order mark, or
Windows-1252), checks the header, maps columns by name, and turns rows the
parser cannot split into rejections with their line numbers.  A file that
cannot be read at all raises :class:`DataError` naming the file and the problem.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
from pathlib import Path

import duckdb

from cquin.dataset.duck import scalar
from cquin.dataset.ledger import Ledger
from cquin.dataset.tables import Table
from cquin.exceptions import DataError

_CHUNK = 1 << 22


def _sniff_encoding(path: Path) -> str:
    """'utf-8' or 'cp1252'; raise DataError for anything else."""
    with path.open("rb") as fh:
        head = fh.read(4)
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise DataError(f"{path.name}: the file is UTF-16 encoded; save it as UTF-8 (or Windows-1252) CSV")
        fh.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for chunk in iter(lambda: fh.read(_CHUNK), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
            return "utf-8"
        except UnicodeDecodeError:
            pass
    try:
        with path.open("r", encoding="cp1252", newline="") as fh:
            for _ in iter(lambda: fh.read(_CHUNK), ""):
                pass
    except UnicodeDecodeError:
        raise DataError(f"{path.name}: the file is neither UTF-8 nor Windows-1252 text; is it really a CSV file?") from None
    return "cp1252"


def _read_header(path: Path, encoding: str) -> list[str]:
    with path.open("r", encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
        first = fh.read(1 << 16)
    if not first.strip():
        raise DataError(f"{path.name}: the file is empty (expected a header row)")
    if "\x00" in first:
        raise DataError(f"{path.name}: the header contains NUL bytes; this is not a CSV text file")
    try:
        header = next(csv.reader(io.StringIO(first)))
    except (csv.Error, StopIteration):
        raise DataError(f"{path.name}: the first line is not a CSV header row") from None
    return [h.strip().lower() for h in header]


def read_csv_into(con: duckdb.DuckDBPyConnection, raw_table: str, t: Table, path: Path, source: str, ledger: Ledger) -> None:
    """Stage every row of ``path`` into ``raw_table``; rows the parser cannot split become rejections."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path.name}: the file is empty (expected a header row)")
    encoding = _sniff_encoding(path)
    header = _read_header(path, encoding)
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path.name}: the column {name!r} appears twice in the header")
        seen.add(name)
    missing = [c for c in t.required_columns if c not in seen]
    if missing:
        raise DataError(
            f"{path.name}: missing required column(s) {', '.join(missing)} "
            f"(the header has: {', '.join(h or '(blank)' for h in header)}; expected: {', '.join(t.column_names)})"
        )
    extra = [h for h in header if h not in t.column_names]
    if extra:
        ledger.note(f"{path.name}: column(s) {', '.join(extra)} are not canonical and were ignored")
    absent = [c for c in t.column_names if c not in seen]
    if absent:
        ledger.note(f"{path.name}: optional column(s) {', '.join(absent)} are absent (treated as empty)")

    read_path, tmp = path, None
    if encoding == "cp1252":
        ledger.note(f"{path.name}: read as Windows-1252 (not UTF-8)")
        fd, tmp_name = tempfile.mkstemp(suffix=".csv", prefix="cquin-")
        tmp = Path(tmp_name)
        with path.open("r", encoding="cp1252", newline="") as src, os.fdopen(fd, "w", encoding="utf-8", newline="") as dst:
            for chunk in iter(lambda: src.read(_CHUNK), ""):
                dst.write(chunk)
        read_path = tmp
    try:
        _duckdb_read(con, raw_table, t, read_path, header, source, path.name)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _duckdb_read(
    con: duckdb.DuckDBPyConnection, raw_table: str, t: Table, path: Path, header: list[str], source: str, shown: str
) -> None:
    names = [f"c{i}" for i in range(len(header))]
    columns = "{" + ", ".join(f"'{n}': 'VARCHAR'" for n in names) + "}"
    rej_table, rej_scan = f"rej_{raw_table}", f"rejscan_{raw_table}"
    path_sql = "'" + str(path).replace("'", "''") + "'"
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE staged AS SELECT * FROM read_csv({path_sql},
                  columns = {columns}, header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
                  store_rejects = true, rejects_table = '{rej_table}', rejects_scan = '{rej_scan}',
                  max_line_size = 4000000, strict_mode = false)"""
        )
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise DataError(f"{shown}: cannot be read as CSV ({first})") from None
    # DuckDB numbers records (header = 1) and skips rows it rejects; recover each
    # accepted row's line from its position and the rejected lines before it.
    rejects = con.execute(
        f"SELECT line, min(csv_line), string_agg(DISTINCT error_type, ', ') FROM {rej_table} GROUP BY line ORDER BY line"
    ).fetchall()
    con.execute("CREATE OR REPLACE TEMP TABLE rej_lines (adj BIGINT)")
    if rejects:
        con.executemany("INSERT INTO rej_lines VALUES (?)", [(line - 2 - i,) for i, (line, _, _) in enumerate(rejects)])
    mapped = ", ".join(f"c{header.index(c)}" if c in header else "NULL" for c in t.column_names)
    newline_count = " + ".join(f"coalesce(length(c{i}) - length(replace(c{i}, chr(10), '')), 0)" for i in range(len(header)))
    has_newlines = scalar(con, f"SELECT bool_or(({newline_count}) > 0) FROM staged")
    extra_lines = (
        f"coalesce(sum({newline_count}) OVER (ORDER BY rowid ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)"
        if has_newlines
        else "0"
    )
    src_sql = "'" + source.replace("'", "''") + "'"
    con.execute(
        f"""INSERT INTO {raw_table} SELECT {src_sql}, rowid + 2 + (SELECT count(*) FROM rej_lines WHERE adj <= s.rowid) + {extra_lines},
              NULL, {mapped} FROM (SELECT rowid, * FROM staged) s"""
    )
    for line, csv_line, kinds in rejects:
        reason = "the row cannot be split into the header's columns"
        if "MISSING COLUMNS" in (kinds or "") or "TOO MANY COLUMNS" in (kinds or ""):
            found = len(next(csv.reader([csv_line or ""]), []))
            reason = f"the row has {found} value(s) but the header has {len(header)} column(s)"
        elif "UNQUOTED" in (kinds or "") or "QUOTE" in (kinds or ""):
            reason = "the row has a quote that is not closed or not escaped"
        elif "INVALID" in (kinds or "") and "UNICODE" in (kinds or ""):
            reason = "the row is not valid text in the file's encoding"
        con.execute(
            "INSERT INTO rejections VALUES (?, ?, NULL, NULL, ?, ?)",
            [source, int(line), (csv_line or "")[:200], reason],
        )
    con.execute(f"DROP TABLE IF EXISTS {rej_table}; DROP TABLE IF EXISTS {rej_scan}; DROP TABLE staged; DROP TABLE rej_lines")
