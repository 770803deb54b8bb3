"""The report page: what it shows, under disclosure control or not, and that data cannot inject markup."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cquin.cli import app
from cquin.report.data import load_report_data
from cquin.report.page import SECTIONS, render_report
from cquin.store import open_store

from .conftest import DemoRun


def test_the_report_command_writes_every_section(demo_run: DemoRun, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", demo_run.run_id, "--store", str(demo_run.store), "--out", str(out)])
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    for sid, _ in SECTIONS:
        assert f'<section id="{sid}">' in html
    assert demo_run.run_id in html and demo_run.evaluation.result.ruleset_sha256 in html


def test_the_report_is_exact_by_default_and_publishing_leaves_staff_counts_alone(demo_run: DemoRun) -> None:
    d = load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns)
    exact = render_report(d)
    published = render_report(d, control=True)
    assert "Exact figures, for the parties to the contract" in exact and "Published figures" in published
    assert "4 of 6 (66.67%)" in exact and "4 of 6 (66.67%)" in published  # staff: never suppressed
    assert "102 of 234 (43.59%)" in exact
    assert "100 of 235 (42.55%)" in published and "102 of 234" not in published


def test_the_report_says_what_the_next_band_is_worth(demo_run: DemoRun) -> None:
    html = render_report(load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns))
    assert "worth £2,700.00 more" in html and "2 more relevant staff trained" in html


def test_breakdowns_kept_in_the_store_are_read_back(demo_run: DemoRun, tmp_path: Path) -> None:
    # The store keeps a run's breakdowns in run_breakdowns (one JSON document per run).
    import shutil

    store = tmp_path / "copy.sqlite"
    shutil.copy(demo_run.store, store)
    db = open_store(store)
    db["run_breakdowns"].insert({"run_id": demo_run.run_id, "breakdowns": json.dumps(demo_run.breakdowns)})
    assert load_report_data(store, demo_run.run_id).breakdowns == demo_run.breakdowns


def test_a_run_without_breakdowns_says_so(demo_run: DemoRun) -> None:
    html = render_report(load_report_data(demo_run.store, demo_run.run_id, breakdowns={}), control=True)
    assert "were not recorded with this run" in html


def test_text_from_the_data_cannot_inject_markup(demo_run: DemoRun) -> None:
    d = load_report_data(demo_run.store, demo_run.run_id, breakdowns=dict(demo_run.breakdowns))
    d.breakdowns["provider"] = {"code": "X", "name": "<script>alert('provider')</script>"}  # type: ignore[index]
    d.rejections = [("patients.csv", "<img src=x onerror=alert(1)>", 9)]
    html = render_report(d, control=True)
    assert "<script>alert('provider')</script>" not in html and "&lt;script&gt;alert(" in html
    assert "<img src=x" not in html


def test_the_headline_gives_each_years_total_the_grand_total_and_the_basis(demo_run: DemoRun) -> None:
    html = render_report(load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns), control=True)
    totals = demo_run.evaluation.result.totals
    for value in totals.values():
        assert f"£{value:,.2f}" in html
    assert f"£{sum(totals.values()):,.2f}" in html and "Both years" in html
    assert "contract value £12,000,000.00 × 0.25% = £30,000.00" in html


def test_what_to_do_next_names_each_distance_and_its_worth_in_pounds(demo_run: DemoRun) -> None:
    from cquin.report.page import next_steps

    d = load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns)
    steps = next_steps(d, control=False)
    # Improvement: 100 of 235 (42.55%) pays 50%; 16 more reach above 50%, worth the other half of £15,000.
    assert [(s["component"]["component"], s["next"]["more_needed"], str(s["worth"])) for s in steps] == [
        ("y2.activation_improvement", 16, "7500.00"),
        ("y1.staff_training", 2, "2700.00"),
    ]
    html = render_report(d, control=False)
    assert "16 more" in html and "worth £7,500.00 more" in html and "would add £10,200.00" in html


def test_the_funnels_only_narrow(demo_run: DemoRun) -> None:
    from cquin.report.funnel import chains

    d = load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns)
    found = chains(d.ruleset, "patient", set(d.populations))
    assert found[0] == ["served_year1", "ltc_identified", "baseline_assessed", "low_activation_at_baseline"]
    # The Year 1 cohort is not inside the low-activation population (overrides may widen it): it starts from
    # the patients served instead of widening the first funnel.
    assert any(c[:2] == ["served_year1", "year1_cohort"] for c in found)
    assert any(c[-3:] == ["year2_cohort", "followed_up", "improved"] for c in found)
    for chain in found:
        counts = [d.populations[p] for p in chain]
        assert counts == sorted(counts, reverse=True), chain


def test_data_quality_groups_reasons_and_counts_duplicates_as_one(demo_run: DemoRun) -> None:
    d = load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns)
    dups = [(f, k) for f, k, _ in d.rejections if k.startswith("exact duplicate")]
    assert len(dups) == len({f for f, _ in dups})  # one reason per file, whatever the line
    assert all("line …" in k for _, k in dups)


def test_the_report_inlines_the_partial_plotly_bundle_not_the_whole(demo_run: DemoRun) -> None:
    html = render_report(load_report_data(demo_run.store, demo_run.run_id, breakdowns=demo_run.breakdowns), control=True)
    assert "plotly.js (basic - minified)" in html
    assert len(html.encode("utf-8")) < 1_500_000
