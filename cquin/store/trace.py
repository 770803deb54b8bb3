"""The stored form of a run's trace: compact facts per subject, sentences only when a person reads them.

An evaluation decides, for every subject and component, whether the subject is in the denominator and
the numerator, which population's test decided (the *rule*) and why (the *reason*: "snomed 343087000
(deafness_hearing) recorded 2016-09-16 (conditions.csv line 3)").  Kept as sentences, that is about half a
kilobyte per patient.  The store keeps instead:

- ``trace_terms``: a store-wide dictionary of the few hundred *terms* the sentences are made of: the
  rules (population ids), the reasons' *templates* (each sentence with its values taken out, ``%s`` where
  each was, ``%%`` for a literal ``%``), and the *shapes* (one subject's decisions with the values taken
  out: for each component its ordinal, in/out of denominator and numerator, rule term, reason term, and
  where its values start in the subject's list of values and how many it has);
- per subject (``run_subjects``) the shape's term and the values that fill it (dates, line numbers, codes,
  counts, scores: the facts), joined by ``|``; a reason two components share is kept once;
- per cohort member (``run_cohorts``) the reason's term and its values.

The encoding is lossless: :func:`render` puts every value back where it was taken from, so ``explain``, the
cohort list and every output read the very sentence the evaluation wrote.  Because the dictionary is shared
by every run in the store, two runs that decided a subject alike store the same row, and comparing runs
compares rows.  The views ``run_decisions`` and ``run_cohort_members`` render the sentences in plain SQL
(SQLite's ``printf``), for anyone reading the store with SQL.  A sentence with more than MAX_VALUES values
is kept whole as its own template (the views fill that many): such a template keeps its digits, so it is
not hidden by ``cquin serve`` as the values are (a known limit, for free text only).  A reason whose values are hidden (``cquin serve``
without ``--show-identifiers`` reads ``vals`` as empty) reads as empty.

Long because the encoding (SQL, at store time), the decoding (Python, at read time) and the SQL views must agree exactly, so they are kept side by side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from cquin.dataset.duck import sql_str
from cquin.exceptions import StoreError

# The values taken out of a sentence: ISO dates and decimal numbers whole, else every run of digits.  They are
# kept joined by SEPARATOR, which no value contains.
VALUE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]+(?:[.][0-9]+)?"
SEPARATOR = "|"
_VALUE = re.compile(VALUE_PATTERN)
# A sentence with more values than this is kept whole as its own template (the SQL views fill at most this many).
MAX_VALUES = 16

TERMS_TABLE = "trace_terms"
TERMS_PERMANENT = "trace terms are permanent: the decisions of every stored run are read through them"


# --------------------------------------------------------------------------- encoding (DuckDB, at store time)


def template_sql(reason: str) -> str:
    """SQL for the template of the sentence in column ``reason`` (values out, ``%`` doubled)."""
    escaped = f"replace({reason}, '%', '%%')"
    return (
        f"CASE WHEN len(regexp_extract_all({reason}, '{VALUE_PATTERN}')) > {MAX_VALUES} THEN {escaped} "
        f"ELSE regexp_replace({escaped}, '{VALUE_PATTERN}', '%s', 'g') END"
    )


def values_sql(reason: str) -> str:
    """SQL for the list of values taken out of the sentence in column ``reason`` (in order)."""
    found = f"regexp_extract_all({reason}, '{VALUE_PATTERN}')"
    return f"CASE WHEN len({found}) > {MAX_VALUES} THEN CAST([] AS VARCHAR[]) ELSE {found} END"


def split(sentence: str | None) -> tuple[str | None, list[str]]:
    """A sentence as (template, values), as :func:`template_sql` and :func:`values_sql` split it (for migrations)."""
    if sentence is None:
        return None, []
    values = _VALUE.findall(sentence)
    escaped = sentence.replace("%", "%%")
    if len(values) > MAX_VALUES:
        return escaped, []
    return _VALUE.sub("%s", escaped), values


def render(template: str | None, values: list[str]) -> str | None:
    """The sentence a template and its values were taken from."""
    if template is None:
        return None
    return template % tuple(values)


class TermIndex:
    """The store's dictionary of terms: ids for texts, adding the new ones (or, read-only, only looking up)."""

    def __init__(self, conn: Any, *, add: bool = True) -> None:
        if not add:
            require_format5(conn)
        self.conn = conn
        self.add = add

    def ids(self, kind: str, texts: Iterable[str]) -> dict[str, int]:
        wanted = sorted(set(texts))
        if self.add:
            self.conn.executemany(f"INSERT OR IGNORE INTO {TERMS_TABLE} (kind, text) VALUES (?, ?)", [(kind, t) for t in wanted])
        out: dict[str, int] = {}
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" for _ in chunk)
            for term_id, text in self.conn.execute(
                f"SELECT term_id, text FROM {TERMS_TABLE} WHERE kind = ? AND text IN ({marks})", [kind, *chunk]
            ):
                out[text] = term_id
        return out


