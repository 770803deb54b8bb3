"""The HTML report renders in a real headless browser (Chromium) with no console errors, every section drawn,
no label overlapping another, and prints to four A4 pages or fewer, for the demo and for 20,000 patients.

Screenshots and the printed PDFs are kept under tests/artifacts/ for a person to look at.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from decimal import Decimal
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
    assert divs >= 6 and drawn >= divs, (divs, drawn)  # Plotly drew every chart (each draws one or more svgs)


# Run in the page after it is drawn: every pair of text boxes that overlap (band labels, the position marker, and
# each chart's tick labels, bar labels, titles and legend), written into the page for --dump-dom to read.
OVERLAP_CHECK = """<script>
window.addEventListener('load', () => setTimeout(() => {
  const groups = [];
  document.querySelectorAll('.bandrow').forEach(g => groups.push([...g.querySelectorAll('.marker, .bandlabels > div')]));
  document.querySelectorAll('.plotly-graph-div').forEach(g => groups.push([...g.querySelectorAll('text')].filter(t => t.textContent.trim())));
  const found = [];
  for (const els of groups) {
    const boxes = els.map(el => [el, el.getBoundingClientRect()]).filter(([, r]) => r.width > 0 && r.height > 0);
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
      const [a, r] = boxes[i], [b, q] = boxes[j];
      const w = Math.min(r.right, q.right) - Math.max(r.left, q.left), h = Math.min(r.bottom, q.bottom) - Math.max(r.top, q.top);
      if (w > 1 && h > 1) found.push(a.textContent.trim().slice(0, 40) + ' | ' + b.textContent.trim().slice(0, 40));
    }
  }
  const out = document.createElement('pre'); out.id = 'overlaps'; out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
}, 500));
</script>"""


def overlaps(report: Path, profile: Path) -> list[str]:
    checked = report.with_name(report.stem + "-checked.html")
    checked.write_text(report.read_text(encoding="utf-8").replace("</body>", OVERLAP_CHECK + "</body>"), encoding="utf-8")
    dom = chromium(checked.as_uri(), profile, "--dump-dom", "--window-size=1400,3000").stdout
    m = re.search(r'<pre id="overlaps">(.*?)</pre>', dom, re.S)
    assert m, "the overlap check did not run"
    return list(json.loads(html.unescape(m.group(1))))


def printed_pages(report: Path, pdf: Path, profile: Path) -> int:
    run = chromium(report.as_uri(), profile, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    assert run.returncode == 0 and pdf.exists(), run.stderr[-2000:]
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """20,000 synthetic patients (the demo generator), evaluated once into a store."""
    from cquin.demo.generate import generate
    from cquin.runner import run_evaluation

    root = tmp_path_factory.mktemp("big")
    generate(root / "data", 20_000, 1, bad_rows=True)
    ev = run_evaluation(root / "data", contract_value=Decimal("12000000"), store=root / "audit.sqlite")
    assert ev.run_id is not None
    return root / "audit.sqlite", ev.run_id


@pytest.mark.parametrize("which", ["demo", "20k"])
def test_the_report_is_small_prints_to_four_pages_and_no_label_overlaps(
    which: str, demo_run: DemoRun, big_run: tuple[Path, str], tmp_path: Path
) -> None:
    store, run_id = (demo_run.store, demo_run.run_id) if which == "demo" else big_run
    report = tmp_path / f"report-{which}.html"
    write_report(store, run_id, report)
    size = report.stat().st_size
    assert size < 1_500_000, f"{size:,} bytes"
    ARTIFACTS.mkdir(exist_ok=True)
    pdf = ARTIFACTS / f"report-{which}.pdf"
    assert printed_pages(report, pdf, tmp_path / "p1") <= 4
    assert overlaps(report, tmp_path / "p2") == []
    shot = ARTIFACTS / f"report-{which}.png"
    run = chromium(report.as_uri(), tmp_path / "p3", f"--screenshot={shot}", "--window-size=1400,6000")
    assert run.returncode == 0 and console_lines(run.stderr) == []
    shutil.copy(report, ARTIFACTS / f"report-{which}.html")


def test_the_overlap_check_catches_overlapping_labels(tmp_path: Path) -> None:
    # The harness itself: two band labels drawn on top of each other must be reported.
    page = tmp_path / "overlap.html"
    page.write_text(
        "<html><body><div class='bandrow'><div class='marker' style='position:absolute;left:10px;top:0'>Plan agreed</div>"
        "<div class='bandlabels'><div style='position:absolute;left:12px;top:2px'>recording system</div></div></div></body></html>",
        encoding="utf-8",
    )
    assert overlaps(page, tmp_path / "p") != []
