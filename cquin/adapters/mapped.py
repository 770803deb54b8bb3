"""The mapped adapter: any export of one delimited file (or worksheet) per table, read as a mapping YAML says.

The mapping (:mod:`cquin.mapping`) names each table's file, how it is written and where each canonical column
comes from; this adapter stages each file exactly as the canonical reader does (every record a staged row or a
rejection with its line), applies the mapping in SQL (renames, constants, value maps, date formats, the local
patient id looked up to its NHS number) and hands the canonical rows to the builder, which checks them as it
checks any adapter's rows.  Rows the mapping skips are accounted for as ``ignored:`` with the mapping's reason.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from pathlib import Path

from cquin.adapters.base import Adapter, AdapterOption
from cquin.dataset import TABLE_NAMES, DatasetBuilder, table
from cquin.dataset.checks import midnight_sql
from cquin.dataset.csvread import CsvFormat, open_delimited, stage_delimited
from cquin.dataset.duck import sql_str
from cquin.dataset.ledger import file_sha256
from cquin.dataset.xlsxread import Sheet, column_letter, is_workbook, pick_sheet, stage_sheet
from cquin.exceptions import ConfigError, DataError
from cquin.hookspecs import hookimpl
from cquin.mapping import MAPPING_FILE, ColumnSource, Mapping, TableMapping, load_mapping


def _find(folder: Path, name: str) -> Path | None:
    wanted = name.lower()
    for p in folder.iterdir():
        if p.is_file() and p.name.lower() == wanted:
            return p
    return None


def _date_sql(expr: str, formats: tuple[str, ...]) -> str:
    """``expr`` as ISO text when it matches one of ``formats`` (a time kept unless it is midnight); else unchanged."""
    text = midnight_sql(f"trim({expr})")
    tries = []
    for fmt in formats:
        ts = f"try_strptime({text}, {sql_str(fmt)})"
        tries.append(
            f"CASE WHEN {ts} IS NOT NULL THEN CASE WHEN CAST({ts} AS TIME) = TIME '00:00:00' "
            f"THEN strftime({ts}, '%Y-%m-%d') ELSE strftime({ts}, '%Y-%m-%d %H:%M:%S') END END"
        )
    return f"coalesce({', '.join(tries)}, {expr})"


class MappedAdapter(Adapter):
    name = "mapped"
    description = (
        "Any export of one delimited file or worksheet per table, read as a mapping YAML says "
        f"(--mapping FILE, or {MAPPING_FILE} in the export folder); `cquin mapping draft` proposes one"
    )
    tables = TABLE_NAMES
    options = (AdapterOption("mapping", f"The mapping YAML file (default: {MAPPING_FILE} in the export folder)", None),)

    def detect(self, path: Path) -> bool:
        return path.is_dir() and (path / MAPPING_FILE).is_file()

    def load(self, path: Path, builder: DatasetBuilder, options: MappingABC[str, str]) -> None:
        if not path.is_dir():
            raise DataError(f"{path}: the mapped adapter reads an export folder, and this is not a folder")
        given = options.get("mapping")
        mapping_path = Path(given) if given else path / MAPPING_FILE
        if not given and not mapping_path.is_file():
            raise ConfigError(f"{path}: no mapping given; pass --mapping FILE (or put {MAPPING_FILE} in the folder)")
        mapping = load_mapping(mapping_path)
        builder.uk_dates_fix = f"add DD/MM/YYYY to date_formats in the mapping {mapping_path.name}"
        # The mapping decides what every row means, so the run's notes keep which one, by its hash.
        builder.note(f"read with the mapping {mapping_path.name} ({mapping.name}; sha256 {file_sha256(mapping_path)})")
        staged: list[str] = []
        shared = {t.file.lower() for t in mapping.tables.values()}
        counts = {f: sum(t.file.lower() == f for t in mapping.tables.values()) for f in shared}
        try:
            for name in TABLE_NAMES:
                tm = mapping.tables.get(name)
                if tm is None:
                    builder.note(f"{name}: not in the mapping, so there are no {name} records")
                    continue
                file = _find(path, tm.file)
                if file is None:
                    if name == "patients":
                        raise DataError(
                            f"{path}: {tm.file} is missing (the mapping {tm.where} names it for patients, which is required)"
                        )
                    builder.note(f"{tm.file}: not supplied, so there are no {name} records")
                    continue
                # A file read as two tables (an observations file giving conditions and assessments) is two sources,
                # each accounted for on its own: every record is accepted or ignored once per table.
                staged.append(self._stage(builder, file, tm, mapping, counts[tm.file.lower()] > 1))
        finally:
            for name in staged:
                builder.con.execute(f"DROP TABLE IF EXISTS {name}")
            builder.con.execute("DROP TABLE IF EXISTS patient_keys")

    def _stage(self, builder: DatasetBuilder, file: Path, tm: TableMapping, mapping: Mapping, shared: bool = False) -> str:
        """Stage ``file`` raw into ``src_<table>``, then its mapped rows into the builder; returns the staging table."""
        con, ledger = builder.con, builder.ledger
        t = table(tm.name)
        rules = {r.column for r in (*tm.skip_rows, *tm.keep_rows)}
        wanted = sorted({c for src in tm.columns.values() for c in src.source_columns} | rules)
        if tm.name == "patients" and mapping.patient_key:
            wanted = sorted({*wanted, mapping.patient_key})
        if is_workbook(file):
            sheet = tm.sheet or pick_sheet(file, tm.name)
            ws = Sheet(file, sheet)
            header = ws.header(tm.skip_lines)
            source = f"{file.name}!{sheet}"
        else:
            fmt = CsvFormat(tm.delimiter, tm.encoding, tm.skip_lines)
            header, delimiter = open_delimited(file, fmt, wanted, ledger)
            source = file.name
        if shared:
            source = f"{source} (as {tm.name})"
        optional = {c for s in tm.columns.values() if s.optional for c in s.source_columns}
        missing = [c for c in wanted if c not in header and c not in optional]
        if missing:
            where = next((s.where for s in tm.columns.values() if set(s.source_columns) & set(missing)), tm.where)
            raise ConfigError(
                f"{where}: the mapping names column(s) {', '.join(repr(m) for m in missing)}, which {source} does not have "
                f"(its header: {', '.join(h or '(blank)' for h in header)})"
            )
        builder.source(source, file, tm.name)
        builder.present.add(tm.name)
        raw = f"src_{tm.name}"
        cols = ", ".join(f"s{i} VARCHAR" for i in range(len(header)))
        con.execute(f"CREATE OR REPLACE TABLE {raw} (_file VARCHAR, _line BIGINT, _ref VARCHAR, {cols})")
        if is_workbook(file):
            kinds = {src.column: t_col.kind for t_col in t.columns if (src := tm.columns.get(t_col.name)) and src.column}
            stage_sheet(con, raw, header, kinds, ws, header, source, ledger, tm.skip_lines)
            # A rejection names a canonical column (or, for a skipped row, the source column): both lead to a cell.
            letters = {h: column_letter(i) for i, h in enumerate(header) if h}
            letters.update(
                {
                    c: letters[s.source_columns[0]]
                    for c, s in tm.columns.items()
                    if s.source_columns and s.source_columns[0] in letters
                }
            )
            builder.cell_columns[source] = letters
        else:
            stage_delimited(con, raw, header, file, header, source, ledger, delimiter, fmt)
        ref = {h: f"s{i}" for i, h in enumerate(header)}
        src_sql = sql_str(source)
        for rule, keep in [(r, False) for r in tm.skip_rows] + [(r, True) for r in tm.keep_rows]:
            col = ref[rule.column]
            values = ", ".join(sql_str(v) for v in rule.values)
            hit = f"{'NOT ' if keep else ''}(lower(trim(coalesce({col}, ''))) IN ({values}))"
            con.execute(
                f"INSERT INTO rejections SELECT _file, _line, NULL, {sql_str(rule.column)}, {col}, "
                f"{sql_str('ignored: ' + rule.reason)} FROM {raw} WHERE {hit}"
            )
            con.execute(f"DELETE FROM {raw} WHERE {hit}")
        pid = tm.columns.get("patient_id")
        if tm.name == "patients" and mapping.patient_key:
            self._patient_keys(builder, raw, ref[mapping.patient_key], ref[pid.column] if pid and pid.column else "NULL")
        if pid is not None and pid.patient_key:
            key = f"lower(trim({ref[pid.patient_key]}))"
            patients_file = mapping.tables["patients"].file
            con.execute(
                f"""INSERT INTO rejections SELECT _file, _line, NULL, {sql_str(pid.patient_key)}, {ref[pid.patient_key]},
                      CASE WHEN trim(coalesce({ref[pid.patient_key]}, '')) = '' THEN {sql_str(pid.patient_key + " is missing (required: it names the patient)")}
                           WHEN {key} IN (SELECT k FROM patient_keys WHERE n > 1)
                           THEN 'local patient id ' || quote_text(trim({ref[pid.patient_key]})) || {sql_str(" has more than one NHS number in " + patients_file)}
                           ELSE 'unknown local patient id ' || quote_text(trim({ref[pid.patient_key]})) || {sql_str(": not in " + patients_file)} END
                    FROM {raw} WHERE {key} IS NULL OR {key} NOT IN (SELECT k FROM patient_keys WHERE n = 1)"""
            )
            con.execute(f"DELETE FROM {raw} WHERE {key} IS NULL OR {key} NOT IN (SELECT k FROM patient_keys WHERE n = 1)")
        selects = [self._value_sql(col.name, col.kind, tm.columns.get(col.name), ref, tm) for col in t.columns]
        con.execute(
            f"INSERT INTO raw_{tm.name} SELECT _file, _line, _ref, {', '.join(selects)} FROM {raw} WHERE _file = {src_sql}"
        )
        return raw

    def _patient_keys(self, builder: DatasetBuilder, raw: str, key_col: str, nhs_col: str) -> None:
        """The local patient id -> NHS number table other files are linked through (a key with two numbers is unusable)."""
        builder.con.execute(
            f"""CREATE OR REPLACE TABLE patient_keys AS
                SELECT lower(trim({key_col})) AS k, any_value(trim({nhs_col})) AS nhs, count(DISTINCT trim({nhs_col})) AS n
                FROM {raw} WHERE trim(coalesce({key_col}, '')) <> '' GROUP BY 1"""
        )

    def _value_sql(self, name: str, kind: str, src: ColumnSource | None, ref: dict[str, str], tm: TableMapping) -> str:
        if src is None or (src.column is not None and src.column not in ref):
            return "NULL"  # not mapped, or an optional canonical column the file leaves out
        if src.constant is not None:
            expr = sql_str(src.constant)
        elif src.patient_key is not None:
            key = f"lower(trim({ref[src.patient_key]}))"
            return f"(SELECT nhs FROM patient_keys WHERE k = {key} AND n = 1)"
        else:
            expr = ref[str(src.column)]
            if src.values:
                cases = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in src.values.items())
                expr = f"CASE lower(trim({expr})) {cases} ELSE {expr} END"
        if kind == "date":
            expr = _date_sql(expr, tm.date_formats)
        return expr


@hookimpl
def cquin_register_adapters(register) -> None:  # type: ignore[no-untyped-def]
    register.add(MappedAdapter)
