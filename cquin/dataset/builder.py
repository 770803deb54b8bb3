"""Build the canonical dataset from adapters' rows, accepting or rejecting every row with a reason.

Adapters stage raw text rows (from CSV files through DuckDB's reader, or from
Python through :meth:`DatasetBuilder.add_rows`); :meth:`DatasetBuilder.build`
checks them set-based, applies the data rules every adapter shares (duplicates,
conflicts, unknown patients and staff) and returns a :class:`CanonicalDataset`
whose counts balance: for each source file, rows read = accepted + rejected.

Long because the checks across rows (duplicates, conflicts, unknown patients and staff, care-plan entries) are all the builder's one job; the per-cell checks are in checks.py.
"""

from __future__ import annotations

import atexit
import csv
import datetime as dt
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from cquin import signals, workspace
from cquin.dataset.checks import (
    PLAUSIBLE_FROM,
    PLAUSIBLE_TO,
    answer_sql,
    cell_ok_sql,
    column_sql,
    fast_trim_sql,
    midnight_sql,
    nhs_number_ok_sql,
    nhs_number_sql,
    trim_sql,
)
from cquin.dataset.csvread import CsvFormat, check_canonical_header, read_csv_into
from cquin.dataset.duck import scalar, sql_str
from cquin.dataset.ledger import FileStats, Ledger
from cquin.dataset.tables import TABLE_NAMES, Column, Table, table
from cquin.dataset.xlsxread import Sheet, column_letter, is_workbook, pick_sheet, stage_sheet
from cquin.exceptions import DataError, UserError
from cquin.faults import reraise_fault
from cquin.privacy import make_private_dir, open_private

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
    # Agreed care plans as evidence of a conversation (the ruleset's conversation_codes.care_plans):
    # FHIR CarePlan category codes by code system, and the CSDS care plan types that count (empty: all).
    care_plan_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    csds_care_plan_types: frozenset[str] = frozenset()
    # A condition resolved before this date does not identify an LTC (ltc.resolved_conditions), unless its
    # code is in one of the excepted categories' code lists (normalised codes by system; ICD-10 are prefixes).
    resolved_before: dt.date | None = None
    resolved_exempt_codes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # What care plans may record (the ruleset's care_planning): category ids for needs, goals, actions and
    # referrals, and the conversation elements; coded records (FHIR, CSDS) name a category by a code of
    # care_plan_category_system (code = category id; an element: care_plan_element_system), or by a code of
    # care_planning's code lists: system -> code -> (entry kind, category or element id).
    care_plan_categories: tuple[str, ...] = ()
    care_plan_elements: tuple[str, ...] = ()
    care_plan_category_system: str = ""
    care_plan_element_system: str = ""
    care_plan_category_codes: Mapping[str, Mapping[str, tuple[str, str]]] = field(default_factory=dict)

    def resolved_exempt(self, system: str, code: str) -> bool:
        """Whether a condition code counts whatever its clinical status (e.g. a cancer)."""
        codes = self.resolved_exempt_codes.get(system)
        if not codes:
            return False
        if system == "icd10":
            norm = code.strip().upper().replace(".", "")
            return any(norm[:n] in codes for n in range(3, len(norm) + 1))
        return code.strip() in codes


