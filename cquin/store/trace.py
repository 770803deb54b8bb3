"""The stored form of a run's trace: compact facts per subject, sentences only when a person reads them.

An evaluation decides, for every subject and component, whether the subject is in the denominator and
the numerator, which population's test decided (the *rule*) and why (the *reason*).  The evaluation already
keeps each reason as facts (:mod:`cquin.engine.reasons`): the number of a template, its words fixed when
the rules were compiled ("snomed %s (deafness_hearing) recorded %s (conditions.csv line %s)"), and the values
of one row.  The store keeps:

- ``trace_terms``: a store-wide dictionary of the few hundred *terms*: the rules (population ids), the
  reasons' *templates* (``%s`` where each value goes, ``%%`` for a literal ``%``), and the *shapes* (one
  subject's decisions with the values taken out: for each component its ordinal, in/out of denominator and
  numerator, rule term, template term, and where its values start in the subject's list of values and how
  many it has);
- per subject (``run_subjects``) the shape's term and the values that fill it (dates, line numbers, codes,
  counts, scores: the facts), joined by ``|`` (each written as the inside of a JSON string, ``|`` as
  ``\u007c``); a reason two components share is kept once;
- per cohort member (``run_cohorts``) the reason's template term and its values.

:func:`render` puts every value back in its template, so ``explain``, the cohort list and every output read
the very sentence the evaluation means.  Because the dictionary is shared by every run in the store, two
runs that decided a subject alike store the same row, and comparing runs compares rows.  The views
``run_decisions`` and ``run_cohort_members`` render the sentences in plain SQL (SQLite's ``printf``), for
anyone reading the store with SQL.  A reason whose values are hidden (``cquin serve`` without
``--show-identifiers`` reads ``vals`` as empty) reads with its values empty.

Runs migrated from format 4 (and runs stored before the evaluation kept its reasons as templates) hold
templates of kind ``reason``, split out of their sentences by taking out every date and number
(:func:`split`); they render the same sentences, but their rows differ from a new run's, so
:func:`split_encoded` tells comparisons and verification to read them in words.  A split sentence with
more than MAX_VALUES values was kept whole as its own template (the views fill that many).

Long because the encoding (SQL, at store time), the decoding (Python, at read time) and the SQL views must
agree exactly, so they are kept side by side.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cquin.dataset.duck import sql_str
from cquin.engine.reasons import SEPARATOR, render, slots, values_of
from cquin.exceptions import StoreError

# The values taken out of a sentence: ISO dates and decimal numbers whole, else every run of digits.  They are
# kept joined by SEPARATOR, which no value contains.
VALUE_PATTERN = r"[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]+(?:[.][0-9]+)?"
_VALUE = re.compile(VALUE_PATTERN)
# The kinds of term: rules (population ids), templates (the evaluation's reasons' words), shapes, and the
# templates the migration of a format-4 store split out of its sentences ("reason").
TEMPLATE_KIND = "template"
SPLIT_KIND = "reason"
REASON_KINDS = (TEMPLATE_KIND, SPLIT_KIND)
# A sentence with more values than this is kept whole as its own template (the SQL views fill at most this many).
MAX_VALUES = 16

TERMS_TABLE = "trace_terms"
TERMS_PERMANENT = "trace terms are permanent: the decisions of every stored run are read through them"


# --------------------------------------------------------------------------- values


def split(sentence: str | None) -> tuple[str | None, list[str]]:
    """A format-4 sentence as (template, values): its dates and numbers taken out (for the migration)."""
    if sentence is None:
        return None, []
    values = _VALUE.findall(sentence)
    escaped = sentence.replace("%", "%%")
    if len(values) > MAX_VALUES:
        return escaped, []
    return _VALUE.sub("%s", escaped), values


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
    templates: Sequence[str],
    decisions: dict[str, list[tuple[int, str]]],
    decisions_sql: Any,
    cohorts_sql: str,
    values_sql: Any = None,
) -> Encoded:
    """Encode a run's decisions and cohort members against the store's term dictionary.

    The evaluation's reasons are already facts: a template number (into ``templates``) and the values.
    ``decisions`` maps each entity to its components as (ordinal, component id); ``decisions_sql(cid)`` gives
    (id, in_denominator, in_numerator, rule, reason) for one component; ``cohorts_sql`` gives (cohort, id,
    reason).  ``values_sql(column)`` may rewrite the values before they are stored (the pseudonymiser's text rule).
    """
    fix = values_sql or (lambda column: column)
    # The working tables are ordinary tables of the dataset's database (not TEMP), so that when the dataset
    # works on disk (millions of patients) they are paged too.
    # 1. The templates and rules used, into the dictionary: (evaluation's number -> term, number of values).
    comps = [cid for entity_comps in decisions.values() for _, cid in entity_comps]
    used_sql = " UNION ".join(
        [f"SELECT DISTINCT reason.t AS t FROM ({decisions_sql(cid)})" for cid in comps]
        + [f"SELECT DISTINCT reason.t AS t FROM ({cohorts_sql})"]
    )
    used = sorted(t for (t,) in con.execute(used_sql).fetchall() if t is not None)
    ids = terms.ids(TEMPLATE_KIND, [templates[t] for t in used])
    known = [t for t in used if templates[t] in ids]
    _table(
        con, "st_tmap", {"t": known, "term_id": [ids[templates[t]] for t in known], "nv": [slots(templates[t]) for t in known]}
    )
    rules_sql = " UNION ".join(f"SELECT DISTINCT rule FROM ({decisions_sql(cid)})" for cid in comps)
    found = [r for (r,) in con.execute(rules_sql).fetchall() if r is not None] if comps else []
    rule_ids = terms.ids("rule", found)
    _table(con, "st_rules", {"text": list(rule_ids), "term_id": list(rule_ids.values())})
    nvals = {ids[templates[t]]: slots(templates[t]) for t in known}
    # 2. Each subject's decisions side by side: the shape's key (per component: in/out, rule, template and
    #    which earlier component's values it shares) and the values, a reason shared with an earlier
    #    component kept once.
    scratch = ["st_tmap", "st_rules"]
    parts: list[str] = []
    for entity, entity_comps in decisions.items():
        n = len(entity_comps)
        if not n:
            continue
        for i, (_, cid) in enumerate(entity_comps):
            # One component at a time joined to the small dictionaries (one hash table in memory at once).
            con.execute(
                f"""CREATE OR REPLACE TABLE st_c{i} AS
                    SELECT d.id, d.in_denominator::INT AS dn{i}, d.in_numerator::INT AS nm{i}, r.term_id AS rl{i},
                           m.term_id AS tp{i}, coalesce(m.nv, 0) AS nv{i}, {fix("d.reason.v")} AS v{i}
                    FROM ({decisions_sql(cid)}) d
                    LEFT JOIN st_rules r ON r.text = d.rule LEFT JOIN st_tmap m ON m.t = d.reason.t"""
            )
        joined = "st_c0" + "".join(f" LEFT JOIN st_c{i} USING (id)" for i in range(1, n))
        srcs = []
        for i in range(n):
            whens = " ".join(
                f"WHEN tp{j} IS NOT DISTINCT FROM tp{i} AND v{j} IS NOT DISTINCT FROM v{i} THEN {j}" for j in range(i)
            )
            srcs.append(f"CASE {whens} ELSE {i} END AS src{i}" if whens else f"{i} AS src{i}")
        key = [f"{col}{i}" for i in range(n) for col in ("dn", "nm", "rl", "tp", "src")]
        kept = ", ".join(f"CASE WHEN src{i} = {i} AND nv{i} > 0 THEN v{i} END" for i in range(n))
        ordinals = [ordinal for ordinal, _ in entity_comps]
        table = f"st_s_{len(parts)}"
        con.execute(
            f"""CREATE OR REPLACE TABLE {table} AS
                SELECT {sql_str(entity)} AS entity, id, hash({", ".join(key)}) AS k, {", ".join(key)},
                       concat_ws('{SEPARATOR}', {kept}) AS vals
                FROM (SELECT *, {", ".join(srcs)} FROM {joined})"""
        )
        for i in range(n):
            con.execute(f"DROP TABLE st_c{i}")
        scratch.append(table)
        # 3. The shapes: each distinct key once, written out in Python, into the dictionary.
        shapes: dict[int, str] = {}
        for k, *cols in con.execute(f"SELECT DISTINCT k, {', '.join(key)} FROM {table}").fetchall():
            text = _shape_text(ordinals, cols, nvals)
            if shapes.setdefault(k, text) != text:  # two keys with one hash: never seen, but never wrong either
                raise StoreError("two decision shapes hash alike; the run cannot be stored")
        shape_ids = terms.ids("shape", set(shapes.values()))
        _table(
            con,
            f"st_h_{len(parts)}",
            {"k": list(shapes), "term_id": [shape_ids.get(text) for text in shapes.values()]},
            types={"k": "UBIGINT"},
        )
        scratch.append(f"st_h_{len(parts)}")
        parts.append(f"SELECT s.entity, s.id, h.term_id AS shape, s.vals FROM {table} s LEFT JOIN st_h_{len(parts)} h USING (k)")
    subjects = (
        f"SELECT * FROM ({' UNION ALL '.join(parts)}) ORDER BY id, entity"
        if parts
        else "SELECT NULL AS entity, NULL AS id, NULL AS shape, NULL AS vals WHERE false"
    )
    cohorts = f"""SELECT c.cohort, c.id, m.term_id AS reason, CASE WHEN m.nv > 0 THEN {fix("c.reason.v")} ELSE '' END AS vals
                  FROM ({cohorts_sql}) c LEFT JOIN st_tmap m ON m.t = c.reason.t
                  ORDER BY c.cohort, c.id"""
    return Encoded(subjects, cohorts, tuple(scratch))


def _shape_text(ordinals: list[int], cols: list[Any], nvals: dict[int, int]) -> str:
    """The shape term of one key: per component [ordinal, den, num, rule, reason, values start, values count]."""
    entries: list[list[int | None]] = []
    starts: list[int] = []
    at = 0
    for i, ordinal in enumerate(ordinals):
        dn, nm, rl, tp, src = cols[5 * i : 5 * i + 5]
        count = nvals.get(tp, 0) if tp is not None else 0
        if src == i:
            starts.append(at)
            at += count
        else:
            starts.append(starts[src])
        entries.append([ordinal, int(dn or 0), int(nm or 0), rl, tp, starts[i], count])
    return json.dumps(entries, separators=(",", ":"))


def _table(con: Any, name: str, columns: dict[str, list[Any]], types: dict[str, str] | None = None) -> None:
    """A small DuckDB table from Python lists, handed over through Arrow in one step."""
    import pyarrow as pa

    kinds = {"text": pa.string()}
    arrays = {
        col: pa.array(vals, kinds.get(col, pa.uint64() if (types or {}).get(col) == "UBIGINT" else pa.int64()))
        for col, vals in columns.items()
    }
    con.register("st_in", pa.table(arrays))
    try:
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM st_in")
    finally:
        con.unregister("st_in")


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
        rows = conn.execute(f"SELECT term_id, text, kind FROM {TERMS_TABLE}").fetchall()
        self._text = {term_id: text for term_id, text, _ in rows}
        self._kinds = {term_id: kind for term_id, _, kind in rows}
        self._shapes: dict[int, list[list[int | None]]] = {}

    def text(self, term_id: int | None) -> str | None:
        return None if term_id is None else self._text[term_id]

    def sentence(self, reason: int | None, vals: str | None) -> str | None:
        """A cohort member's reason (its template term and stored values) in words."""
        return render(self.text(reason), values_of(vals))

    def shape(self, term_id: int) -> list[list[int | None]]:
        if term_id not in self._shapes:
            self._shapes[term_id] = json.loads(self._text[term_id])
        return self._shapes[term_id]

    def reasons_containing(self, fragment: str, conn: Any) -> list[int]:
        """The reason templates whose words contain ``fragment`` (e.g. those of override reasons)."""
        escaped = fragment.replace("%", "%%")
        marks = ", ".join("?" for _ in REASON_KINDS)
        return [
            r[0]
            for r in conn.execute(
                f"SELECT term_id FROM {TERMS_TABLE} WHERE kind IN ({marks}) AND instr(text, ?) > 0", [*REASON_KINDS, escaped]
            )
        ]

    def kind(self, term_id: int) -> str | None:
        """The kind of a term (read once per reader, with the texts)."""
        return self._kinds.get(term_id)


def split_encoded(conn: Any, terms: Terms, run_id: str) -> bool:
    """Whether a run's reasons were split out of sentences (runs stored before the evaluation wrote its reasons
    as templates and values, and every migrated run): its rows then differ from a fresh run's decided alike."""
    shapes = [s for (s,) in conn.execute("SELECT DISTINCT shape FROM run_subjects WHERE run_id = ?", [run_id]).fetchall()]
    reasons = {entry[4] for shape in shapes if shape is not None for entry in terms.shape(shape)}
    reasons |= {r for (r,) in conn.execute("SELECT DISTINCT reason FROM run_cohorts WHERE run_id = ?", [run_id]).fetchall()}
    return any(terms.kind(r) == SPLIT_KIND for r in reasons if r is not None)


@dataclass(frozen=True)
class Decision:
    """One subject's decision for one component, as the evaluation made it."""

    ordinal: int
    in_denominator: int
    in_numerator: int
    rule: str | None
    reason: str | None


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
        tp = ids(SPLIT_KIND, template)
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
                out.append((run_id, cohort, patient_id, ids(SPLIT_KIND, template), SEPARATOR.join(found)))
            conn.executemany("INSERT INTO run_cohorts (run_id, cohort, patient_id, reason, vals) VALUES (?, ?, ?, ?, ?)", out)
        db.execute("DROP TABLE run_cohorts_format4")
    db.execute("DROP INDEX IF EXISTS idx_subjects_subject")
    create_views(db)
