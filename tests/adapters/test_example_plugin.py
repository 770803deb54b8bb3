"""The example adapter plugin installs as a separate package and cquin finds it through its entry point.

The package is installed with pip, as an IT team would (``pip install
examples/cquin-adapter-example``), but into a throwaway folder of the test's own
(``pip install --target``), never into the environment running the tests: after
``pytest`` the user's ``cquin adapters list`` is as it was.  It is checked in a
fresh Python process with that folder on its path, because entry points and the
plugin registry are read once per process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
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
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not _pip_available():
        pytest.skip("pip is not available in this environment")
    target = tmp_path_factory.mktemp("plugin-site")
    build = tmp_path_factory.mktemp("plugin-build")
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target)]
    if _can_build_without_isolation():
        cmd.append("--no-build-isolation")  # else pip fetches a build backend from the package index
    # Build from a copy, so the build leaves nothing (build/, *.egg-info) in the repository either.
    source = build / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run([*cmd, str(source)], capture_output=True, text=True)
    assert done.returncode == 0, f"pip install --target {target} {EXAMPLE} failed:\n{done.stderr[-2000:]}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", PROBE, str(SAMPLE)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_plugin_is_not_installed_into_the_environment_running_the_tests(probe):
    here = subprocess.run(
        [sys.executable, "-c", "from cquin import plugins; print(sorted(plugins.adapters()))"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert here.returncode == 0, here.stderr[-2000:]
    assert "example-epr" not in here.stdout


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