@dataclass
class CanonicalDataset:
    """Validated canonical tables in a DuckDB connection, with the ledger that accounts for every row."""

    con: duckdb.DuckDBPyConnection
    ledger: Ledger
    present: set[str] = field(default_factory=set)  # tables that had a source
    # Set when patients are keyed by a pseudonymous id (e.g. CSDS PERSON ID) instead of the NHS number:
    # the statement every output shows.
    pseudonymous: str | None = None

    def count(self, name: str) -> int:
        return int(scalar(self.con, f"SELECT count(*) FROM {name}"))  # type: ignore[index]

    def write_csv(self, out_dir: Path, cell: Callable[[str], str] = str) -> list[Path]:
        """Write the accepted rows as a canonical folder (the ``canonical`` adapter reads it back).

        Every table that had a source is written, even with no accepted rows (its header alone); files are
        owner-only (they hold NHS numbers). ``cell`` renders each non-empty value (e.g. formula-safe).
        """
        make_private_dir(out_dir)
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
            with open_private(path) as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(t.column_names)
                for row in rows:
                    w.writerow(["" if v is None else cell(_plain(v)) for v in row])
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
        # DuckDB keeps to this much memory and spills the rest to a private folder in cquin's workspace,
        # which is removed at exit, on an error or a signal, and swept by the next cquin after a kill.
        limit = memory_limit or os.environ.get("CQUIN_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
        self.spill_dir = str(workspace.new_dir("engine-"))
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
            reraise_fault(exc, "the data engine's temporary work files (starting)")
            raise UserError(f"cannot start the data engine with memory limit {limit!r}: {str(exc).splitlines()[0]}") from None
        signals.watch_engine(self.con)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(
            "CREATE MACRO quote_text(s) AS '''' || CASE WHEN length(s) > 60 THEN left(s, 57) || '...' ELSE s END || ''''"
        )
        self.ledger = Ledger(self.con)
        self.date_styles: dict[str, str] = {}  # source file -> date style
        self.pseudonymous: str | None = None
        self.cell_columns: dict[str, dict[str, str]] = {}  # worksheet source -> canonical column -> column letter
        # What to tell a user whose ISO-dated file holds DD/MM/YYYY dates (an adapter with its own way may change it).
        self.uk_dates_fix = "rerun with --option dates=uk"
        self.present: set[str] = set()
        self._buffers: dict[str, list[dict[str, Any]]] = {}
        self._unique_refs: set[str] = set()
        for name in TABLE_NAMES:
            cols = ", ".join(f'"{c}" VARCHAR' for c in table(name).column_names)
            self.con.execute(f"CREATE TABLE raw_{name} (_file VARCHAR, _line BIGINT, _ref VARCHAR, {cols})")

    # ------------------------------------------------------------------ staging

    def add_csv(
        self,
        name: str,
        path: Path,
        *,
        date_style: str = "iso",
        source: str | None = None,
        delimiter: str | None = None,
    ) -> FileStats:
        """Stage a canonical-format CSV file (header row, canonical column names) as table ``name``.

        ``delimiter`` None finds comma, semicolon, tab or pipe from the header row (and notes any but comma).
        """
        if is_workbook(path):
            return self.add_xlsx(name, path, date_style=date_style)
        t = table(name)
        source = source or path.name
        stats = self.ledger.source(source, path, name)
        self.date_styles[source] = date_style
        self.present.add(name)
        stats.delimiter = read_csv_into(self.con, f"raw_{name}", t, path, source, self.ledger, CsvFormat(delimiter=delimiter))
        return stats

    def add_xlsx(self, name: str, path: Path, sheet: str | None = None, *, date_style: str = "iso") -> FileStats:
        """Stage one worksheet (header row, canonical column names) of an Excel workbook as table ``name``.

        With no ``sheet``, the workbook's only sheet with data, or the one named after the table.  The source
        is named ``book.xlsx!Sheet``; each rejection's reference is its cell (``staff.xlsx!Staff!C14``).
        """
        t = table(name)
        sheet = sheet or pick_sheet(path, name)
        source = f"{path.name}!{sheet}"
        ws = Sheet(path, sheet)
        header = ws.header()
        check_canonical_header(source, header, t, self.ledger)
        stats = self.ledger.source(source, path, name)
        self.date_styles[source] = date_style
        self.present.add(name)
        kinds = {c.name: c.kind for c in t.columns}
        stage_sheet(self.con, f"raw_{name}", t.column_names, kinds, ws, header, source, self.ledger)
        self.cell_columns[source] = {c: column_letter(header.index(c)) for c in t.column_names if c in header}
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

    def use_pseudonymous_ids(self, statement: str) -> None:
        """Key patients by a pseudonymous id rather than the NHS number (no Modulus 11 check on patient_id).

        ``statement`` says what the ids are (e.g. "CSDS PERSON ID from an NCDR extract"); every output
        of a run on this dataset shows it.
        """
        self.pseudonymous = statement

    def _id_column(self, col: Column) -> Column:
        """With pseudonymous ids, an NHS-number column is checked as text (present when required)."""
        if self.pseudonymous and col.kind == "nhs_number":
            return Column(col.name, "text", col.required, col.values, col.description)
        return col

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
        self.con.execute("CREATE TABLE rejected_patient_rows (patient_id VARCHAR, _file VARCHAR, _line BIGINT)")
        for name in TABLE_NAMES:
            self._check_rows(table(name))
            # The raw text is not needed once checked: dropping it now keeps the load within memory at scale.
            self.ledger.collect(f"raw_{name}")
            self.con.execute(f"DROP TABLE raw_{name}")
        self.ledger.flush()  # adapter-level rejections join the table before the hints and cell references read it
        self._date_style_hints()
        self._shared_rules()
        self._cell_references()
        self.ledger.finish()
        ds = CanonicalDataset(self.con, self.ledger, set(self.present), self.pseudonymous)
        for name in TABLE_NAMES:
            self.con.execute(f"DROP TABLE IF EXISTS raw_{name}")
            self.con.execute(f"DROP TABLE IF EXISTS chk_{name}")
        # Line numbers came from the order rows were read in; from here on every result is keyed and
        # explicitly ordered, so DuckDB may build tables in parallel without keeping row order.
        self.con.execute("SET preserve_insertion_order = false")
        return ds

    def _cell_references(self) -> None:
        """Give each rejection from a worksheet its cell (``staff.xlsx!Staff!C14``), or its row (``...!14:14``)."""
        if not self.cell_columns:
            return
        rows = [(src, col, letter) for src, cols in self.cell_columns.items() for col, letter in cols.items()]
        self.con.register(
            "cell_letters",
            pa.table({k: pa.array([r[i] for r in rows], pa.string()) for i, k in enumerate(("file", "col", "letter"))}),
        )
        try:
            sources = ", ".join(sql_str(s) for s in self.cell_columns)
            self.con.execute(
                f"""UPDATE rejections SET ref = rejections.file || '!' || coalesce(
                      (SELECT letter FROM cell_letters m WHERE m.file = rejections.file AND m.col = rejections.column_name)
                        || CAST(line AS VARCHAR),
                      CAST(line AS VARCHAR) || ':' || CAST(line AS VARCHAR))
                    WHERE ref IS NULL AND line IS NOT NULL AND file IN ({sources})"""
            )
        finally:
            self.con.unregister("cell_letters")

    def _date_style_hints(self) -> None:
        """Say so when a file read as ISO lost most of its rejected rows to dates that are plainly DD/MM/YYYY."""
        iso = [f for f, style in self.date_styles.items() if style == "iso"]
        if not iso:
            return
        uk_date = f"try_strptime({midnight_sql('trim(value)')}, '%d/%m/%Y') IS NOT NULL"
        rows = self.con.execute(
            f"""SELECT file, count(*) FILTER (WHERE reason LIKE '%is not a date (expected YYYY-MM-DD)%' AND {uk_date}) AS uk,
                       count(*) AS n
                FROM rejections WHERE file IN ({", ".join(sql_str(f) for f in iso)}) GROUP BY file"""
        ).fetchall()
        for file, uk, n in rows:
            if uk and uk * 2 >= n:
                hint = f"{uk:,} rejected rows have dates written DD/MM/YYYY, not YYYY-MM-DD: {self.uk_dates_fix}"
                self.ledger.hints[file] = hint
                self.ledger.note(f"{file}: {hint}")

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
            content = (
                "to_json(struct_pack(" + ", ".join(f'"{n}" := {trim_sql(chr(34) + n + chr(34))}' for n in t.column_names) + "))"
            )
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
        out["care_plan_categories"] = ", ".join(sql_str(c) for c in v.care_plan_categories) or "NULL"
        out["care_plan_elements"] = ", ".join(sql_str(c) for c in v.care_plan_elements) or "NULL"
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
        columns = [self._id_column(c) for c in t.columns]
        # Each layer names the one before's columns, so every expression is written once (a cell expression
        # repeated inside another makes the statement, and DuckDB's planning of it, grow with each layer).
        trimmed = [f"coalesce({fast_trim_sql(chr(34) + c.name + chr(34))}, '') AS \"{c.name}\"" for c in columns]
        # A date-time at midnight (what Excel writes for a date) is its date.
        dates = [f'{midnight_sql(chr(34) + c.name + chr(34))} AS "{c.name}"' for c in columns if c.kind == "date"]
        midnight = f"* REPLACE ({', '.join(dates)})" if dates else "*"
        parsed = ["*"]
        selects, oks = [], []
        for col in columns:
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
                norm, _ = nhs_number_sql(name, trimmed=True)
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
        for col in columns:
            raw = f'"{col.name}"'
            iso = column_sql(col, raw, vocab_sql=vocab)
            error = iso.error
            if col.kind == "date" and uk_files:
                uk = column_sql(col, raw, date_style="uk", vocab_sql=vocab)
                error = f"CASE WHEN {in_uk} THEN {uk.error} ELSE {iso.error} END"
            errors.append(
                f"CASE WHEN ({error}) IS NOT NULL THEN struct_pack(col := {sql_str(col.name)}, val := {raw}, msg := ({error})) END"
            )
        # The cheap tests see the trimmed cells; the detailed messages are worked out from the raw text.
        oks += [f"({ok_sql})" for ok_sql, _ in self._row_rules(t, trimmed=True)]
        errors += [err_sql for _, err_sql in self._row_rules(t, trimmed=False)]
        # One pass computes the typed values and the cheap validity flag ...
        self.con.execute(
            f"""CREATE TABLE chk_{t.name} AS SELECT _file, _line, _ref, {", ".join(selects)}, {" AND ".join(oks)} AS _ok, _rid
                FROM (SELECT {", ".join(parsed)} FROM (SELECT {midnight} FROM
                      (SELECT rowid AS _rid, _file, _line, _ref, {", ".join(trimmed)} FROM raw_{t.name})))"""
        )
        # ... and only the failing rows get their detailed reasons, from the raw text (the statement is large:
        # with no failing row it is not even planned).
        err_list = f"list_filter([{', '.join(errors)}], lambda x: x IS NOT NULL)"
        failing = scalar(self.con, f"SELECT EXISTS (SELECT 1 FROM chk_{t.name} WHERE NOT _ok)")
        if failing:
            self.con.execute(f"""INSERT INTO rejections SELECT _file, _line, _ref, _errs[1].col, _errs[1].val,
                      coalesce(nullif(array_to_string(list_transform(_errs, lambda x: x.msg), '; '), ''), 'the row is not valid')
                    FROM (SELECT _file, _line, _ref, {err_list} AS _errs FROM raw_{t.name} r
                          WHERE r.rowid IN (SELECT _rid FROM chk_{t.name} WHERE NOT _ok))""")
        if t.name == "patients":
            # Whose rows were rejected, so their other records can name the row that failed (not just "unknown").
            self.con.execute(
                "INSERT INTO rejected_patient_rows SELECT patient_id, _file, _line FROM chk_patients "
                "WHERE NOT _ok AND patient_id IS NOT NULL"
            )
        self.con.execute(f"DELETE FROM chk_{t.name} WHERE NOT _ok")
        self.con.execute(f"ALTER TABLE chk_{t.name} DROP COLUMN _ok")
        self.con.execute(f"ALTER TABLE chk_{t.name} DROP COLUMN _rid")

    def _row_rules(self, t: Table, *, trimmed: bool = False) -> list[tuple[str, str]]:
        """Checks across the columns of one row: (cheap ok test, detailed error) pairs.

        ``trimmed``: the columns already hold trimmed text (the cheap pass), so they are not trimmed again.
        """
        rules = []

        def cell(name: str) -> str:  # trimmed text, empty for missing
            return f"coalesce({name}, '')" if trimmed else trim_sql(f"coalesce({name}, '')")

        if t.name == "assessments":
            pam = f"lower({cell('instrument')}) = 'pam' AND {cell('pam_score')} = '' AND {cell('pam_level')} = ''"
            rules.append(
                (
                    f"NOT ({pam})",
                    f"CASE WHEN {pam} THEN struct_pack(col := 'pam_score', val := pam_score, "
                    "msg := 'a PAM assessment needs pam_score or pam_level (neither given)') END",
                )
            )
            for q in ("gpps_q32", "gpps_q33"):
                gpps = f"lower({cell('instrument')}) = 'gpps' AND {cell(q)} = ''"
                rules.append(
                    (
                        f"NOT ({gpps})",
                        f"CASE WHEN {gpps} THEN struct_pack(col := '{q}', val := {q}, "
                        f"msg := 'a GPPS assessment must answer both questions ({q} is empty)') END",
                    )
                )
        if t.name == "care_plans":
            # A need, goal, action or referral names a category; an element names a conversation element.
            vocab = self._vocab_sql()
            cat, entry = f"lower({cell('category')})", f"lower({cell('entry')})"
            kinds = ", ".join(sql_str(v) for c in t.columns if c.name == "entry" for v in c.values)  # the schema's enum
            bad = (
                f"{cat} <> '' AND {entry} IN ({kinds}) AND NOT CASE WHEN {entry} = 'element' "
                f"THEN coalesce({cat} IN ({vocab['care_plan_elements']}), false) "
                f"ELSE coalesce({cat} IN ({vocab['care_plan_categories']}), false) END"
            )
            rules.append(
                (
                    f"NOT ({bad})",
                    f"CASE WHEN {bad} THEN struct_pack(col := 'category', val := category, msg := "
                    f"CASE WHEN {entry} = 'element' THEN quote_text({cell('category')}) || ' is not one of the ruleset''s "
                    f"conversation elements (care_planning.conversation_elements: ' || {sql_str(', '.join(self.vocabulary.care_plan_elements) or 'none')} || ')' "
                    f"ELSE quote_text({cell('category')}) || ' is not one of the ruleset''s care plan categories "
                    f"(care_planning.categories: ' || {sql_str(', '.join(self.vocabulary.care_plan_categories) or 'none')} || ')' END) END",
                )
            )
        if t.name == "conditions":
            cats = ", ".join(sql_str(c) for c in self.vocabulary.gpps_categories) or "NULL"
            bad = f"lower({cell('code_system')}) = 'gpps' AND {cell('code')} <> '' AND lower({cell('code')}) NOT IN ({cats})"
            rules.append(
                (
                    f"NOT coalesce({bad}, false)",
                    f"CASE WHEN {bad} THEN struct_pack(col := 'code', val := code, msg := 'gpps code ' || quote_text({cell('code')}) || ' is not one of the LTC category ids') END",
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
        c.execute(
            """INSERT INTO rejected_patient_rows SELECT patient_id, _file, _line FROM chk_patients
               WHERE served_to < served_from OR date_of_birth > served_from"""
        )
        c.execute("DELETE FROM chk_patients WHERE served_to < served_from OR date_of_birth > served_from")
        # Patients: rows for one NHS number that disagree on date of birth or sex are all rejected.
        c.execute(
            # More than one distinct value is a least and a greatest that differ (cheaper than counting them).
            """CREATE TABLE conflicted AS SELECT patient_id FROM chk_patients GROUP BY patient_id
               HAVING min(coalesce(CAST(date_of_birth AS VARCHAR), '?')) <> max(coalesce(CAST(date_of_birth AS VARCHAR), '?'))
                   OR min(coalesce(sex, '?')) <> max(coalesce(sex, '?'))"""
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
        # Rows for a patient who is not (validly) in patients.csv; when their patients row was rejected, the
        # reason names that row and why (the first, by file and line), so the one fix needed is plain.
        c.execute(
            """CREATE TABLE patient_row_failed AS SELECT patient_id,
                 arg_min(r._file || ' line ' || CAST(r._line AS VARCHAR) || ': ' || coalesce(x.reason, 'rejected'),
                         struct_pack(f := r._file, l := r._line)) AS first_failed, count(*) AS n
               FROM rejected_patient_rows r
               LEFT JOIN (SELECT file, line, min(reason) AS reason FROM rejections GROUP BY ALL) x
                 ON x.file = r._file AND x.line = r._line
               WHERE patient_id NOT IN (SELECT patient_id FROM patients)
               GROUP BY patient_id"""
        )
        for name in ("conditions", "assessments", "conversations", "care_plans", "overrides"):
            c.execute(
                f"""INSERT INTO rejections SELECT x._file, x._line, x._ref, 'patient_id', x.patient_id,
                     CASE WHEN x.patient_id IN (SELECT patient_id FROM conflicted)
                          THEN 'unknown patient ' || x.patient_id || ': their patients.csv rows were rejected as conflicting'
                          WHEN f.patient_id IS NOT NULL
                          THEN 'unknown patient ' || x.patient_id || ': their patients row was rejected (' || f.first_failed
                               || CASE WHEN f.n > 1 THEN '; and ' || CAST(f.n - 1 AS VARCHAR) || ' more' ELSE '' END || ')'
                          ELSE 'unknown patient ' || x.patient_id || ': not in patients.csv' END
                   FROM chk_{name} x ANTI JOIN (SELECT DISTINCT patient_id FROM patients) p USING (patient_id)
                   LEFT JOIN patient_row_failed f USING (patient_id)"""
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
        # Assessments: same patient, respondent, instrument and day.  Compared by result (the ruleset's reading):
        # the PAM level and score as numbers, the GPPS answers as matched (case and white space ignored).  The
        # same result recorded twice counts once (the repeats are rejected, naming the first); different
        # results are a conflict and all are rejected.
        # The result as JSON text, so "one distinct result" is a least and a greatest that are equal.
        result = f"CAST(to_json([CAST(pam_level AS VARCHAR), CAST(pam_score AS VARCHAR), {answer_sql('gpps_q32')}, {answer_sql('gpps_q33')}]) AS VARCHAR)"
        c.execute(
            f"""CREATE TABLE same_day AS SELECT patient_id, respondent, instrument, assessed_on FROM chk_assessments
               GROUP BY ALL HAVING count(*) > 1 AND min({result}) = max({result})"""
        )
        c.execute(
            """CREATE TABLE same_result AS SELECT _file, _line, _ref,
                 first_value(struct_pack(f := _file, l := _line)) OVER w AS first, row_number() OVER w AS n
               FROM chk_assessments SEMI JOIN same_day USING (patient_id, respondent, instrument, assessed_on)
               WINDOW w AS (PARTITION BY patient_id, respondent, instrument, assessed_on ORDER BY _file, _line)"""
        )
        c.execute(
            """INSERT INTO rejections SELECT _file, _line, _ref, NULL, NULL,
                 'the same assessment as ' || first.f || ' line ' || CAST(first.l AS VARCHAR)
                 || ' (the same result on the same day, written differently; counted once)'
               FROM same_result WHERE n > 1"""
        )
        c.execute(
            """DELETE FROM chk_assessments WHERE EXISTS (SELECT 1 FROM same_result r
                 WHERE r.n > 1 AND r._file = chk_assessments._file AND r._line = chk_assessments._line)"""
        )
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
        # Overrides: two agreed overrides of the same action for one patient and cohort count the patient once (the
        # indicator counts "Number of patients"): the earliest agreed (then the first by file and line) is used and
        # the others are rejected as repeats.
        c.execute(
            """CREATE TABLE ov_repeat AS SELECT _file, _line, _ref, patient_id, cohort, action,
                 first_value(struct_pack(f := _file, l := _line)) OVER w AS first, row_number() OVER w AS n
               FROM chk_overrides ANTI JOIN ov_clash USING (patient_id, cohort)
               WINDOW w AS (PARTITION BY patient_id, cohort, action ORDER BY agreed_on NULLS FIRST, _file, _line)"""
        )
        c.execute(
            """INSERT INTO rejections SELECT _file, _line, _ref, 'action', action,
                 'repeated override: ' || patient_id || ' is already '
                 || CASE action WHEN 'include' THEN 'included in' ELSE 'excluded from' END || ' the ' || cohort
                 || ' cohort by ' || first.f || ' line ' || CAST(first.l AS VARCHAR) || ' (a patient is counted once)'
               FROM ov_repeat WHERE n > 1"""
        )
        c.execute(
            """CREATE TABLE overrides AS SELECT * FROM chk_overrides ANTI JOIN ov_clash USING (patient_id, cohort)
               WHERE NOT EXISTS (SELECT 1 FROM ov_repeat r
                 WHERE r.n > 1 AND r._file = chk_overrides._file AND r._line = chk_overrides._line)"""
        )
        # Provider: exactly one row of details.
        n_provider = scalar(c, "SELECT count(*) FROM chk_provider")  # type: ignore[index]
        if n_provider > 1:
            c.execute(
                """INSERT INTO rejections SELECT _file, _line, _ref, NULL, NULL,
                     'provider.csv must have exactly one row; it has ' || (SELECT count(*) FROM chk_provider) || ' different rows'
                   FROM chk_provider"""
            )
            c.execute("DELETE FROM chk_provider")
        for name in ("conditions", "conversations", "care_plans", "training", "provider"):
            c.execute(f"ALTER TABLE chk_{name} RENAME TO {name}")
        for tmp in (
            "conflicted",
            "staff_conflicted",
            "clash",
            "ov_clash",
            "ov_repeat",
            "same_day",
            "same_result",
            "rejected_patient_rows",
            "patient_row_failed",
        ):
            c.execute(f"DROP TABLE {tmp}")