def _term_table(con: Any, name: str, ids: dict[str, int]) -> None:
    """The terms ``ids`` as a DuckDB table (text, term_id), handed over through Arrow in one step."""
    import pyarrow as pa

    terms = pa.table({"text": pa.array(list(ids), pa.string()), "term_id": pa.array(list(ids.values()), pa.int64())})
    con.register("st_terms_in", terms)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT text, term_id FROM st_terms_in")
    finally:
        con.unregister("st_terms_in")


@dataclass(frozen=True)
class Encoded:
    """SQL over the dataset's connection giving the encoded rows to store, and the temporary tables it needs."""

    subjects_sql: str  # (entity, id, shape, vals)
    cohorts_sql: str  # (cohort, id, reason, vals)
    scratch: tuple[str, ...]

    def drop(self, con: Any) -> None:
        for name in self.scratch:
            con.execute(f"DROP TABLE IF EXISTS {name}")


def encode(
    con: Any,
    terms: TermIndex,
    *,
    decisions: dict[str, list[tuple[int, str]]],
    decisions_sql: Any,
    cohorts_sql: str,
    reason_sql: Any = None,
) -> Encoded:
    """Encode a run's decisions and cohort members against the store's term dictionary.

    ``decisions`` maps each entity to its components as (ordinal, component id); ``decisions_sql(cid)`` gives
    (id, in_denominator, in_numerator, rule, reason) for one component; ``cohorts_sql`` gives (cohort, id,
    reason).  ``reason_sql(column)`` may rewrite a reason before it is split (the pseudonymiser's text rule).
    """
    fix = reason_sql or (lambda column: column)
    # The working tables are ordinary tables of the dataset's database (not TEMP), so that when the dataset
    # works on disk (millions of patients) they are paged too.
    # 1. Every distinct reason split once (a sentence recurs across components and patients: about a third of
    #    the decisions' reasons are distinct), the templates and rules into the dictionary.
    parts = [f"SELECT reason FROM ({decisions_sql(cid)})" for comps in decisions.values() for _, cid in comps]
    parts.append(f"SELECT reason FROM ({cohorts_sql})")
    con.execute(
        f"""CREATE OR REPLACE TABLE st_split AS
            SELECT raw, {template_sql("reason")} AS tpl, {values_sql("reason")} AS vals
            FROM (SELECT raw, {fix("raw")} AS reason FROM (SELECT DISTINCT reason AS raw FROM ({" UNION ALL ".join(parts)})))"""
    )
    templates = [t for (t,) in con.execute("SELECT DISTINCT tpl FROM st_split WHERE tpl IS NOT NULL").fetchall()]
    _term_table(con, "st_templates", terms.ids("reason", templates))
    con.execute(
        """CREATE OR REPLACE TABLE st_reasons AS
           SELECT s.raw, t.term_id AS tp, s.vals FROM st_split s LEFT JOIN st_templates t ON t.text = s.tpl"""
    )
    con.execute("DROP TABLE st_split")
    rules = " UNION ".join(
        f"SELECT DISTINCT rule FROM ({decisions_sql(cid)})" for comps in decisions.values() for _, cid in comps
    )
    found = [r for (r,) in con.execute(rules).fetchall() if r is not None] if rules else []
    _term_table(con, "st_rules", terms.ids("rule", found))
    # 2. Each subject's decisions side by side, a reason shared with an earlier component kept once.
    con.execute("CREATE OR REPLACE TABLE st_subjects (entity VARCHAR, id VARCHAR, shape VARCHAR, vals VARCHAR[])")
    for entity, comps in decisions.items():
        # One component at a time joined to the split reasons (one hash table of them in memory at once).
        for i, (_, cid) in enumerate(comps):
            con.execute(
                f"""CREATE OR REPLACE TABLE st_c{i} AS
                    SELECT d.id, d.in_denominator::INT AS dn{i}, d.in_numerator::INT AS nm{i}, r.term_id AS rl{i},
                           s.tp AS tp{i}, s.vals AS v{i}
                    FROM ({decisions_sql(cid)}) d
                    LEFT JOIN st_rules r ON r.text = d.rule LEFT JOIN st_reasons s ON s.raw = d.reason"""
            )
        if comps:
            con.execute(f"INSERT INTO st_subjects {_subject_rows(entity, comps)}")
        for i in range(len(comps)):
            con.execute(f"DROP TABLE st_c{i}")
    # 3. The shapes, into the dictionary.
    shapes = [s for (s,) in con.execute("SELECT DISTINCT shape FROM st_subjects").fetchall()]
    _term_table(con, "st_shapes", terms.ids("shape", shapes))
    subjects = f"""SELECT s.entity, s.id, h.term_id AS shape, coalesce(array_to_string(s.vals, '{SEPARATOR}'), '') AS vals
                  FROM st_subjects s LEFT JOIN st_shapes h ON h.text = s.shape ORDER BY s.id, s.entity"""
    cohorts = f"""SELECT c.cohort, c.id, r.tp AS reason, coalesce(array_to_string(r.vals, '{SEPARATOR}'), '') AS vals
                  FROM ({cohorts_sql}) c LEFT JOIN st_reasons r ON r.raw = c.reason
                  ORDER BY c.cohort, c.id"""
    return Encoded(subjects, cohorts, ("st_reasons", "st_rules", "st_templates", "st_subjects", "st_shapes"))


