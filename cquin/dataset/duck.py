"""Small helpers for DuckDB: the one SQL text literal, and queries that return one value or one row.

They fetch the whole (tiny) result, so no half-read result is left on the
connection: DuckDB refuses further work on a connection with an unfinished
result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None = None) -> Any:
    row = first_row(con, sql, params)
    return row[0] if row else None


def sql_str(text: str) -> str:
    """``text`` as an SQL string literal (single quotes doubled): the one way cquin writes a literal into SQL."""
    return "'" + text.replace("'", "''") + "'"


def relation_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether a table or view called ``name`` exists on the connection."""
    rows = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = ? UNION ALL SELECT 1 FROM duckdb_views() WHERE view_name = ?",
        [name, name],
    ).fetchall()
    return bool(rows)
