"""A stored run as long-format tables (Parquet and CSV) for Power BI, Excel or a warehouse.

``cquin export RUN_ID --tables DIR`` writes, each as ``NAME.parquet`` and ``NAME.csv``:

- ``decisions``: one row per subject (patient or member of staff) and component: whether they are in the
  denominator and in the numerator, the rule (population) that decided, and the fact it rests on;
- ``rejections``: every rejected input row, with its file, line, column, value, reason and reason group;
- ``components``: one row per component: counts, exact fraction (numerator/denominator), band, shares as
  fractions, money in pence and as an exact decimal;
- ``inputs``: every input file with its SHA-256 and row counts (read = accepted + rejected).

Every table carries ``run_id`` so runs can be appended to one warehouse table.  Rows are streamed from the
audit store in batches, so a million-patient run is written in bounded memory.  Parquet keeps types
(booleans, integers, ``decimal(18,2)`` money); CSV cells a spreadsheet would run as formulas are
neutralised as in every other cquin CSV.  Files are written beside their final name and renamed into place,
owner-only when they hold identifiers.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cquin.exceptions import UserError
from cquin.privacy import make_private_dir
from cquin.store import load_run, open_store, trace

BATCH = 50_000
MONEY = pa.decimal128(18, 2)

# A CSV cell a spreadsheet would run as a formula (see cquin.render.results.safe_cell), vectorised.
_RISKY = r"^(\s*[=+\-@\x{ff1d}\x{ff0b}\x{ff0d}\x{ff20}]|[\t\r\n])"
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"


@dataclass(frozen=True)
class Written:
    name: str
    rows: int
    identifiers: bool  # holds NHS numbers (not pseudonyms)


_SCHEMAS: dict[str, pa.Schema] = {
    "decisions": pa.schema(
        [
            ("run_id", pa.string()),
            ("entity", pa.string()),
            ("subject_id", pa.string()),
            ("component", pa.string()),
            ("year", pa.string()),
            ("in_denominator", pa.bool_()),
            ("in_numerator", pa.bool_()),
            ("rule", pa.string()),
            ("fact", pa.string()),
        ]
    ),
    "rejections": pa.schema(
        [
            ("run_id", pa.string()),
            ("file", pa.string()),
            ("line", pa.int64()),
            ("ref", pa.string()),
            ("column_name", pa.string()),
            ("value", pa.string()),
            ("reason", pa.string()),
            ("reason_group", pa.string()),
        ]
    ),
    "components": pa.schema(
        [
            ("run_id", pa.string()),
            ("ordinal", pa.int64()),
            ("component", pa.string()),
            ("year", pa.string()),
            ("name", pa.string()),
            ("entity", pa.string()),
            ("numerator", pa.int64()),
            ("denominator", pa.int64()),
            ("fraction", pa.string()),
            ("percent", pa.string()),
            ("band", pa.string()),
            ("payment_fraction", pa.string()),
            ("share", pa.string()),
            ("available", MONEY),
            ("payment", MONEY),
            ("available_pence", pa.int64()),
            ("payment_pence", pa.int64()),
        ]
    ),
    "inputs": pa.schema(
        [
            ("run_id", pa.string()),
            ("name", pa.string()),
            ("path", pa.string()),
            ("table_name", pa.string()),
            ("sha256", pa.string()),
            ("read", pa.int64()),
            ("accepted", pa.int64()),
            ("rejected", pa.int64()),
        ]
    ),
}


def _rows(conn: sqlite3.Connection, sql: str, params: list[Any]) -> Iterator[list[tuple[Any, ...]]]:
    cur = conn.execute(sql, params)
    while rows := cur.fetchmany(BATCH):
        yield rows


def _batches(conn: sqlite3.Connection, name: str, run_id: str) -> Iterator[pa.RecordBatch]:
    schema = _SCHEMAS[name]
    if name == "decisions":
        # Each subject's decisions in the run's component order, their facts in words (cquin.store.trace).
        terms = trace.Terms(conn)
        components = {
            o: (c, y)
            for o, c, y in conn.execute("SELECT ordinal, component, year FROM run_components WHERE run_id = ?", [run_id])
        }
        sql = "SELECT run_id, entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ? ORDER BY subject_id, entity"
        for rows in _rows(conn, sql, [run_id]):
            decided = [
                (rid, entity, sid, *components[d.ordinal], bool(d.in_denominator), bool(d.in_numerator), d.rule, d.reason)
                for rid, entity, sid, shape, vals in rows
                for d in trace.decode(terms, shape, vals)
            ]
            cols = list(zip(*decided, strict=True)) if decided else [() for _ in schema]
            yield pa.RecordBatch.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, schema, strict=True)], schema=schema)
    elif name == "rejections":
        sql = """SELECT run_id, file, line, ref, column_name, value, reason, reason_group FROM run_rejections
                 WHERE run_id = ? ORDER BY file, line, rowid"""
        for rows in _rows(conn, sql, [run_id]):
            yield pa.RecordBatch.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)
    elif name == "components":
        from decimal import Decimal

        sql = """SELECT run_id, ordinal, component, year, name, entity, numerator, denominator, fraction, percent, band,
                        payment_fraction, share, available, payment FROM run_components WHERE run_id = ? ORDER BY ordinal"""
        for rows in _rows(conn, sql, [run_id]):
            out = []
            for r in rows:
                d = dict(zip(schema.names, r, strict=False))
                d["available"], d["payment"] = Decimal(d["available"]), Decimal(d["payment"])
                d["available_pence"], d["payment_pence"] = int(d["available"] * 100), int(d["payment"] * 100)
                out.append(d)
            yield pa.RecordBatch.from_pylist(out, schema=schema)
    else:
        sql = "SELECT run_id, name, path, table_name, sha256, read, accepted, rejected FROM run_inputs WHERE run_id = ? ORDER BY rowid"
        for rows in _rows(conn, sql, [run_id]):
            yield pa.RecordBatch.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema)


def _csv_safe(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Neutralise string cells a spreadsheet would run as formulas (prefix ``'``), leaving plain numbers alone."""
    arrays = []
    for col in batch.columns:
        if pa.types.is_string(col.type):
            risky = pc.and_(
                pc.fill_null(pc.match_substring_regex(col, _RISKY), False),
                pc.invert(pc.fill_null(pc.match_substring_regex(col, _NUMBER), False)),
            )
            col = pc.if_else(risky, pc.binary_join_element_wise(pa.scalar("'"), col, ""), col)
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, schema=batch.schema)


