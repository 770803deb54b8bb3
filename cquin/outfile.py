"""Files cquin writes for people: checked before any work, written whole, spreadsheet CSVs readable by Excel.

Every ``--out`` goes through :func:`check_out` first, so a missing folder or a
path that is a directory is one plain message, before a run is evaluated or
stored.  CSVs meant for spreadsheets are written UTF-8 *with* a byte-order mark
(``utf-8-sig``): Excel on Windows reads a BOM-less CSV in the ANSI code page,
which garbles names such as "Zoë" or "£".  Files naming patients or staff are
created readable by their owner only.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cquin.exceptions import UserError

SPREADSHEET_ENCODING = "utf-8-sig"  # UTF-8 with a byte-order mark, so Excel reads non-ASCII text correctly


def check_out(path: Path, flag: str = "--out") -> Path:
    """Refuse, in one line, an output path that cannot be written: a directory, or in a folder that is not there."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'out'}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise UserError(f"{flag} {path}: the folder {parent} does not exist (create it first, or choose another path)")
    if not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"{flag} {path}: the folder {parent} is not writable")
    return path


@contextmanager
def open_for_writing(
    path: Path, *, identifiable: bool = False, encoding: str = "utf-8", newline: str | None = None
) -> Iterator[Any]:
    """Open ``path`` for writing text (owner-only when ``identifiable``), with one-line errors."""
    check_out(path)
    try:
        if identifiable:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.chmod(path, 0o600)  # an existing file keeps its mode on O_CREAT
            fh = os.fdopen(fd, "w", encoding=encoding, newline=newline)
        else:
            fh = Path(path).open("w", encoding=encoding, newline=newline)
    except OSError as exc:
        raise UserError(f"--out {path}: cannot write ({exc.strerror})") from None
    with fh:
        yield fh


@contextmanager
def spreadsheet_csv(path: Path, *, identifiable: bool = False) -> Iterator[Any]:
    """A ``csv.writer`` on ``path``, UTF-8 with BOM, one line per row."""
    with open_for_writing(path, identifiable=identifiable, encoding=SPREADSHEET_ENCODING, newline="") as fh:
        yield csv.writer(fh, lineterminator="\n")


def write_text(path: Path, text: str, *, identifiable: bool = False) -> None:
    with open_for_writing(path, identifiable=identifiable) as fh:
        fh.write(text)


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

# Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"), with their
# full-width forms, which some spreadsheets fold to the ASCII ones.
_FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_CONTROL_STARTS = frozenset("\t\r\n")


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will show as text, never run as a formula.

    A cell is neutralised (prefixed with ``'``) when it starts with a formula
    character, a tab, CR or LF, or when one follows leading white space (some
    spreadsheets trim it on import). Plain numbers such as ``-5`` are left alone.
    """
    if value is None:
        return ""
    text = str(value)
    if not text:
        return text
    first = text.lstrip()[:1]
    risky = text[0] in _CONTROL_STARTS or first in _FORMULA_STARTS
    if risky and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    """A plain decimal number (what a spreadsheet shows as a number, never a formula)."""
    return _NUMBER.fullmatch(text) is not None
