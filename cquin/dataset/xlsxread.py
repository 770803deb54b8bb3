"""Read one worksheet of an Excel workbook (.xlsx) into a raw staging table, as the CSV reader does for a file.

python-calamine (Rust's calamine) reads the workbook: it is fast, reads cell values only (a formula's
cached result; nothing in the workbook is run) and keeps each cell's type.  Each cell becomes text as
the canonical column it fills expects, so a workbook and the CSV file saved from it load the same:

* a date cell is its ISO date (a date-time at midnight is its date; another time of day is kept, and
  the date check rejects it saying so); a plain number in a date column is an Excel serial date, read
  exactly in the 1900 date system (serial 61 is 1 Mar 1900; Excel's phantom 29 Feb 1900 is refused);
* a number in a text column (a staff id, a SNOMED CT code, an NHS number stored as a number) is written
  as Excel shows it at full precision, without a trailing ``.0``; numbers stored as text pass through;
* TRUE/FALSE cells are ``true``/``false``.

Each record's line is its worksheet row, and the source is named ``book.xlsx!Sheet`` so a rejection
reads ``staff.xlsx!Staff`` row 14; :func:`cell_refs` gives the ``staff.xlsx!Staff!C14`` cell.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from cquin.dataset.ledger import Ledger
from cquin.exceptions import DataError

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
BATCH = 50_000
# Excel keeps 15 significant digits of a number: a whole number at or above this lost digits when it was typed
# (a 16-18 digit SNOMED CT identifier entered as a number), so it is refused rather than read as another code.
EXACT_DIGITS_BELOW = 10**15
LOST_DIGITS = (
    "is a number of more than 15 digits, and a spreadsheet keeps only 15 (the last digits are lost); "
    "format the column as Text and enter the values again"
)
_EPOCH = dt.date(1899, 12, 30)  # serial 0 in the 1900 date system, for serials from 61 (1 Mar 1900) on


def is_workbook(path: Path) -> bool:
    return path.suffix.lower() in EXCEL_SUFFIXES


def _open(path: Path) -> Any:
    from python_calamine import CalamineWorkbook

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return CalamineWorkbook.from_path(str(path))
    except Exception as exc:  # calamine raises its own error types for damaged or non-Excel files
        raise DataError(
            f"{path.name}: cannot be read as an Excel workbook ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None


def sheet_names(path: Path) -> list[str]:
    """The workbook's worksheet names, in order."""
    return list(_open(path).sheet_names)


def pick_sheet(path: Path, table_name: str) -> str:
    """The sheet holding ``table_name``: one named after it (any case), else the workbook's only sheet with data."""
    wb = _open(path)
    names = list(wb.sheet_names)
    named = [n for n in names if n.strip().lower() == table_name]
    if named:
        return str(named[0])
    if len(names) == 1:
        return str(names[0])
    filled = [n for n in names if wb.get_sheet_by_name(n).height > 0]
    if len(filled) == 1:
        return str(filled[0])
    if not filled:
        raise DataError(f"{path.name}: the workbook has no sheet with data")
    raise DataError(
        f"{path.name}: several sheets have data ({', '.join(filled)}); name the sheet {table_name!r} "
        "or keep one sheet per workbook"
    )


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


