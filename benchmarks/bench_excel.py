"""Benchmark: stage the same canonical tables from CSV and from Excel workbooks, and compare.

    .venv/bin/python benchmarks/bench_excel.py --patients 100000

It writes a synthetic dataset with `cquin demo generate` and, once, each table as a workbook (with XlsxWriter,
cells typed as a person would leave them: date cells, numbers, TRUE/FALSE), then times staging each table into
the builder from CSV and from the workbook (python-calamine), median of ``--runs``.  Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cquin.dataset import DatasetBuilder  # noqa: E402
from cquin.demo.generate import generate  # noqa: E402
from cquin.engine.ruleset import load_ruleset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tables", default="patients,conditions")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cquin-bench-excel")
    args = ap.parse_args()
    from tests.adapters.workbooks import workbook_per_table

    csv_dir, xl_dir = args.work / f"csv-{args.patients}", args.work / f"xlsx-{args.patients}"
    if not (csv_dir / "patients.csv").exists():
        generate(csv_dir, args.patients, 1, bad_rows=False)
    if not (xl_dir / "patients.xlsx").exists():
        started = time.perf_counter()
        workbook_per_table(csv_dir, xl_dir)
        print(f"wrote the workbooks in {time.perf_counter() - started:.1f} s")
    vocabulary = load_ruleset("cquin_2017_19").vocabulary()
    for name in args.tables.split(","):
        for kind, path in (("csv", csv_dir / f"{name}.csv"), ("xlsx", xl_dir / f"{name}.xlsx")):
            times = []
            for _ in range(args.runs):
                builder = DatasetBuilder(vocabulary)
                started = time.perf_counter()
                builder.add_csv(name, path)
                times.append(time.perf_counter() - started)
                rows = builder.con.execute(f"SELECT count(*) FROM raw_{name}").fetchone()[0]  # type: ignore[index]
                builder.con.close()
            print(
                f"{name:>12} {kind:>4}: {rows:>9,} rows, {path.stat().st_size / 1e6:6.1f} MB, median {statistics.median(times):6.2f} s"
            )


if __name__ == "__main__":
    main()