def write_tables(store: Path, run_id: str, out_dir: Path) -> list[Written]:
    """Write run ``run_id``'s long-format tables into ``out_dir`` as Parquet and CSV; returns what was written."""
    db = open_store(store, read_only=True)
    run = load_run(db, run_id).run  # resolves a prefix; a clear error for an unknown run
    run_id = run["run_id"]
    import json

    pseudonymised = bool(json.loads(run["parameters"] or "{}").get("pseudonymised"))
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--tables {out_dir}: this is a file; give a folder to write the tables into")
    make_private_dir(out_dir)  # 0700 whatever the umask: the decisions name patients
    written = []
    for name, schema in _SCHEMAS.items():
        identifiers = name == "decisions" and not pseudonymised
        rows = _write_one(db.conn, name, run_id, schema, out_dir, owner_only=name in ("decisions", "rejections"))
        written.append(Written(name, rows, identifiers))
    return written


def _write_one(conn: sqlite3.Connection, name: str, run_id: str, schema: pa.Schema, out_dir: Path, *, owner_only: bool) -> int:
    final = {ext: out_dir / f"{name}.{ext}" for ext in ("parquet", "csv")}
    temp = {ext: out_dir / f".{name}.{ext}.partial" for ext in final}
    for p in temp.values():
        fd = os.open(p, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600 if owner_only else 0o644)
        os.close(fd)
    rows = 0
    try:
        with pq.ParquetWriter(temp["parquet"], schema, compression="zstd") as pw, pacsv.CSVWriter(temp["csv"], schema) as cw:
            for batch in _batches(conn, name, run_id):
                pw.write_batch(batch)
                cw.write_batch(_csv_safe(batch))
                rows += batch.num_rows
        for ext in final:
            os.replace(temp[ext], final[ext])
    finally:
        for p in temp.values():
            p.unlink(missing_ok=True)
    return rows
