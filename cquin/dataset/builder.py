"""Build the canonical dataset from adapters' rows, accepting or rejecting every row with a reason.

Adapters stage raw text rows (from CSV files through DuckDB's reader, or from
Python through :meth:`DatasetBuilder.add_rows`); :meth:`DatasetBuilder.build`
checks them set-based, applies the data rules every adapter shares (duplicates,
conflicts, unknown patients and staff) and returns a :class:`CanonicalDataset`
whose counts balance: for each source file, rows read = accepted + rejected.
"""

from __future__ import annotations

import atexit
import csv
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cquin.dataset.checks import (
    PLAUSIBLE_FROM,
    PLAUSIBLE_TO,
    cell_ok_sql,
    column_sql,
    nhs_number_ok_sql,
    nhs_number_sql,
    sql_str,
)
from cquin.dataset.csvread import read_csv_into
from cquin.dataset.duck import scalar
from cquin.dataset.ledger import FileStats, Ledger
from cquin.dataset.tables import TABLE_NAMES, Table, table
from cquin.exceptions import DataError, UserError

META = ("_file", "_line", "_ref")
DEFAULT_MEMORY_LIMIT = "1GB"
BATCH = 50_000


@dataclass(frozen=True)
class Vocabulary:
    """What the ruleset says valid values are, for the checks at load time."""

    gpps_options: Mapping[str, tuple[str, ...]]  # field -> normalised answers
    gpps_categories: tuple[str, ...]
    pam_score_range: tuple[Decimal, Decimal] = (Decimal(0), Decimal(100))
    pam_level_range: tuple[int, int] = (1, 4)
    # Codes marking a care and support planning conversation, keyed by code system:
    # "snomed", or a local code system's URI.  Adapters for coded records (FHIR, CSDS) use them.
    conversation_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass
