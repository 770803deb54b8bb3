"""The hand-worked cases in cquin_2017_19.tests.yaml, each run as its own test."""

from __future__ import annotations

from pathlib import Path

import pytest

from cquin.config.yaml_source import load_yaml_file
from cquin.policytest import run_test_file

RULESETS = Path(__file__).resolve().parents[2] / "cquin" / "rulesets"
TEST_FILES = sorted(RULESETS.glob("*.tests.yaml"))


def _cases() -> list[tuple[Path, str]]:
    out = []
    for path in TEST_FILES:
        for case in load_yaml_file(path).data["cases"]:
            out.append((path, case["name"]))
    return out


@pytest.fixture(scope="module")
def results() -> dict[tuple[Path, str], list[str]]:
    found = {}
    for path in TEST_FILES:
        for case in run_test_file(path).cases:
            found[(path, case.name)] = case.failures
    return found


@pytest.mark.parametrize(("path", "name"), _cases(), ids=lambda v: v if isinstance(v, str) else v.stem)
def test_hand_worked_case(results: dict[tuple[Path, str], list[str]], path: Path, name: str) -> None:
    failures = results[(path, name)]
    assert not failures, "\n".join(failures)


def test_every_interpretation_is_covered_by_a_case() -> None:
    """Every rule that records an interpretation has at least one case that names it in `covers`."""
    from cquin.engine.ruleset import load_ruleset

    for path in TEST_FILES:
        doc = load_yaml_file(path).data
        ruleset = load_ruleset(RULESETS / doc["ruleset"])
        covered = {
            c
            for case in doc["cases"]
            for c in ([case["covers"]] if isinstance(case.get("covers"), str) else case.get("covers", []))
        }
        d = ruleset.doc
        with_interp = set()
        with_interp |= {k for k, v in d["periods"].items() if "interpretation" in v}
        with_interp |= {k for k, v in d["populations"].items() if "interpretation" in v}
        with_interp |= {k for k, v in d["measurements"].items() if "interpretation" in v}
        with_interp |= {c["id"] for c in d["components"] if "interpretation" in c}
        with_interp |= {m["id"] for m in d.get("milestones", []) if "interpretation" in m}
        with_interp |= {c["id"] for c in d["ltc"]["categories"] if "interpretation" in c}
        with_interp |= {k for k in ("ltc", "zero_denominator", "money", "indicator") if "interpretation" in d[k]}
        with_interp |= {"care_planning"} if "interpretation" in d.get("care_planning", {}) else set()
        with_interp |= {k for k, v in d["instruments"].items() if isinstance(v, dict) and "interpretation" in v}
        missing = sorted(with_interp - covered - {"conversation_codes"})
        assert not missing, f"{path.name}: interpretations with no test case: {missing}"
