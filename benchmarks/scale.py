"""How cquin's time and memory grow with the number of patients: a benchmark anyone can re-run.

For each size it writes a synthetic canonical dataset with ``cquin demo
generate OUT --patients N --seed 1``, then times ``cquin evaluate OUT --store
S.sqlite --format json`` end to end in a child process (load, checks,
evaluation, audit store, JSON output) and records the child's wall time and
peak resident memory (from ``wait4``, so each size is measured alone).  It
writes ``scale.csv`` and ``scale.md`` (a table and a growth analysis: time and
memory per patient, and how each grows from one size to the next).

Usage::

    .venv/bin/python benchmarks/scale.py                    # 10k, 100k and 1M patients
    .venv/bin/python benchmarks/scale.py --with-5m          # and 5M (several minutes, ~8 GB of disk)
    .venv/bin/python benchmarks/scale.py --sizes 10000 50000 --out /tmp/bench

The data and stores go to a temporary folder (``--work`` to choose it); DuckDB
spills to a ``.tmp`` folder inside it when the 1 GB memory limit is reached.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CQUIN = Path(sys.executable).with_name("cquin")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
CONTRACT_VALUE = "10000000"  # £10m a year: only so the money columns are not all zero
# With --phases: the same run in a child, timing each step through run_evaluation's progress callback.
PHASES = """
import sys, time, json
from decimal import Decimal
from pathlib import Path
from cquin.runner import run_evaluation
marks = [("start", time.perf_counter())]
run_evaluation(Path(sys.argv[1]), store=Path(sys.argv[2]), contract_value=Decimal(sys.argv[3]),
               progress=lambda msg: marks.append((msg, time.perf_counter())))
