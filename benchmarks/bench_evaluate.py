"""Benchmark: evaluate N synthetic patients end to end (load, evaluate, store), with peak memory.

    .venv/bin/python benchmarks/bench_evaluate.py --patients 1000000

It writes the dataset with `cquin demo generate` (once per size and seed,
reused afterwards), then runs the commissioner's command `cquin evaluate` in a
child process and reports wall time and the child's peak resident memory, and,
in-process, the time of each phase.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path


def generate(out: Path, patients: int, seed: int) -> float:
    if (out / "patients.csv").exists():
        return 0.0
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "cquin.cli", "demo", "generate", str(out), "--patients", str(patients), "--seed", str(seed)],
        check=True,
    )
    return time.perf_counter() - start


def end_to_end(data: Path, store: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of `cquin evaluate` in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cquin.cli",
            "evaluate",
            str(data),
            "--contract-value",
            "12000000",
            "--store",
            str(store),
            "--format",
            "json",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) // 1024


def phases(data: Path, store: Path) -> dict[str, float]:
    """Seconds spent loading, evaluating and writing the audit store (in this process)."""
    from cquin.engine.evaluation import evaluate
    from cquin.engine.ruleset import canonical_json, load_ruleset
    from cquin.loading import load_dataset
    from cquin.store import new_run_id, open_store, record_run

    out = {}
    t = time.perf_counter()
    ruleset = load_ruleset("cquin_2017_19")
    dataset, adapter = load_dataset(data, ruleset.vocabulary())
    out["load"] = time.perf_counter() - t
    t = time.perf_counter()
    result = evaluate(ruleset, dataset, contract_value=Decimal("12000000"))
    out["evaluate"] = time.perf_counter() - t
    t = time.perf_counter()
    record_run(
        open_store(store),
        result,
        dataset,
        run_id=new_run_id(),
        started_at=dt.datetime.now(dt.UTC),
        adapter=adapter,
        source=str(data),
        ruleset_source=str(ruleset.path),
        parameters={},
        ruleset_json=canonical_json(ruleset.doc),
    )
    out["store"] = time.perf_counter() - t
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=None, help="where to keep the generated data (default: a temp folder)")
    parser.add_argument("--phases", action="store_true", help="also time each phase in-process")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cquin-bench-"))
    data = args.data or work / f"data-{args.patients}"
    gen = generate(data, args.patients, args.seed)
    wall, peak = end_to_end(data, work / "store.sqlite")
    rows = {
        name: sum(1 for _ in open(data / f"{name}.csv", encoding="utf-8")) - 1
        for name in ("patients", "conditions", "assessments", "conversations")
    }
    print(f"patients {args.patients:,} (rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + ")")
    if gen:
        print(f"generate: {gen:.1f} s")
    print(f"cquin evaluate end to end: {wall:.1f} s, peak RSS {peak:,} MB")
    if args.phases:
        for name, secs in phases(data, work / "store2.sqlite").items():
            print(f"  {name}: {secs:.1f} s")


if __name__ == "__main__":
    main()