class CanonicalDataset:
    """Validated canonical tables in a DuckDB connection, with the ledger that accounts for every row."""

    con: duckdb.DuckDBPyConnection
    ledger: Ledger
    present: set[str] = field(default_factory=set)  # tables that had a source

    def count(self, name: str) -> int:
        return int(scalar(self.con, f"SELECT count(*) FROM {name}"))  # type: ignore[index]

    def write_csv(self, out_dir: Path) -> list[Path]:
        """Write the accepted rows as a canonical folder (the ``canonical`` adapter reads it back)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in TABLE_NAMES:
            if name not in self.present:
                continue
            t = table(name)
            path = out_dir / t.file_name
            cols = []
            for c in t.columns:
                if c.kind == "date":
                    cols.append(f"strftime({c.name}, '%Y-%m-%d') AS {c.name}")
                elif c.kind == "boolean":
                    cols.append(f"CASE WHEN {c.name} THEN 'true' WHEN NOT {c.name} THEN 'false' END AS {c.name}")
                elif c.kind == "pam_score":
                    cols.append(f"CAST(CAST({c.name} AS DOUBLE) AS VARCHAR) AS {c.name}")
                else:
                    cols.append(f"CAST({c.name} AS VARCHAR) AS {c.name}")
            rows = self.con.execute(f"SELECT {', '.join(cols)} FROM {name} ORDER BY _file, _line").fetchall()
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(t.column_names)
                for row in rows:
                    w.writerow(["" if v is None else _plain(v) for v in row])
            written.append(path)
        return written


def _plain(v: Any) -> str:
    text = str(v)
    if text.endswith(".0") and text.replace(".", "", 1).isdigit():
        return text[:-2]
    return text


class DatasetBuilder:
    """Collects raw rows from an adapter and turns them into a :class:`CanonicalDataset`."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        *,
        memory_limit: str | None = None,
        threads: int | None = None,
        on_disk: bool = False,
    ) -> None:
        self.vocabulary = vocabulary
        # DuckDB keeps to this much memory and spills the rest to a private temporary folder.
        limit = memory_limit or os.environ.get("CQUIN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
        self.spill_dir = tempfile.mkdtemp(prefix="cquin-spill-")
        atexit.register(shutil.rmtree, self.spill_dir, True)
        # Large sources are worked on in a database file in the same private folder, so every table (not
        # just an operator's overflow) lives on disk and is paged in as needed: memory stays within the limit
        # whatever the number of patients.  Smaller ones stay in memory, which is faster.
        database = os.path.join(self.spill_dir, "work.duckdb") if on_disk else ":memory:"
        try:
            self.con = duckdb.connect(
                database,
                config={"memory_limit": limit, "preserve_insertion_order": True, "temp_directory": self.spill_dir},
            )
        except duckdb.Error as exc:
            raise UserError(f"cannot start the data engine with memory limit {limit!r}: {str(exc).splitlines()[0]}") from None
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(
            "CREATE MACRO quote_text(s) AS '''' || CASE WHEN length(s) > 60 THEN left(s, 57) || '...' ELSE s END || ''''"
        )
        self.ledger = Ledger(self.con)
        self.date_styles: dict[str, str] = {}  # source file -> date style
        self.present: set[str] = set()
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._unique_refs: set[str] = set()
        for name in TABLE_NAMES:
            cols = ", ".join(f'"{c}" VARCHAR' for c in table(name).column_names)
            self.con.execute(f"CREATE TABLE raw_{name} (_file VARCHAR, _line BIGINT, _ref VARCHAR, {cols})")

    # ------------------------------------------------------------------ staging

    def add_csv(self, name: str, path: Path, *, date_style: str = "iso", source: str | None = None) -> FileStats:
        """Stage a canonical-format CSV file (header row, canonical column names) as table ``name``."""
        t = table(name)
        source = source or path.name
        stats = self.ledger.source(source, path, name)
        self.date_styles[source] = date_style
        self.present.add(name)
        read_csv_into(self.con, f"raw_{name}", t, path, source, self.ledger)
        return stats

    def add_rows(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        """Stage rows produced by an adapter: dicts of canonical column -> text, with ``_file`` and ``_line``.

        ``_file`` names the source file the row came from (registered with
        :meth:`source`), ``_line`` its line or record number there, and the
        optional ``_ref`` a resource id or other reference shown with rejections.
        Columns that are not canonical are refused, so an adapter cannot leak data.
        """
        t = table(name)
        allowed = set(t.column_names) | set(META)
        self.present.add(name)
        buf = self._buffers.setdefault(name, [])
        for row in rows:
            extra = set(row) - allowed
            if extra:
                raise ValueError(f"{name}: not canonical columns: {', '.join(sorted(extra))}")
            buf.append(dict(row))
            if len(buf) >= BATCH:
                self._flush(name)

    def source(self, name: str, path: Path | None, table_name: str | None = None, *, date_style: str = "iso") -> FileStats:
        """Register a source file so its records are counted (and hashed, when ``path`` exists)."""
        self.date_styles[name] = date_style
        return self.ledger.source(name, path, table_name)

    def accept_record(self, file: str, line: int) -> None:
        """Count a source record that was used without becoming a row of its own (e.g. merged into another)."""
        self.ledger.accept_record(file, line)

    def reject(
        self, file: str, line: int | None, column: str | None, value: str | None, reason: str, ref: str | None = None
    ) -> None:
        """Reject a source record the adapter could not turn into a canonical row."""
        self.ledger.reject(file, line, column, value, reason, ref)

    def note(self, text: str) -> None:
        self.ledger.note(text)

    def unique_refs(self, *names: str) -> None:
        """Declare that in these tables ``_ref`` names one source record (a FHIR ``Type/id``): records that share a
        ``_ref`` but stage different rows are all rejected as conflicting (identical ones are exact duplicates)."""
        self._unique_refs.update(names)

    def _flush(self, name: str) -> None:
        buf = self._buffers.get(name)
        if not buf:
            return
        t = table(name)
        cols = list(META) + t.column_names
        arrays = {}
        for c in cols:
            if c == "_line":
                arrays[c] = pa.array([r.get(c) for r in buf], pa.int64())
            else:
                arrays[c] = pa.array([None if r.get(c) is None else str(r.get(c)) for r in buf], pa.string())
        self.con.register("staged_batch", pa.table(arrays))
        self.con.execute(f"INSERT INTO raw_{name} SELECT * FROM staged_batch")
        self.con.unregister("staged_batch")
        buf.clear()

    # ------------------------------------------------------------------ building

    def build(self) -> CanonicalDataset:
        """Check every staged row, apply the shared data rules, and return the canonical dataset."""
        for name in list(self._buffers):
            self._flush(name)
        if "patients" not in self.present:
            raise DataError("no patients table: patients.csv (or the adapter's equivalent) is required")
        for name in sorted(self._unique_refs):
            self._conflicting_refs(table(name))
        for name in TABLE_NAMES:
            self._check_rows(table(name))
            # The raw text is not needed once checked: dropping it now keeps the load within memory at scale.
            self.ledger.collect(f"raw_{name}")
            self.con.execute(f"DROP TABLE raw_{name}")
        self._shared_rules()
        self.ledger.finish()
        ds = CanonicalDataset(self.con, self.ledger, set(self.present))
        for name in TABLE_NAMES:
            self.con.execute(f"DROP TABLE IF EXISTS raw_{name}")
            self.con.execute(f"DROP TABLE IF EXISTS chk_{name}")
        # Line numbers came from the order rows were read in; from here on every result is keyed and
        # explicitly ordered, so DuckDB may build tables in parallel without keeping row order.
        self.con.execute("SET preserve_insertion_order = false")
        return ds

    def _conflicting_refs(self, t: Table) -> None:
        """Reject every record of a ``_ref`` read at more than one place with different content (see :meth:`unique_refs`)."""
        c = self.con
        raw = f"raw_{t.name}"
        # Cheap aggregates find the few refs read at more than one place; only their rows are compared.
        c.execute(
            f"""CREATE OR REPLACE TABLE ref_multi AS SELECT _ref FROM {raw}
                WHERE _ref IS NOT NULL AND NOT ends_with(_ref, '/(no id)') GROUP BY _ref
                HAVING min(_file) <> max(_file) OR min(_line) <> max(_line)"""
        )
        if scalar(c, "SELECT count(*) FROM ref_multi"):
            content = "to_json(struct_pack(" + ", ".join(f'"{n}" := trim("{n}")' for n in t.column_names) + "))"
            c.execute(
                f"""CREATE OR REPLACE TABLE ref_records AS SELECT _ref, _file, _line,
                      string_agg({content}, chr(30) ORDER BY {content}) AS content
                    FROM {raw} SEMI JOIN ref_multi USING (_ref) GROUP BY _ref, _file, _line"""
            )
            c.execute(
                """CREATE OR REPLACE TABLE ref_conflicts AS SELECT _ref,
                      string_agg(_file || ' line ' || CAST(_line AS VARCHAR), ', ' ORDER BY _file, _line) AS places
                    FROM ref_records GROUP BY _ref HAVING count(DISTINCT content) > 1"""
            )
            c.execute(
                """INSERT INTO rejections SELECT r._file, r._line, r._ref, NULL, r._ref,
                      'conflicting records for ' || quote_text(r._ref) || ' (' || x.places || '): one id with different content, so none is used'
                    FROM ref_records r JOIN ref_conflicts x USING (_ref)"""
            )
            c.execute(f"DELETE FROM {raw} WHERE _ref IN (SELECT _ref FROM ref_conflicts)")
            c.execute("DROP TABLE ref_records; DROP TABLE ref_conflicts")
        c.execute("DROP TABLE ref_multi")

    def _vocab_sql(self) -> dict[str, str]:
        v = self.vocabulary
        out = {
            "pam_score_min": str(v.pam_score_range[0]),
            "pam_score_max": str(v.pam_score_range[1]),
            "pam_level_min": str(v.pam_level_range[0]),
            "pam_level_max": str(v.pam_level_range[1]),
        }
        for fld, answers in v.gpps_options.items():
            out[f"options_{fld}"] = ", ".join(sql_str(a) for a in answers) or "NULL"
        return out

    def _check_rows(self, t: Table) -> None:
        """Type-check every staged row of ``t``: good rows to table ``chk_<name>``, others to the ledger.

        A cheap validity test runs on every row; the detailed messages are
        worked out only for the rows that fail it.
        """
        vocab = self._vocab_sql()
        if not scalar(self.con, f"SELECT EXISTS (SELECT 1 FROM raw_{t.name})"):
            # Nothing staged: the typed table is created empty, without planning the checks.
            cols = ", ".join(f'"{c.name}" {column_sql(c, c.name, vocab_sql=vocab).sql_type}' for c in t.columns)
            self.con.execute(f"CREATE TABLE chk_{t.name} (_file VARCHAR, _line BIGINT, _ref VARCHAR, {cols})")
            return
        uk_files = [f for f, style in self.date_styles.items() if style == "uk"]
        in_uk = f"_file IN ({', '.join(sql_str(f) for f in uk_files)})" if uk_files else "false"
        # Three layers, so each cell is trimmed once and each date parsed once: (1) every cell trimmed, empty
        # for missing; (2) NHS numbers normalised and dates parsed; (3) typed values and the validity flag.
        trimmed = [f'coalesce(trim("{c.name}"), \'\') AS "{c.name}"' for c in t.columns]
        parsed = ["*"]
        selects, oks = [], []
        for col in t.columns:
            name = f'"{col.name}"'
            if col.kind == "date":
                # ISO: YYYY-MM-DD by shape, then a real date (the detailed pass says which it failed).
                value = (
                    f"CASE WHEN length({name}) = 10 AND substr({name}, 5, 1) = '-' AND substr({name}, 8, 1) = '-' "
                    f"THEN CAST(try_strptime({name}, '%Y-%m-%d') AS DATE) END"
                )
                if uk_files:
                    uk = column_sql(col, name, date_style="uk", vocab_sql=vocab, trimmed=True)
                    value = f"CASE WHEN {in_uk} THEN {uk.value} ELSE {value} END"
                parsed.append(f'{value} AS "_date_{col.name}"')
                value = f'"_date_{col.name}"'
                ok = cell_ok_sql(col, f"({name} <> '')", f"{value} BETWEEN DATE '{PLAUSIBLE_FROM}' AND DATE '{PLAUSIBLE_TO}'")
            elif col.kind == "nhs_number":
                # Normalised once into the middle layer, then tested by integer arithmetic.
                norm, _ = nhs_number_sql(name)
                parsed += [
                    f"CASE WHEN {name} <> '' THEN {norm} END AS \"_norm_{col.name}\"",
                    f'TRY_CAST({norm} AS BIGINT) AS "_int_{col.name}"',
                ]
                value = f'"_norm_{col.name}"'
                ok = f"coalesce(({name} <> '') AND {nhs_number_ok_sql(value, f'_int_{col.name}')}, false)"
            else:
                cell = column_sql(col, name, vocab_sql=vocab, trimmed=True)
                value, ok = cell.value, cell.ok
            selects.append(f"{value} AS {name}")
            oks.append(f"({ok})")
        errors = []
        for col in t.columns:
            raw = f'"{col.name}"'
            iso = column_sql(col, raw, vocab_sql=vocab)
            error = iso.error
            if col.kind == "date" and uk_files:
                uk = column_sql(col, raw, date_style="uk", vocab_sql=vocab)
                error = f"CASE WHEN {in_uk} THEN {uk.error} ELSE {iso.error} END"
            errors.append(
                f"CASE WHEN ({error}) IS NOT NULL THEN struct_pack(col := {sql_str(col.name)}, val := {raw}, msg := ({error})) END"
            )
        for ok_sql, err_sql in self._row_rules(t):
            oks.append(f"({ok_sql})")
            errors.append(err_sql)
        # One pass computes the typed values and the cheap validity flag ...
        self.con.execute(
            f"""CREATE TABLE chk_{t.name} AS SELECT _file, _line, _ref, {", ".join(selects)}, {" AND ".join(oks)} AS _ok, _rid
                FROM (SELECT {", ".join(parsed)} FROM
                      (SELECT rowid AS _rid, _file, _line, _ref, {", ".join(trimmed)} FROM raw_{t.name}))"""
        )
        # ... and only the failing rows get their detailed reasons, from the raw text.
        err_list = f"list_filter([{', '.join(errors)}], lambda x: x IS NOT NULL)"
        self.con.execute(
            f"""INSERT INTO rejections SELECT _file, _line, _ref, _errs[1].col, _errs[1].val,
                  coalesce(nullif(array_to_string(list_transform(_errs, lambda x: x.msg), '; '), ''), 'the row is not valid')
                FROM (SELECT _file, _line, _ref, {err_list} AS _errs FROM raw_{t.name} r
                      WHERE r.rowid IN (SELECT _rid FROM chk_{t.name} WHERE NOT _ok))"""
        )
        self.con.execute(f"DELETE FROM chk_{t.name} WHERE NOT _ok")
        self.con.execute(f"ALTER TABLE chk_{t.name} DROP COLUMN _ok")
        self.con.execute(f"ALTER TABLE chk_{t.name} DROP COLUMN _rid")

    def _row_rules(self, t: Table) -> list[tuple[str, str]]:
        """Checks across the columns of one row: (cheap ok test, detailed error) pairs."""
        rules = []
        if t.name == "assessments":
            rules.append(
                (
                    "NOT (lower(trim(instrument)) = 'pam' AND trim(coalesce(pam_score, '')) = '' AND trim(coalesce(pam_level, '')) = '')",
                    "CASE WHEN lower(trim(instrument)) = 'pam' AND trim(coalesce(pam_score, '')) = '' AND trim(coalesce(pam_level, '')) = '' "
                    "THEN struct_pack(col := 'pam_score', val := pam_score, msg := 'a PAM assessment needs pam_score or pam_level (neither given)') END",
                )
            )
            for q in ("gpps_q32", "gpps_q33"):
                rules.append(
                    (
                        f"NOT (lower(trim(instrument)) = 'gpps' AND trim(coalesce({q}, '')) = '')",
                        f"CASE WHEN lower(trim(instrument)) = 'gpps' AND trim(coalesce({q}, '')) = '' "
                        f"THEN struct_pack(col := '{q}', val := {q}, msg := 'a GPPS assessment must answer both questions ({q} is empty)') END",
                    )
                )
        if t.name == "conditions":
            cats = ", ".join(sql_str(c) for c in self.vocabulary.gpps_categories) or "NULL"
            bad = f"lower(trim(code_system)) = 'gpps' AND trim(coalesce(code, '')) <> '' AND lower(trim(code)) NOT IN ({cats})"
            rules.append(
                (
                    f"NOT coalesce({bad}, false)",
                    f"CASE WHEN {bad} THEN struct_pack(col := 'code', val := code, msg := 'gpps code ' || quote_text(trim(code)) || ' is not one of the LTC category ids') END",
                )
            )
        return rules

    def _shared_rules(self) -> None:
        """The data rules every adapter shares, then the final canonical tables."""
        c = self.con
        # Exact duplicates count once; the repeats are rejected as duplicates.  Rows are first grouped by
        # a hash of their values (one integer key: cheap), and only the few rows whose hash repeats are
        # compared in full.
        for name in TABLE_NAMES:
            cols = ", ".join(table(name).column_names)
            c.execute(f"CREATE TABLE duph AS SELECT hash({cols}) AS h FROM chk_{name} GROUP BY 1 HAVING count(*) > 1")
            if scalar(c, "SELECT count(*) FROM duph"):
                # Row ids are only stable within a transaction when the work is on disk (a checkpoint may
                # compact a table with deletions), so finding and deleting the repeats is one transaction.
                c.execute("BEGIN TRANSACTION")
                c.execute(
                    f"""CREATE TABLE dup AS SELECT r, _file, _line, _ref,
                          first_value(struct_pack(f := _file, l := _line)) OVER w AS first, row_number() OVER w AS n
                        FROM (SELECT rowid AS r, * FROM chk_{name} WHERE hash({cols}) IN (SELECT h FROM duph))
                        WINDOW w AS (PARTITION BY {cols} ORDER BY _file, _line, r)"""
                )
                c.execute(
                    "INSERT INTO rejections SELECT _file, _line, _ref, NULL, NULL, "
                    "'exact duplicate of ' || first.f || ' line ' || CAST(first.l AS VARCHAR) || ' (counted once)' FROM dup WHERE n > 1"
                )
                c.execute(f"DELETE FROM chk_{name} WHERE rowid IN (SELECT r FROM dup WHERE n > 1)")
                c.execute("DROP TABLE dup")
                c.execute("COMMIT")
            c.execute("DROP TABLE duph")
        # Patients: an episode cannot end before it starts, nor start before the patient was born.
        c.execute(
            """INSERT INTO rejections SELECT _file, _line, _ref,
                 CASE WHEN served_to < served_from THEN 'served_to' ELSE 'date_of_birth' END,
                 CAST(CASE WHEN served_to < served_from THEN served_to ELSE date_of_birth END AS VARCHAR),
                 CASE WHEN served_to < served_from
                      THEN 'the episode ends (' || CAST(served_to AS VARCHAR) || ') before it starts (' || CAST(served_from AS VARCHAR) || ')'
                      ELSE 'the date of birth (' || CAST(date_of_birth AS VARCHAR) || ') is after the episode starts (' || CAST(served_from AS VARCHAR) || ')' END
               FROM chk_patients WHERE served_to < served_from OR date_of_birth > served_from"""
        )
        c.execute("DELETE FROM chk_patients WHERE served_to < served_from OR date_of_birth > served_from")
        # Patients: rows for one NHS number that disagree on date of birth or sex are all rejected.
        c.execute(
            """CREATE TABLE conflicted AS SELECT patient_id FROM chk_patients GROUP BY patient_id
               HAVING count(DISTINCT coalesce(CAST(date_of_birth AS VARCHAR), '?')) > 1 OR count(DISTINCT coalesce(sex, '?')) > 1"""
        )
        c.execute(
            """INSERT INTO rejections SELECT p._file, p._line, p._ref, 'patient_id', p.patient_id,
                 'conflicting details for NHS number ' || p.patient_id || ': its rows disagree on date of birth or sex'
               FROM chk_patients p JOIN conflicted USING (patient_id)"""
        )
        c.execute("DELETE FROM chk_patients WHERE patient_id IN (SELECT patient_id FROM conflicted)")
        c.execute("ALTER TABLE chk_patients RENAME TO patients")
        # Staff: one staff id, one set of details.
        c.execute(
            """CREATE TABLE staff_conflicted AS SELECT staff_id FROM chk_staff GROUP BY staff_id
               HAVING count(*) > 1"""
        )
        c.execute(
            """INSERT INTO rejections SELECT s._file, s._line, s._ref, 'staff_id', s.staff_id,
                 'conflicting details for staff id ' || quote_text(s.staff_id) || ': it appears on more than one row'
               FROM chk_staff s JOIN staff_conflicted USING (staff_id)"""
        )
        c.execute("CREATE TABLE staff AS SELECT * FROM chk_staff WHERE staff_id NOT IN (SELECT staff_id FROM staff_conflicted)")
        # Rows for a patient who is not (validly) in patients.csv.
        for name in ("conditions", "assessments", "conversations", "overrides"):
            c.execute(
                f"""INSERT INTO rejections SELECT x._file, x._line, x._ref, 'patient_id', x.patient_id,
                     CASE WHEN x.patient_id IN (SELECT patient_id FROM conflicted)
                          THEN 'unknown patient ' || x.patient_id || ': their patients.csv rows were rejected as conflicting'
                          ELSE 'unknown patient ' || x.patient_id || ': not in patients.csv' END
                   FROM chk_{name} x ANTI JOIN (SELECT DISTINCT patient_id FROM patients) p USING (patient_id)"""
            )
            c.execute(f"DELETE FROM chk_{name} WHERE patient_id NOT IN (SELECT patient_id FROM patients)")
        # Rows for unknown staff: training always; conversations only when a staff list was supplied.
        staff_checks = ["training"] + (["conversations"] if "staff" in self.present else [])
        for name in staff_checks:
            c.execute(
                f"""INSERT INTO rejections SELECT x._file, x._line, x._ref, 'staff_id', x.staff_id,
                     'unknown staff member ' || quote_text(x.staff_id) || ': not in staff.csv'
                   FROM chk_{name} x WHERE x.staff_id IS NOT NULL AND x.staff_id NOT IN (SELECT staff_id FROM staff)"""
            )
            c.execute(f"DELETE FROM chk_{name} WHERE staff_id IS NOT NULL AND staff_id NOT IN (SELECT staff_id FROM staff)")
        # Assessments: same patient, respondent, instrument and day with different results: all rejected.
        c.execute(
            """CREATE TABLE clash AS SELECT patient_id, respondent, instrument, assessed_on FROM chk_assessments
               GROUP BY ALL HAVING count(*) > 1"""
        )
        c.execute(
            """INSERT INTO rejections SELECT a._file, a._line, a._ref, 'assessed_on', CAST(a.assessed_on AS VARCHAR),
                 'conflicting assessments: two ' || a.instrument || ' assessments of ' || a.patient_id || ' by the ' || a.respondent
                 || ' on ' || CAST(a.assessed_on AS VARCHAR) || ' with different results'
               FROM chk_assessments a SEMI JOIN clash USING (patient_id, respondent, instrument, assessed_on)"""
        )
        c.execute(
            """CREATE TABLE assessments AS SELECT * FROM chk_assessments
               ANTI JOIN clash USING (patient_id, respondent, instrument, assessed_on)"""
        )
        # Overrides: an include and an exclude of one patient for one cohort are both rejected.
        c.execute(
            """CREATE TABLE ov_clash AS SELECT patient_id, cohort FROM chk_overrides GROUP BY ALL
               HAVING count(DISTINCT action) > 1"""
        )
        c.execute(
            """INSERT INTO rejections SELECT o._file, o._line, o._ref, 'action', o.action,
                 'conflicting overrides: ' || o.patient_id || ' is both included in and excluded from the ' || o.cohort || ' cohort'
               FROM chk_overrides o SEMI JOIN ov_clash USING (patient_id, cohort)"""
        )
        c.execute("CREATE TABLE overrides AS SELECT * FROM chk_overrides ANTI JOIN ov_clash USING (patient_id, cohort)")
        # Provider: exactly one row of details.
        n_provider = scalar(c, "SELECT count(*) FROM chk_provider")  # type: ignore[index]
        if n_provider > 1:
            c.execute(
                """INSERT INTO rejections SELECT _file, _line, _ref, NULL, NULL,
                     'provider.csv must have exactly one row; it has ' || (SELECT count(*) FROM chk_provider) || ' different rows'
                   FROM chk_provider"""
            )
            c.execute("DELETE FROM chk_provider")
        for name in ("conditions", "conversations", "training", "provider"):
            c.execute(f"ALTER TABLE chk_{name} RENAME TO {name}")
        for tmp in ("conflicted", "staff_conflicted", "clash", "ov_clash"):
            c.execute(f"DROP TABLE {tmp}")


def empty_date() -> dt.date | None:
    return None