def _subject_rows(entity: str, comps: list[tuple[int, str]]) -> str:
    """SQL for (entity, id, shape text, values) of every subject of ``entity``, from the tables ``st_c<i>``."""
    subs = [f"st_c{i}" for i in range(len(comps))]
    joined = subs[0] + "".join(f" LEFT JOIN {sub} USING (id)" for sub in subs[1:])
    n = len(comps)
    # src{i}: the first component whose reason (template and values) component i's equals; only it keeps the values.
    srcs = []
    for i in range(n):
        whens = " ".join(f"WHEN tp{j} IS NOT DISTINCT FROM tp{i} AND v{j} IS NOT DISTINCT FROM v{i} THEN {j}" for j in range(i))
        srcs.append(f"CASE {whens} ELSE {i} END AS src{i}" if whens else f"{i} AS src{i}")
    kept = [f"(CASE WHEN src{k} = {k} THEN coalesce(len(v{k}), 0) ELSE 0 END)" for k in range(n)]
    items = []
    for i, (ordinal, _) in enumerate(comps):
        # Where component i's values start: where those of the component it shares them with start.
        start = "CASE " + " ".join(f"WHEN src{i} = {j} THEN {' + '.join(kept[:j]) or '0'}" for j in range(i + 1)) + " END"
        fields = [
            f"'{ordinal}'",
            f"CAST(dn{i} AS VARCHAR)",
            f"CAST(nm{i} AS VARCHAR)",
            f"coalesce(CAST(rl{i} AS VARCHAR), 'null')",
            f"coalesce(CAST(tp{i} AS VARCHAR), 'null')",
            f"CAST({start} AS VARCHAR)",
            f"CAST(coalesce(len(v{i}), 0) AS VARCHAR)",
        ]
        # A subject a component has no row for (none in practice) has no entry for it.
        items.append("'[' || " + " || ',' || ".join(fields) + " || ']'")
    values = "list_concat(" + ", ".join(f"CASE WHEN src{k} = {k} THEN coalesce(v{k}, []) ELSE [] END" for k in range(n)) + ")"
    if n == 1:
        values = "coalesce(v0, CAST([] AS VARCHAR[]))"
    return f"""SELECT {sql_str(entity)}, id, '[' || concat_ws(',', {", ".join(items)}) || ']', {values}
               FROM (SELECT *, {", ".join(srcs)} FROM {joined})"""


# --------------------------------------------------------------------------- decoding (Python, at read time)


