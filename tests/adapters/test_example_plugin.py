"""The example adapter plugin installs as a separate package and cquin finds it through its entry point.

The package is installed editable into the running interpreter's environment
(as an IT team would: ``pip install -e examples/cquin-adapter-example``), then
checked in a fresh Python process, because entry points and the plugin
registry are read once per process.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cquin-adapter-example"
SAMPLE = EXAMPLE / "sample" / "epr_export.txt"

PROBE = """
import json, sys
from pathlib import Path
from cquin import plugins
from cquin.engine.ruleset import load_ruleset
from cquin.loading import load_dataset

found = plugins.adapters().get("example-epr")
ds, chosen = load_dataset(Path(sys.argv[1]), load_ruleset("cquin_2017_19").vocabulary())
print(json.dumps({
    "adapters": sorted(plugins.adapters()),
    "broken": plugins.broken_plugins(),
    "plugin": found.plugin if found else None,
    "class": found.cls.__name__ if found else None,
    "chosen": chosen,
    "files": {name: stats.as_dict() for name, stats in ds.ledger.files.items()},
    "rows": {t: ds.count(t) for t in ("patients", "conditions", "assessments", "conversations")},
    "reasons": [r[5] for r in ds.ledger.rejection_rows()],
}))
"""


def _pip_available() -> bool:
    return subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0


def _can_build_without_isolation() -> bool:
    """setuptools can build an editable wheel offline: it is new enough, or the wheel package is there."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    major, minor = (int(x) for x in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def probe() -> dict:
    if not _pip_available():
        pytest.skip("pip is not available in this environment")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
    if _can_build_without_isolation():
        cmd.append("--no-build-isolation")  # else pip fetches a build backend from the package index
    done = subprocess.run([*cmd, "-e", str(EXAMPLE)], capture_output=True, text=True)
    assert done.returncode == 0, f"pip install -e {EXAMPLE} failed:\n{done.stderr[-2000:]}"
    run = subprocess.run([sys.executable, "-c", PROBE, str(SAMPLE)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_installed_plugin_is_discovered_through_the_entry_point_group(probe):
    assert "example-epr" in probe["adapters"]
    assert probe["plugin"] == "cquin-adapter-example"
    assert probe["class"] == "EprEventAdapter"
    assert probe["broken"] == []


def test_cquin_detects_the_export_and_loads_it_with_the_plugin(probe):
    assert probe["chosen"] == "example-epr"
    assert probe["files"] == {"epr_export.txt": {"read": 28, "accepted": 23, "rejected": 5}}
    assert probe["rows"] == {"patients": 7, "conditions": 7, "assessments": 5, "conversations": 2}


def test_the_samples_bad_lines_are_rejected_with_reasons(probe):
    reasons = "\n".join(probe["reasons"])
    assert "ignored: event type 'APPT' is not one cquin reads" in reasons
    assert "code scheme 'READ' is not used" in reasons
    assert "'31/02/2018' is not a real date" in reasons
    assert "a discharge for NHS number 9992000074 with no open registration before it" in reasons
    assert "the line has 9 fields but the header has 8" in reasons
