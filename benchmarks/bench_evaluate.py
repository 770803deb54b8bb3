"""Benchmark: evaluate N synthetic patients end to end (load, evaluate, store), with peak memory.

    .venv/bin/python benchmarks/bench_evaluate.py --patients 1000000

It writes the dataset with `cquin demo generate` (once per size and seed,
reused afterwards), then runs, alternately and ``--runs`` times each, the
commissioner's command `cquin evaluate` and the analyst's one-pass DuckDB query
(`analyst_query.py`: the same counts with no checks, ledger, trace or store),
each in a child process, and reports medians of wall time and peak resident
memory, and cquin's time as a ratio to the query's; optionally, in-process, the
time of each phase.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
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


def child(cmd: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of one child process, and its output."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed with exit {code}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024, out


def cquin_command(data: Path, store: Path) -> list[str]:
    return [sys.executable, "-m", "cquin.cli", "evaluate", str(data), "--contract-value", "12000000",
            "--store", str(store), "--format", "json"]  # fmt: skip


def analyst_command(data: Path) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("analyst_query.py")), str(data)]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


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
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each (medians are reported)")
    parser.add_argument("--phases", action="store_true", help="also time each phase in-process")
    args = parser.parse_args()
    # The stores (and, without --data, the generated records) go in a private folder removed at the end, even
    # when a run fails: nothing is left in the temporary folder.
    work = Path(tempfile.mkdtemp(prefix="cquin-bench-"))
    try:
        run_benchmark(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_benchmark(args: argparse.Namespace, work: Path) -> None:
    data = args.data or work / f"data-{args.patients}"
    gen = generate(data, args.patients, args.seed)
    rows = {
        name: sum(1 for _ in open(data / f"{name}.csv", encoding="utf-8")) - 1
        for name in ("patients", "conditions", "assessments", "conversations", "care_plans")
    }
    print(f"machine: {machine()}")
    print(f"patients {args.patients:,} (rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + ")")
    if gen:
        print(f"generate: {gen:.1f} s")
    cq: list[tuple[float, float, int]] = []
    aq: list[tuple[float, float, int]] = []
    sizes: list[float] = []
    for i in range(args.runs):
        store = work / f"store-{i}.sqlite"
        wall, cpu, peak, _ = child(cquin_command(data, store))
        cq.append((wall, cpu, peak))
        sizes.append(sum(p.stat().st_size for p in work.glob(f"store-{i}.sqlite*")) / 1e6)
        for p in work.glob(f"store-{i}.sqlite*"):
            p.unlink()
        wall, cpu, peak, printed = child(analyst_command(data))
        aq.append((wall, cpu, peak))
        counts = json.loads(printed)["counts"]
        print(f"  run {i + 1}: cquin {cq[-1][0]:.1f} s, analyst query {aq[-1][0]:.1f} s")

    def med(values: list[tuple[float, float, int]], k: int) -> float:
        return statistics.median(v[k] for v in values)

    print(
        f"cquin evaluate end to end: {med(cq, 0):.1f} s wall, {med(cq, 1):.1f} s CPU, peak RSS {med(cq, 2):,.0f} MB (median of {args.runs})"
    )
    print(
        f"analyst one-pass query:    {med(aq, 0):.1f} s wall, {med(aq, 1):.1f} s CPU, peak RSS {med(aq, 2):,.0f} MB (median of {args.runs})"
    )
    print(f"ratio cquin / analyst query: {med(cq, 0) / med(aq, 0):.1f}x (wall)")
    print(f"audit store: {statistics.median(sizes):,.0f} MB (with its write-ahead log)")
    print("analyst query counts: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    if args.phases:
        for name, secs in phases(data, work / "store2.sqlite").items():
            print(f"  {name}: {secs:.1f} s")


if __name__ == "__main__":
    main()