marks.append(("done", time.perf_counter()))
print(json.dumps({a: round(t2 - t1, 2) for (a, t1), (_, t2) in zip(marks, marks[1:])}))
"""


@dataclass
class Measurement:
    patients: int
    input_rows: int
    input_mb: float
    generate_s: float
    evaluate_s: float
    peak_rss_mb: float
    store_mb: float
    exit_code: int
    year1_payment: str
    year2_payment: str
    phases: str = ""


def run(cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run ``cmd``; its wall time, peak RSS in MB (this child alone), exit code and stdout (stderr goes to ``log``)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, log.open("wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        print(f"  exit {proc.returncode} (full log: {log}):\n  " + "\n  ".join(tail), file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, proc.returncode, text  # ru_maxrss is in KiB on Linux


def count_rows(folder: Path) -> tuple[int, float]:
    rows, size = 0, 0
    for f in folder.glob("*.csv"):
        size += f.stat().st_size
        with f.open("rb") as fh:
            rows += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b"")) - 1
    return rows, size / 1e6


def payments(text: str) -> tuple[str, str]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return "?", "?"
    totals = doc.get("totals") or {}
    values = [str(v) for v in totals.values()] if isinstance(totals, dict) else []
    return (values + ["?", "?"])[0], (values + ["?", "?"])[1]


def measure(n: int, work: Path, keep: bool, phases: bool = False, memory_limit: str | None = None) -> Measurement:
    data, store = work / f"data_{n}", work / f"store_{n}.sqlite"
    shutil.rmtree(data, ignore_errors=True)
    store.unlink(missing_ok=True)
    print(f"{n:>10,} patients: generating ...", flush=True)
    gen_cmd = [str(CQUIN), "demo", "generate", str(data), "--patients", str(n), "--seed", "1"]
    gen_s, _, code, _ = run(gen_cmd, work, work / f"generate_{n}.log")
    if code != 0:
        raise SystemExit(f"cquin demo generate failed for {n} patients")
    rows, mb = count_rows(data)
    print(f"{n:>10,} patients: {rows:,} rows ({mb:,.0f} MB) generated in {gen_s:.1f}s; evaluating ...", flush=True)
    cmd = [str(CQUIN), "evaluate", str(data), "--store", str(store), "--format", "json", "--contract-value", CONTRACT_VALUE]
    # --memory-limit raises DuckDB's budget from the default 1GB, as a user would: CQUIN_MEMORY_LIMIT.
    env = {"CQUIN_MEMORY_LIMIT": memory_limit} if memory_limit else None
    eval_s, rss, code, text = run(cmd, work, work / f"evaluate_{n}.log", env)
    y1, y2 = payments(text)
    m = Measurement(n, rows, round(mb, 1), round(gen_s, 2), round(eval_s, 2), round(rss, 1),
                    round(store.stat().st_size / 1e6, 1) if store.exists() else 0.0, code, y1, y2)  # fmt: skip
    print(f"{n:>10,} patients: evaluated in {eval_s:.1f}s, peak RSS {rss:,.0f} MB, store {m.store_mb:,.0f} MB", flush=True)
    if phases:
        store.unlink(missing_ok=True)
        cmd = [sys.executable, "-c", PHASES, str(data), str(store), CONTRACT_VALUE]
        _, _, _, text = run(cmd, work, work / f"phases_{n}.log", env)
        m.phases = text.strip()
        print(f"{n:>10,} patients: phases {m.phases}", flush=True)
    if not keep:
        shutil.rmtree(data, ignore_errors=True)
        store.unlink(missing_ok=True)
    return m


def growth(rows: list[Measurement]) -> list[str]:
    """Per-patient cost at each size, and the exponent k in cost ~ N^k between successive sizes (1 = linear)."""
    out = [
        "| patients | time per patient (µs) | memory per patient (KB) | time exponent from previous size | memory exponent from previous size |",
        "|---:|---:|---:|---:|---:|",
    ]
    prev: Measurement | None = None
    for m in rows:
        t_exp = m_exp = "–"
        if prev is not None:
            ratio = math.log(m.patients / prev.patients)
            t_exp = f"{math.log(m.evaluate_s / prev.evaluate_s) / ratio:.2f}"
            m_exp = f"{math.log(m.peak_rss_mb / prev.peak_rss_mb) / ratio:.2f}"
        out.append(
            f"| {m.patients:,} | {m.evaluate_s / m.patients * 1e6:,.1f} | {m.peak_rss_mb * 1024 / m.patients:,.2f} | {t_exp} | {m_exp} |"
        )
        prev = m
    return out


def machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            mem = f", {int(fh.readline().split()[1]) / 1024 / 1024:.1f} GB RAM"
    except OSError:
        pass
    try:
        import duckdb

        duck = f", DuckDB {duckdb.__version__}"
    except ImportError:  # pragma: no cover
        duck = ""
    return f"{platform.machine()}, {os.cpu_count()} CPUs{mem}, Python {platform.python_version()}{duck}, {platform.system()}"


def write(rows: list[Measurement], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scale.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(asdict(rows[0])))
        w.writeheader()
        for m in rows:
            w.writerow(asdict(m))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}.",
        "",
        "| patients | input rows | input MB | generate s | evaluate s (end to end) | peak RSS MB | store MB | exit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {m.patients:,} | {m.input_rows:,} | {m.input_mb:,.0f} | {m.generate_s:,.1f} | {m.evaluate_s:,.1f} | {m.peak_rss_mb:,.0f} | {m.store_mb:,.0f} | {m.exit_code} |"
        for m in rows
    ]
    lines += ["", *growth(rows), ""]
    if any(m.phases for m in rows):
        lines += ["Seconds per step (a second run, in one process):", ""]
        lines += [f"- {m.patients:,} patients: {m.phases}" for m in rows if m.phases]
        lines.append("")
    (out / "scale.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), help="numbers of patients")
    parser.add_argument("--with-5m", action="store_true", help="also 5,000,000 patients (several minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results", help="where scale.csv and scale.md go")
    parser.add_argument("--work", type=Path, help="folder for the generated data and stores (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data and stores")
    parser.add_argument("--phases", action="store_true", help="also time load, evaluation and store writing separately")
    parser.add_argument("--memory-limit", help="DuckDB memory limit for the evaluation (default: the builder's 1GB), e.g. 4GB")
    args = parser.parse_args(argv)
    sizes = sorted(set(args.sizes) | ({5_000_000} if args.with_5m else set()))
    if not CQUIN.exists():
        raise SystemExit(f"{CQUIN} not found: run with the Python of the environment cquin is installed in")
    work = args.work or Path(tempfile.mkdtemp(prefix="cquin-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = [measure(n, work, args.keep, args.phases, args.memory_limit) for n in sizes]
    write(rows, args.out)
    if args.work is None and not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