def serial_date(value: float) -> str | None:
    """An Excel serial (1900 date system) as ISO text: a date, or a date and time when it has a fraction."""
    if value != value or value < 1 or value >= 2958466:  # NaN, before 1 Jan 1900, after 9999
        return None
    if 60 <= value < 61:
        return None  # 29 Feb 1900, which never was (Excel keeps Lotus 1-2-3's leap-year error)
    days = int(value)
    day = _EPOCH + dt.timedelta(days=days) if days >= 61 else dt.date(1899, 12, 31) + dt.timedelta(days=days)
    seconds = round((value - days) * 86400)
    if seconds == 0:
        return day.isoformat()
    if seconds >= 86400:
        return (day + dt.timedelta(days=1)).isoformat()
    return f"{day.isoformat()} {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def cell_text(value: Any, kind: str | None) -> str | None:
    """A cell's value as the text a canonical column of ``kind`` expects (None for an empty cell)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):  # before int: bool is an int in Python
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float):
        if kind == "date":
            text = serial_date(float(value))
            return text if text is not None else repr(value)
        if isinstance(value, int):
            return str(value)
        if value.is_integer() and abs(value) < EXACT_DIGITS_BELOW:
            return str(int(value))
        return f"{value:.15g}"  # what Excel shows at full precision: 51.9, not 51.900000000000006
    if isinstance(value, dt.time | dt.timedelta):
        return str(value)
    return str(value)


class Sheet:
    """One worksheet, parsed once: its name, header row and data rows (positions from A1)."""

    def __init__(self, path: Path, name: str) -> None:
        wb = _open(path)
        if name not in wb.sheet_names:
            raise DataError(f"{path.name}: no sheet called {name!r} (the workbook has: {', '.join(wb.sheet_names)})")
        self.path, self.name = path, name
        try:
            self._ws = wb.get_sheet_by_name(name)
        except Exception as exc:
            raise DataError(
                f"{path.name}!{name}: the sheet cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            ) from None

    def rows(self) -> Iterator[list[Any]]:
        """Every row from row 1, so a row's position is its worksheet row and a cell's its column."""
        start = self._ws.start
        start_row, start_col = start if start is not None else (0, 0)
        for _ in range(start_row):
            yield []
        pad = [None] * start_col
        for row in self._ws.iter_rows():
            yield pad + row if start_col else row

    def header(self, skip_lines: int = 0) -> list[str]:
        """The header row (lower-cased, trimmed), after ``skip_lines`` rows."""
        for i, row in enumerate(self.rows()):
            if i == skip_lines:
                return [(cell_text(c, None) or "").strip().lower() for c in row]
        raise DataError(f"{self.path.name}!{self.name}: the sheet is empty (expected a header row)")


_ARROW_TYPES = {str: pa.string(), float: pa.float64(), bool: pa.bool_(), dt.date: pa.date32()}


def _typed_column(values: list[Any], kind: str | None) -> pa.Array | None:
    """The column converted in Arrow when its cells are all of one common type (text, dates, TRUE/FALSE, whole
    numbers a spreadsheet holds exactly); None when they are mixed or need a cell-by-cell look."""
    types = set(map(type, values)) - {type(None)}
    if len(types) > 1 or types - {str, float, bool, dt.date}:
        return None  # mixed cells (Arrow would coerce a serial number among dates into a date of its own)
    try:
        arr = pa.array(values, type=_ARROW_TYPES[next(iter(types))] if types else pa.null())
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    t = arr.type
    if pa.types.is_null(t):
        return pa.nulls(len(values), pa.string())
    if pa.types.is_string(t):
        return pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
    if pa.types.is_date32(t):
        return arr.cast(pa.string())
    if pa.types.is_boolean(t):
        return pc.if_else(arr, "true", "false")
    if pa.types.is_floating(t) and kind != "date":
        whole = pc.equal(pc.floor(arr), arr)
        small = pc.less(pc.abs(arr), float(EXACT_DIGITS_BELOW))
        if pc.all(pc.and_(whole, small)).as_py() is not False:
            return arr.cast(pa.int64()).cast(pa.string())
    return None


def column_texts(values: list[Any], kind: str | None, lost: dict[int, Any] | None = None) -> list[str | None]:
    """``cell_text`` over one column of a batch, with the common cell types done inline (the hot loop).

    Whole numbers too long for a spreadsheet to have kept exactly are put in ``lost`` (position -> value).
    """
    out: list[str | None] = []
    append = out.append
    for i, v in enumerate(values):
        t = type(v)
        if t is str:
            append(v if v else None)
        elif v is None:
            append(None)
        elif t is dt.date:
            append(v.isoformat())
        elif t is float and kind != "date" and v.is_integer() and -EXACT_DIGITS_BELOW < v < EXACT_DIGITS_BELOW:
            append(str(int(v)))
        else:
            if lost is not None and t is float and kind != "date" and v.is_integer() and abs(v) >= EXACT_DIGITS_BELOW:
                lost.setdefault(i, v)
            append(cell_text(v, kind))
    return out


def stage_sheet(
    con: duckdb.DuckDBPyConnection,
    raw_table: str,
    columns: list[str],
    kinds: dict[str, str],
    sheet: Sheet,
    header: list[str],
    source: str,
    ledger: Ledger,
    skip_lines: int = 0,
) -> int:
    """Stage every non-blank row under the header into ``raw_table`` (``_file, _line, _ref`` then ``columns``).

    ``columns`` are filled from the header column of the same name (``kinds`` says how each is read).
    Returns the number of records (each a worksheet row that is not blank).
    """
    positions = [header.index(c) if c in header else None for c in columns]
    width = max((p for p in positions if p is not None), default=-1) + 1
    records = 0
    numbers: list[int] = []
    batch: list[list[Any]] = []

    def flush() -> None:
        if not batch:
            return
        n = len(batch)
        arrays = [pa.array([source] * n, pa.string()), pa.array(numbers, pa.int64()), pa.nulls(n, pa.string())]
        lost: dict[int, tuple[str, Any]] = {}
        for c, p in zip(columns, positions, strict=True):
            if p is None:
                arrays.append(pa.nulls(n, pa.string()))
                continue
            found: dict[int, Any] = {}
            values = [r[p] for r in batch]
            typed = _typed_column(values, kinds.get(c))
            arrays.append(typed if typed is not None else pa.array(column_texts(values, kinds.get(c), found), pa.string()))
            for i, v in found.items():
                lost.setdefault(i, (c, v))
        staged = pa.table(dict(zip(["_file", "_line", "_ref", *columns], arrays, strict=True)))
        if lost:
            # The row is refused whole: its value cannot be trusted to be the one the record held.
            for i, (column, value) in sorted(lost.items()):
                ledger.reject(source, numbers[i], column, f"{value:.15g}", f"{column} {value:.15g} {LOST_DIGITS}")
            staged = staged.filter(pa.array([i not in lost for i in range(n)]))
        con.register("sheet_batch", staged)
        try:
            con.execute(f"INSERT INTO {raw_table} SELECT * FROM sheet_batch")
        finally:
            con.unregister("sheet_batch")
        batch.clear()
        numbers.clear()

    for number, row in enumerate(sheet.rows(), start=1):
        if number <= skip_lines + 1:
            continue
        if not any(c is not None and c != "" for c in row):
            continue  # a blank row is not a record (as a blank line in a CSV file)
        records += 1
        if len(row) < width:
            row = row + [None] * (width - len(row))
        batch.append(row)
        numbers.append(number)
        if len(batch) >= BATCH:
            flush()
    flush()
    ledger.records_read(source, records)
    return records