def require_format5(conn: Any) -> None:
    """Refuse, with what to do, a store whose trace is still in the sentences of formats 1-4 (read-only opens
    read those stores' runs, but not their per-subject decisions until ``cquin store migrate``)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [TERMS_TABLE]).fetchall():
        path = getattr(conn, "store_path", "the audit store")
        raise StoreError(
            f"{path}: this store keeps its per-patient decisions in an older format; upgrade it with "
            f"`cquin store migrate --store {path}` (reading commands never change a store)"
        )


class Terms:
    """The store's term dictionary, read once per reader."""

    def __init__(self, conn: Any) -> None:
        require_format5(conn)
        self._text = dict(conn.execute(f"SELECT term_id, text FROM {TERMS_TABLE}").fetchall())
        self._shapes: dict[int, list[list[int | None]]] = {}

    def text(self, term_id: int | None) -> str | None:
        return None if term_id is None else self._text[term_id]

    def shape(self, term_id: int) -> list[list[int | None]]:
        if term_id not in self._shapes:
            self._shapes[term_id] = json.loads(self._text[term_id])
        return self._shapes[term_id]

    def ids_containing(self, kind: str, fragment: str, conn: Any) -> list[int]:
        """The terms of ``kind`` whose text contains ``fragment`` (e.g. the templates of override reasons)."""
        escaped = fragment.replace("%", "%%")
        return [
            r[0]
            for r in conn.execute(f"SELECT term_id FROM {TERMS_TABLE} WHERE kind = ? AND instr(text, ?) > 0", [kind, escaped])
        ]


@dataclass(frozen=True)
class Decision:
    """One subject's decision for one component, as the evaluation made it."""

    ordinal: int
    in_denominator: int
    in_numerator: int
    rule: str | None
    reason: str | None


def values_of(vals: str) -> list[str]:
    """The stored values of a subject or cohort member, as a list."""
    return vals.split(SEPARATOR) if vals else []


def decode(terms: Terms, shape: int, vals: str) -> Iterator[Decision]:
    """A subject's decisions from its stored shape and values, in the run's component order."""
    values = values_of(vals)
    for ordinal, den, num, rule, reason, start, count in terms.shape(shape):
        assert ordinal is not None and start is not None and count is not None
        yield Decision(
            ordinal, int(den or 0), int(num or 0), terms.text(rule), render(terms.text(reason), values[start : start + count])
        )


# --------------------------------------------------------------------------- the SQL views


def _printf(template: str, values: str, start: str = "0") -> str:
    as_json = f"""(CASE WHEN {values} = '' THEN '[]' ELSE '["' || replace({values}, '{SEPARATOR}', '","') || '"]' END)"""
    args = ", ".join(f"json_extract({as_json}, '$[' || ({start} + {k}) || ']')" for k in range(MAX_VALUES))
    # SQLite's printf gives NULL for an empty result, where the sentence was the empty string.
    return f"CASE WHEN {template} IS NOT NULL THEN coalesce(printf({template}, {args}), '') END"


RUN_DECISIONS_VIEW = f"""CREATE VIEW IF NOT EXISTS run_decisions AS
    SELECT s.run_id, c.component, s.entity, s.subject_id,
           json_extract(j.value, '$[1]') AS in_denominator, json_extract(j.value, '$[2]') AS in_numerator,
           r.text AS rule,
           CASE WHEN s.vals IS NOT NULL THEN {_printf("t.text", "s.vals", "json_extract(j.value, '$[5]')")} END AS reason
    FROM run_subjects s
    JOIN {TERMS_TABLE} h ON h.term_id = s.shape
    JOIN json_each(h.text) j
    JOIN run_components c ON c.run_id = s.run_id AND c.ordinal = json_extract(j.value, '$[0]')
    LEFT JOIN {TERMS_TABLE} r ON r.term_id = json_extract(j.value, '$[3]')
    LEFT JOIN {TERMS_TABLE} t ON t.term_id = json_extract(j.value, '$[4]')"""

RUN_COHORT_MEMBERS_VIEW = f"""CREATE VIEW IF NOT EXISTS run_cohort_members AS
    SELECT k.run_id, k.cohort, k.patient_id, CASE WHEN k.vals IS NOT NULL THEN {_printf("t.text", "k.vals")} END AS reason
    FROM run_cohorts k LEFT JOIN {TERMS_TABLE} t ON t.term_id = k.reason"""


# --------------------------------------------------------------------------- the tables, and format 4's conversion

TABLES = ("run_cohorts", "run_subjects")

_CREATE = {
    TERMS_TABLE: f"""CREATE TABLE IF NOT EXISTS {TERMS_TABLE} (
        term_id INTEGER PRIMARY KEY, kind TEXT NOT NULL, text TEXT NOT NULL)""",
    "run_subjects": """CREATE TABLE IF NOT EXISTS run_subjects (
        run_id TEXT NOT NULL REFERENCES runs (run_id), entity TEXT NOT NULL, subject_id TEXT NOT NULL,
        shape INTEGER, vals TEXT, PRIMARY KEY (run_id, subject_id, entity)) WITHOUT ROWID""",
    "run_cohorts": """CREATE TABLE IF NOT EXISTS run_cohorts (
        run_id TEXT NOT NULL REFERENCES runs (run_id), cohort TEXT NOT NULL, patient_id TEXT NOT NULL,
        reason INTEGER, vals TEXT, PRIMARY KEY (run_id, cohort, patient_id)) WITHOUT ROWID""",
}


