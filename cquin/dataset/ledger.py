"""The ledger: every source file's counts and every rejected row with its reason.

Counts balance by construction: a source record is read once, and is rejected
if any rejection names it, accepted otherwise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from cquin.dataset.duck import scalar, sql_str


@dataclass
class FileStats:
    """What happened to one source file."""

    name: str
    path: str | None
    table: str | None
    sha256: str | None
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    notes: list[str] = field(default_factory=list)
    delimiter: str | None = None  # the delimiter a delimited file was read with

    def as_dict(self) -> dict[str, object]:
        return {"read": self.read, "accepted": self.accepted, "rejected": self.rejected}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Ledger:
    """Source files, their counts, rejections (in DuckDB, so millions fit) and notes."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.files: dict[str, FileStats] = {}
        self.notes: list[str] = []
        self.hints: dict[str, str] = {}  # file -> what to do about its rejections, when the load could tell
        con.execute(
            "CREATE TABLE rejections (file VARCHAR, line BIGINT, ref VARCHAR, column_name VARCHAR, value VARCHAR, reason VARCHAR)"
        )
        con.execute("CREATE TABLE consumed (file VARCHAR, line BIGINT)")
        con.execute("CREATE TABLE seen (file VARCHAR, line BIGINT)")
        self._known: dict[str, int] = {}  # file -> records counted by its reader
        self._extra_rejects: list[tuple] = []
        self._consumed: list[tuple[str, int]] = []

    def source(self, name: str, path: Path | None, table: str | None) -> FileStats:
        if name not in self.files:
            sha = file_sha256(path) if path is not None and path.is_file() else None
            self.files[name] = FileStats(name, str(path) if path else None, table, sha)
        return self.files[name]

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def reject(
        self, file: str, line: int | None, column: str | None, value: str | None, reason: str, ref: str | None = None
    ) -> None:
        self._extra_rejects.append((file, line, ref, column, value, reason))
        if len(self._extra_rejects) >= 10_000:
            self._flush()

    def accept_record(self, file: str, line: int) -> None:
        self._consumed.append((file, line))
        if len(self._consumed) >= 10_000:
            self._flush()

    def flush(self) -> None:
        """Move buffered adapter-level rejections and records into their tables now (``finish`` does it too)."""
        self._flush()

    def _flush(self) -> None:
        """Move buffered adapter-level records into DuckDB through Arrow (executemany is slow there)."""
        if self._extra_rejects:
            cols = list(zip(*self._extra_rejects, strict=True))
            names = ["file", "line", "ref", "column_name", "value", "reason"]
            self.con.register(
                "reject_batch",
                pa.table({n: pa.array(cols[i], pa.int64() if n == "line" else pa.string()) for i, n in enumerate(names)}),
            )
            self.con.execute("INSERT INTO rejections SELECT * FROM reject_batch")
            self.con.unregister("reject_batch")
            self._extra_rejects.clear()
        if self._consumed:
            cols = list(zip(*self._consumed, strict=True))
            self.con.register(
                "consumed_batch", pa.table({"file": pa.array(cols[0], pa.string()), "line": pa.array(cols[1], pa.int64())})
            )
            self.con.execute("INSERT INTO consumed SELECT * FROM consumed_batch")
            self.con.unregister("consumed_batch")
            self._consumed.clear()

    def reject_counted(
        self, file: str, line: int, column: str | None, value: str | None, reason: str, ref: str | None = None
    ) -> bool:
        """Reject a record the load counted as accepted, for a rule only the evaluation can apply (an override the
        ruleset refuses); the file's counts move with it.  False, and nothing changes, if it is already rejected."""
        already = scalar(self.con, "SELECT count(*) FROM rejections WHERE file = ? AND line = ?", [file, line])
        if already:
            return False
        self.con.execute("INSERT INTO rejections VALUES (?, ?, ?, ?, ?, ?)", [file, line, ref, column, value, reason])
        stats = self.files.get(file)
        if stats is not None and stats.accepted > 0:
            stats.accepted -= 1
            stats.rejected += 1
        return True

    def records_read(self, file: str, count: int) -> None:
        """Record how many records a reader found in ``file`` (each a staged row or a rejection), so they are not recounted."""
        self._known[file] = self._known.get(file, 0) + count

    def collect(self, raw_table: str) -> None:
        """Note the records behind ``raw_table``'s rows before the table is dropped (only for files not counted at reading).

        An adapter may turn one record into several rows (a FHIR Patient into one row per episode), so such
        files are counted by their distinct (file, line) pairs.
        """
        self.con.execute(f"INSERT INTO seen SELECT DISTINCT _file, _line FROM {raw_table} WHERE NOT {self._known_sql('_file')}")

    def _known_sql(self, column: str) -> str:
        """SQL testing whether ``column`` names a file whose records its reader counted."""
        if not self._known:
            return "false"
        return f"{column} IN ({', '.join(sql_str(f) for f in self._known)})"

    def finish(self) -> None:
        """Count each file's records: every staged row and adapter-level record, once."""
        self._flush()
        self.con.execute(
            f"""CREATE TABLE records AS SELECT DISTINCT file, line FROM
                  (SELECT file, line FROM seen UNION ALL SELECT file, line FROM consumed
                   UNION ALL SELECT file, line FROM rejections WHERE NOT {self._known_sql("file")})"""
        )
        rows = self.con.execute(
            """SELECT r.file, count(*) AS read, count(*) FILTER (WHERE x.file IS NOT NULL) AS rejected
               FROM records r LEFT JOIN (SELECT DISTINCT file, line FROM rejections) x
                 ON r.file = x.file AND r.line IS NOT DISTINCT FROM x.line
               GROUP BY r.file"""
        ).fetchall()
        # Files counted by their reader: every rejected line is one of the records read.
        rows += self.con.execute(
            f"SELECT file, NULL, count(DISTINCT coalesce(line, -1)) FROM rejections WHERE {self._known_sql('file')} GROUP BY file"
        ).fetchall()
        counted = {r[0] for r in rows}
        rows += [(f, None, 0) for f in self._known if f not in counted]
        for file, read, rejected in rows:
            stats = self.files.setdefault(file, FileStats(file, None, None, None))
            read = self._known[file] if read is None else read
            stats.read, stats.rejected, stats.accepted = int(read), int(rejected), int(read) - int(rejected)
        self.con.execute("DROP TABLE records")

    def rejection_rows(self, limit: int | None = None) -> list[tuple]:
        sql = "SELECT file, line, ref, column_name, value, reason FROM rejections ORDER BY file, line"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self.con.execute(sql).fetchall()

    def rejection_count(self) -> int:
        return int(scalar(self.con, "SELECT count(*) FROM rejections"))  # type: ignore[index]

    def reasons_summary(self) -> list[tuple[str, str, int]]:
        """Rejections grouped by file and the reason's kind (its text before any value)."""
        return self.con.execute(
            """SELECT file, regexp_replace(reason, '''[^'']*''|[0-9]{10}', '…', 'g') AS kind, count(*)
               FROM rejections GROUP BY ALL ORDER BY file, 3 DESC"""
        ).fetchall()
