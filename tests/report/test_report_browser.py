"""The HTML report renders in a real headless browser (Chromium) with no console errors, every section drawn.

The screenshot is kept under tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cquin.report import write_report
from cquin.report.page import SECTIONS

from .conftest import DemoRun

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium); .ci/run installs it"
)
# Chromium logs each console message as "...:INFO:CONSOLE..." with --enable-logging=stderr.
CONSOLE = re.compile(r"CONSOLE|Uncaught", re.IGNORECASE)


def chromium(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once on ``url`` (offline: no background networking, a fresh profile)."""
    assert CHROMIUM is not None
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=10000",
        *extra,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if CONSOLE.search(line)]


def test_the_console_check_catches_a_page_error(tmp_path: Path) -> None:
    # The harness itself: a page that throws must be caught, or the report test below proves nothing.
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>throw new Error('broken on purpose')</script></body></html>", encoding="utf-8")
    run = chromium(page.as_uri(), tmp_path / "profile", f"--screenshot={tmp_path / 'broken.png'}", "--window-size=400,300")
    assert any("broken on purpose" in line for line in console_lines(run.stderr)), run.stderr[-2000:]


def test_the_report_renders_offline_with_no_console_errors(demo_run: DemoRun, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    write_report(demo_run.store, demo_run.run_id, report, breakdowns=demo_run.breakdowns)
    html = report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:", html), "the page must not load anything from elsewhere"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report-demo.png"
    shot.unlink(missing_ok=True)
    run = chromium(report.as_uri(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1400,9000")
    assert run.returncode == 0, run.stderr[-2000:]
    assert console_lines(run.stderr) == []
    assert shot.exists() and shot.stat().st_size > 100_000  # a page of charts, not a blank one
    shutil.copy(report, ARTIFACTS / "report-demo.html")

    dom = chromium(report.as_uri(), tmp_path / "profile2", "--dump-dom").stdout
    for sid, title in SECTIONS:
        assert f'id="{sid}"' in dom and title in dom, sid
    drawn = dom.count('class="main-svg"')
    divs = html.count('class="plotly-graph-div"')
    assert divs >= 12 and drawn >= divs, (divs, drawn)  # Plotly drew every chart (each draws one or more svgs)