def create_tables(db: Any) -> None:
    for sql in _CREATE.values():
        db.execute(sql)
    db.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS idx_{TERMS_TABLE}_text ON {TERMS_TABLE} (kind, text)")
    # Terms are append-only: every run's decisions read through them, a signed-off run's included.
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"""CREATE TRIGGER IF NOT EXISTS {TERMS_TABLE}_no_{op.lower()} BEFORE {op} ON {TERMS_TABLE}
                BEGIN SELECT RAISE(ABORT, '{TERMS_PERMANENT}'); END"""
        )


def create_views(db: Any) -> None:
    db.execute(RUN_DECISIONS_VIEW)
    db.execute(RUN_COHORT_MEMBERS_VIEW)


def _encode_decisions(decided: dict[str, list[Any]], ordinals: dict[str, int], ids: Any) -> tuple[str, str]:
    """A format-4 subject's decisions as (shape text, values JSON), exactly as :func:`encode` writes them."""
    entries: list[list[int | None]] = []
    kept: list[tuple[int | None, list[str], int]] = []  # (template term, values, start) of the reasons kept
    values: list[str] = []
    for cid, (den, num, rule, reason) in decided.items():
        template, found = split(reason)
        tp = ids("reason", template)
        start = next((s for t, v, s in kept if t == tp and v == found), None)
        if start is None:
            start = len(values)
            kept.append((tp, found, start))
            values += found
        entries.append([ordinals[cid], int(den), int(num), ids("rule", rule), tp, start, len(found)])
    return json.dumps(entries, separators=(",", ":")), SEPARATOR.join(values)


def migrate_format4(db: Any) -> None:
    """Rebuild the format-4 trace tables as compact facts, converting every stored run (their sentences unchanged)."""
    conn = db.conn
    for view in ("run_decisions", "run_cohort_members"):
        db.execute(f"DROP VIEW IF EXISTS {view}")
    for name in TABLES:  # a table already in this format (a store whose version was set back) is kept as it is
        if db.table(name).exists() and "vals" not in db.table(name).columns_dict:
            db.execute(f"ALTER TABLE {name} RENAME TO {name}_format4")
    create_tables(db)
    cache: dict[tuple[str, str], int] = {}
    index = TermIndex(conn)

    def ids(kind: str, text: str | None) -> int | None:
        if text is None:
            return None
        if (kind, text) not in cache:
            cache[(kind, text)] = index.ids(kind, [text])[text]
        return cache[(kind, text)]

    if db.table("run_subjects_format4").exists():
        ordinals: dict[str, dict[str, int]] = {}
        for run_id, component, ordinal in conn.execute("SELECT run_id, component, ordinal FROM run_components"):
            ordinals.setdefault(run_id, {})[component] = ordinal
        rows = conn.execute(
            "SELECT run_id, entity, subject_id, decisions FROM run_subjects_format4 ORDER BY run_id, subject_id, entity"
        )
        while batch := rows.fetchmany(10_000):
            out = []
            for run_id, entity, subject_id, decisions in batch:
                shape, vals = _encode_decisions(json.loads(decisions), ordinals.get(run_id, {}), ids)
                out.append((run_id, entity, subject_id, ids("shape", shape), vals))
            conn.executemany("INSERT INTO run_subjects (run_id, entity, subject_id, shape, vals) VALUES (?, ?, ?, ?, ?)", out)
        db.execute("DROP TABLE run_subjects_format4")
    if db.table("run_cohorts_format4").exists():
        rows = conn.execute(
            "SELECT run_id, cohort, patient_id, reason FROM run_cohorts_format4 ORDER BY run_id, cohort, patient_id"
        )
        while batch := rows.fetchmany(10_000):
            out = []
            for run_id, cohort, patient_id, reason in batch:
                template, found = split(reason)
                out.append((run_id, cohort, patient_id, ids("reason", template), SEPARATOR.join(found)))
            conn.executemany("INSERT INTO run_cohorts (run_id, cohort, patient_id, reason, vals) VALUES (?, ?, ?, ?, ?)", out)
        db.execute("DROP TABLE run_cohorts_format4")
    db.execute("DROP INDEX IF EXISTS idx_subjects_subject")
    create_views(db)
