"""The commissioner's HTML report: one self-contained page per run (or per set of providers).

:func:`write_report` reads a stored run and writes the page; the sections live in
:mod:`cquin.report.page`, the charts in :mod:`cquin.report.charts`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cquin.report.data import ReportData, load_report_data


def write_report(
    store: Path, run_id: str, out: Path, *, disclosure_control: bool = False, breakdowns: dict[str, Any] | None = None
) -> ReportData:
    """Write run ``run_id``'s report to ``out``; returns what it drew."""
    from cquin.report.page import render_report

    data = load_report_data(store, run_id, breakdowns=breakdowns)
    from cquin.outfile import write_text

    write_text(out, render_report(data, control=disclosure_control))
    return data


__all__ = ["ReportData", "load_report_data", "write_report"]
