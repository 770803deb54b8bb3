"""No silent wrong total: a run whose data largely failed to load is stored, but marked and announced as failing.

The case from issue 15: a canonical folder saved by Excel on a UK machine (byte-order mark, CR LF line ends,
DD/MM/YYYY dates, TRUE/FALSE) loaded with every dated row rejected, and cquin printed a total and exited 0.
"""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.dataset.quality import FAILED, PASSED, load_limits, with_share
from cquin.demo.generate import generate
from cquin.exceptions import DATA_QUALITY_EXIT
from cquin.runner import load_to_folder, run_evaluation

runner = CliRunner()
ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clean canonical population (no deliberately bad rows)."""
    folder = tmp_path_factory.mktemp("clean")
    generate(folder, 150, 11, bad_rows=False)
    return folder


def excel_uk_copy(src: Path, dst: Path) -> Path:
    """The folder as Excel on a UK PC saves it: UTF-8 with BOM, CR LF, DD/MM/YYYY, TRUE/FALSE."""
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.csv")):
        with f.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        body = [[ISO.sub(r"\3/\2/\1", c).replace("true", "TRUE").replace("false", "FALSE") for c in r] for r in rows[1:]]
        with (dst / f.name).open("w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh, lineterminator="\r\n").writerows([rows[0], *body])
    return dst


def evaluate(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["evaluate", *args, "--contract-value", "12000000"])
    return result.exit_code, result.stdout


def test_a_uk_excel_folder_fails_the_data_quality_check_and_names_the_dates_option(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    code, output = evaluate(str(uk), "--store", str(tmp_path / "a.sqlite"))
    assert code == DATA_QUALITY_EXIT
    first = output.splitlines()[0]
    assert first.startswith("DATA-QUALITY CHECK FAILED") and "patients.csv" in first
    assert "is not a date (expected YYYY-MM-DD)" in output
    assert "--option dates=uk" in output


def test_the_failing_run_is_stored_and_marked(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    store = tmp_path / "a.sqlite"
    evaluate(str(uk), "--store", str(store))
    with sqlite3.connect(store) as db:
        (status, detail), *_ = db.execute("SELECT status, detail FROM run_data_quality").fetchall()
    assert status == FAILED
    assert {f["file"] for f in json.loads(detail)["failures"]} >= {"patients.csv", "conditions.csv"}


def test_json_output_carries_the_verdict_first(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    code, output = evaluate(str(uk), "--no-store", "--format", "json")
    doc = json.loads(output)
    assert code == DATA_QUALITY_EXIT
    assert next(iter(doc)) == "data_quality_check"
    check = doc["data_quality_check"]
    assert check["status"] == "failed"
    patients = next(f for f in check["failures"] if f["file"] == "patients.csv")
    assert "dates=uk" in patients["fix"]
    assert patients["top_reasons"][0]["reason"] == "… is not a date (expected YYYY-MM-DD)"


def test_csv_output_starts_with_the_verdict(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    code, output = evaluate(str(uk), "--no-store", "--format", "csv")
    assert code == DATA_QUALITY_EXIT
    assert output.startswith("# DATA-QUALITY CHECK FAILED")


def test_with_the_suggested_option_the_uk_folder_gives_the_iso_results(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    code_uk, uk_out = evaluate(str(uk), "--no-store", "--format", "json", "--option", "dates=uk")
    code_iso, iso_out = evaluate(str(clean), "--no-store", "--format", "json")
    assert (code_uk, code_iso) == (0, 0)
    a, b = json.loads(uk_out), json.loads(iso_out)
    assert a["data_quality_check"]["status"] == PASSED
    assert (a["components"], a["totals"], a["cohorts"]) == (b["components"], b["totals"], b["cohorts"])


def test_accept_rejections_is_the_explicit_switch(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    code, output = evaluate(str(uk), "--no-store", "--format", "json", "--accept-rejections")
    assert code == 0
    assert json.loads(output)["data_quality_check"]["status"] == "accepted"


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def _with_bad_overrides(clean: Path, folder: Path, bad: int, good: int) -> Path:
    for f in clean.glob("*.csv"):
        write(folder, f.name, f.read_text(encoding="utf-8"))
    patient = (clean / "patients.csv").read_text(encoding="utf-8").splitlines()[1].split(",")[0]
    lines = ["patient_id,cohort,action,reason,agreed_on"]
    lines += [f"{patient},year1,include,agreed,2017-10-0{i % 9 + 1}" for i in range(good)]
    lines += [f"{patient},year1,include,agreed,not a date {i}" for i in range(bad)]
    write(folder, "overrides.csv", "\n".join(lines) + "\n")
    return folder


def test_a_small_file_is_judged_by_count_not_share(clean: Path, tmp_path: Path) -> None:
    # 2 of 3 overrides rejected is 67%, but a handful of rows is judged by count (at most 5 by default).
    folder = _with_bad_overrides(clean, tmp_path / "few", bad=2, good=1)
    ev = run_evaluation(folder, store=None)
    assert ev.quality.status == PASSED


def test_a_small_file_losing_more_than_the_count_fails(clean: Path, tmp_path: Path) -> None:
    folder = _with_bad_overrides(clean, tmp_path / "many", bad=6, good=2)
    ev = run_evaluation(folder, store=None)
    assert ev.quality.failed
    assert [f.file for f in ev.quality.failures] == ["overrides.csv"]


def test_a_required_file_entirely_rejected_fails_however_small(tmp_path: Path) -> None:
    write(tmp_path, "patients.csv", "patient_id,served_from\n9990000018,yesterday\n9990000026,today\n")
    ev = run_evaluation(tmp_path, store=None)
    assert ev.quality.failed
    assert "patients is required" in ev.quality.failures[0].rule


def test_the_share_is_set_in_configuration_and_overridable_per_run(clean: Path, tmp_path: Path) -> None:
    folder = tmp_path / "some"
    for f in clean.glob("*.csv"):
        write(folder, f.name, f.read_text(encoding="utf-8"))
    lines = (folder / "conditions.csv").read_text(encoding="utf-8").splitlines()
    n = len(lines) - 1
    bad = n // 20 + 1  # just over 5%
    lines[1 : bad + 1] = [line.rsplit(",", 1)[0] + ",31/12/2016" for line in lines[1 : bad + 1]]
    write(folder, "conditions.csv", "\n".join(lines) + "\n")
    assert load_limits().share_text == "10%"
    assert not run_evaluation(folder, store=None).quality.failed
    strict = with_share(load_limits(), "5%")
    assert run_evaluation(folder, store=None, quality_limits=strict).quality.failed
    code, _ = evaluate(str(folder), "--no-store", "--max-rejected-share", "5%")
    assert code == DATA_QUALITY_EXIT


def test_the_report_and_submission_show_the_verdict_on_top(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    store = tmp_path / "a.sqlite"
    evaluate(str(uk), "--store", str(store))
    with sqlite3.connect(store) as db:
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    assert runner.invoke(app, ["report", run_id, "--store", str(store), "--out", str(tmp_path / "r.html")]).exit_code == 0
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    body = page[page.index("<main>") :]
    assert body.index("DATA-QUALITY CHECK FAILED") < body.index("<section")
    assert runner.invoke(app, ["submission", run_id, "--store", str(store), "--out", str(tmp_path / "s.csv")]).exit_code == 0
    second = (tmp_path / "s.csv").read_text(encoding="utf-8").splitlines()[1]
    assert second.startswith("data_quality_check,status,failed,")


def test_cquin_load_reports_the_verdict_and_exits_with_its_code(clean: Path, tmp_path: Path) -> None:
    uk = excel_uk_copy(clean, tmp_path / "uk")
    result = runner.invoke(app, ["load", str(uk), "--out", str(tmp_path / "out")])
    assert result.exit_code == DATA_QUALITY_EXIT
    assert result.stdout.startswith("DATA-QUALITY CHECK FAILED")
    report = json.loads((tmp_path / "out" / "load-report.json").read_text(encoding="utf-8"))
    assert report["data_quality_check"]["status"] == "failed"
    _, _, _, quality = load_to_folder(uk, tmp_path / "out2", adapter_options={"dates": "uk"})
    assert quality.status == PASSED
