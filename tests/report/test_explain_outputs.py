"""Issue 16 item 8: explain shows a rejected patient's rows from the ledger (exit 0), and each citation once."""

from __future__ import annotations

import sqlite3

from rich.console import Console

from cquin.render.explain import render_explanation
from cquin.runner import explain_subject

from .conftest import DemoRun


def _text(demo_run: DemoRun, subject: str) -> str:
    console = Console(width=200, record=True, color_system=None)
    render_explanation(console, explain_subject(demo_run.store, demo_run.run_id, subject))
    return console.export_text()


def test_a_patient_whose_rows_were_rejected_is_explained_from_the_ledger(demo_run: DemoRun) -> None:
    with sqlite3.connect(demo_run.store) as con:
        file, line, value = con.execute(
            "SELECT file, line, value FROM run_rejections WHERE run_id = ? AND column_name = 'patient_id' "
            "AND reason LIKE 'unknown patient%' ORDER BY file, line LIMIT 1",
            [demo_run.run_id],
        ).fetchone()
    text = _text(demo_run, value)
    assert "rejected at load" in text and f"{file} line {line}" in text and "not in patients.csv" in text


def test_each_citation_is_printed_once(demo_run: DemoRun) -> None:
    with sqlite3.connect(demo_run.store) as con:
        (patient,) = con.execute(
            "SELECT subject_id FROM run_subjects WHERE run_id = ? AND entity = 'patient' AND subject_id NOT IN "
            "(SELECT patient_id FROM run_cohorts WHERE run_id = ?) ORDER BY subject_id LIMIT 1",
            [demo_run.run_id, demo_run.run_id],
        ).fetchone()
    text = _text(demo_run, patient)
    quotes = [line for line in text.splitlines() if line.strip().startswith("source:")]
    assert quotes and len(quotes) == len(set(quotes))
    assert "(citation for ltc_identified: above)" in text
