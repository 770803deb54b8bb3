"""The repository needs nothing outside itself: no test, benchmark or script reaches beyond its root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = sorted(
    p
    for folder in ("cquin", "tests", "benchmarks", "examples", ".ci")
    for p in (ROOT / folder).rglob("*")
    if p.is_file()
    and (p.suffix == ".py" or p.parent.name == ".ci")
    and "build" not in p.parts
    and p.name != "test_self_contained.py"
)
PARENTS = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_file_climbs_out_of_the_repository(path: Path):
    text = path.read_text(encoding="utf-8", errors="replace")
    for match in PARENTS.finditer(text):
        reached = path.resolve().parents[int(match.group(1))]
        assert reached == ROOT or ROOT in reached.parents, f"{path.name} reaches {reached}, outside the repository"
    assert "/work/shared" not in text and '"shared" / "fixtures"' not in text, f"{path.name} names the shared folder"


def test_the_synthea_fixture_is_in_the_repository_with_its_licence():
    folder = ROOT / "tests" / "fixtures" / "synthea-bulk-10-patients"
    assert (folder / "LICENSE").read_text().lstrip().startswith("Apache License")
    assert "smart-on-fhir/sample-bulk-fhir-datasets" in (folder / "README.md").read_text()
    assert sorted(p.name for p in folder.glob("*.ndjson")) == ["Condition.000.ndjson", "Patient.000.ndjson", "log.ndjson"]
