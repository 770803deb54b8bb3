"""Write canonical CSV folders as Excel workbooks, with cells typed as a person working in Excel would leave them.

Dates become date cells (every third one a bare serial number, as when a date column loses its format),
whole and decimal numbers become number cells (except those a spreadsheet cannot hold exactly: more than
15 digits, which a careful user keeps as text), ``true``/``false`` become TRUE/FALSE cells, and everything
else stays text.  Written with XlsxWriter, read back by cquin with python-calamine: two independent tools.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path
from typing import Any

import xlsxwriter

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _write_rows(ws: Any, rows: list[list[str]], date_format: Any) -> None:
    dated = 0
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if r == 0 or v == "":
                if v:
                    ws.write_string(r, c, v)
                continue
            if _DATE.fullmatch(v):
                try:
                    day = dt.datetime.strptime(v, "%Y-%m-%d")
                except ValueError:
                    ws.write_string(r, c, v)  # an impossible date stays the text it was
                    continue
                dated += 1
                if dated % 3 == 0:
                    ws.write_number(r, c, (day - dt.datetime(1899, 12, 30)).days)  # a serial date, unformatted
                else:
                    ws.write_datetime(r, c, day, date_format)
            elif _NUMBER.fullmatch(v) and len(v.replace("-", "").replace(".", "")) <= 15 and not v.startswith("0"):
                ws.write_number(r, c, float(v))
            elif v in ("true", "false"):
                ws.write_boolean(r, c, v == "true")
            else:
                ws.write_string(r, c, v)


def _rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def one_workbook(folder: Path, out: Path) -> Path:
    """Every CSV file of ``folder`` as a sheet of one workbook, each sheet named after its table."""
    wb = xlsxwriter.Workbook(str(out))
    date_format = wb.add_format({"num_format": "dd/mm/yyyy"})
    for f in sorted(folder.glob("*.csv")):
        _write_rows(wb.add_worksheet(f.stem.capitalize()), _rows(f), date_format)
    wb.close()
    return out


def workbook_per_table(folder: Path, out_dir: Path, sheet_name: str = "Sheet1") -> Path:
    """Each CSV file of ``folder`` as its own workbook (``staff.csv`` -> ``staff.xlsx``), one sheet each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.glob("*.csv")):
        wb = xlsxwriter.Workbook(str(out_dir / f"{f.stem}.xlsx"))
        date_format = wb.add_format({"num_format": "dd/mm/yyyy"})
        _write_rows(wb.add_worksheet(sheet_name), _rows(f), date_format)
        wb.close()
    return out_dir
