"""Many providers: one manifest, each provider evaluated and stored, one comparison table and one report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cquin.cli import app
from cquin.demo import DEMO_DIR
from cquin.demo.generate import generate
from cquin.exceptions import RulesetError, UserError
from cquin.many import read_manifest
from cquin.store import list_runs, open_store


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("many")
    generate(base / "west", 300, 11, bad_rows=False)
    path = base / "providers.yaml"
    path.write_text(
        f"""providers:
  - name: Demo Community Trust
    source: {DEMO_DIR}
    contract_value: 12,000,000
  - name: West Community Trust
    source: west
    adapter: canonical
    contract_value: 8000000
""",
        encoding="utf-8",
    )
    return path


def test_a_manifest_names_each_provider_with_its_source_and_value(manifest: Path) -> None:
    spec = read_manifest(manifest)
    assert [p.name for p in spec.providers] == ["Demo Community Trust", "West Community Trust"]
    assert spec.providers[1].source == manifest.parent / "west"  # relative to the manifest
    assert str(spec.providers[0].contract_value) == "12000000"


def test_every_problem_in_a_manifest_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """providers:
  - name: A
    source: nowhere
    contract_value: lots
  - name: A
    source: .
    colour: red
""",
        encoding="utf-8",
    )
    with pytest.raises(UserError) as info:
        read_manifest(path)
    text = str(info.value)
    assert "3 problem(s)" in text or "4 problem(s)" in text
    assert re.search(r"bad\.yaml:3:\d+: .*nowhere does not exist", text)
    assert re.search(r"bad\.yaml:4:\d+: contract_value 'lots' is not an amount", text)
    assert "provider name 'A' is used twice" in text and "unknown key(s) colour" in text


def test_evaluate_many_stores_each_run_and_writes_one_table_and_one_report(manifest: Path, tmp_path: Path) -> None:
    store, report = tmp_path / "audit.sqlite", tmp_path / "compare.html"
    result = CliRunner().invoke(app, ["evaluate-many", str(manifest), "--store", str(store), "--out", str(report)])
    assert result.exit_code == 0, result.output
    assert "Providers compared" in result.output
    assert "Demo Community Trust" in result.output and "West Community Trust" in result.output
    runs = list_runs(open_store(store))
    assert len(runs) == 2
    html = report.read_text(encoding="utf-8")
    assert 'id="comparison"' in html
    for i, run in enumerate(runs, start=1):
        assert run["run_id"] in html
        assert f'id="p{i}-headline"' in html and f'id="p{i}-breakdowns"' in html


def test_evaluate_many_refuses_a_draft_ruleset_unless_allowed_as_evaluate_does(tmp_path: Path) -> None:
    draft = Path(__file__).resolve().parents[2] / "examples" / "rulesets" / "cquin_2019_20_example.yaml"
    path = tmp_path / "providers.yaml"
    path.write_text(f"ruleset: {draft}\nproviders:\n  - name: Demo\n    source: {DEMO_DIR}\n    contract_value: 1000000\n")
    store = tmp_path / "audit.sqlite"
    refused = CliRunner().invoke(app, ["evaluate-many", str(path), "--store", str(store)])
    assert isinstance(refused.exception, RulesetError) and "is a draft; pass --allow-draft" in str(refused.exception)
    assert not store.exists() or list_runs(open_store(store)) == []
    allowed = CliRunner().invoke(app, ["evaluate-many", str(path), "--store", str(store), "--allow-draft"])
    assert allowed.exit_code == 0, allowed.output
    assert len(list_runs(open_store(store))) == 1
