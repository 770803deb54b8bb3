"""``runs verify``'s read-back: every stored row of a run is read and compared with a fresh evaluation.

The stored digest (``results_sha256``) agreeing is not enough to say a run is
intact: it is one value in one row.  Here the per-subject decisions, the cohort
lists and the component results are read back from the store in full and
compared, as order-independent digests, with what the re-evaluation gives.  A
row that cannot be read (a damaged page) is a problem in its own right.  For a
pseudonymised run the store keeps pseudonyms, which cannot be recomputed
without the key, so its subjects and cohorts are compared by count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from sqlite_utils.db import Database

from cquin.dataset import CanonicalDataset
from cquin.engine.evaluation import RunResult
from cquin.exceptions import StoreError
from cquin.store import StoredRun, SubjectDecoder, encoded_trace, trace, trace_of

_MASK = (1 << 64) - 1


def _digest(rows: Iterable[tuple[Any, ...]]) -> tuple[int, int]:
    """(row count, sum of 64-bit row hashes): equal for equal multisets of rows, whatever their order."""
    n = total = 0
    for row in rows:
        h = hashlib.blake2b("\x1f".join("" if v is None else str(v) for v in row).encode(), digest_size=8)
        total = (total + int.from_bytes(h.digest(), "big")) & _MASK
        n += 1
    return n, total


def _duck_rows(dataset: CanonicalDataset, sql: str) -> Iterable[tuple[Any, ...]]:
    reader = dataset.con.sql(sql).to_arrow_reader(50_000)
    for batch in reader:
        yield from zip(*(batch.column(i).to_pylist() for i in range(batch.num_columns)), strict=True)


_Digest = tuple[int, int]


def _differences(stored_subjects: _Digest, fresh_subjects: _Digest, stored_cohorts: _Digest, fresh_cohorts: _Digest) -> list[str]:
    problems = []
    for what, then_d, now_d in (
        ("per-patient decisions", stored_subjects, fresh_subjects),
        ("cohort lists", stored_cohorts, fresh_cohorts),
    ):
        if then_d != now_d:
            problems.append(
                f"the stored {what} differ from the re-evaluation ({then_d[0]:,} rows stored, {now_d[0]:,} now"
                + (", and their contents differ" if then_d[0] == now_d[0] else "")
                + ")"
            )
    return problems


def _read_all(db: Database, run_id: str) -> None:
    """Read every other row of the run (a StoreError says which cannot be read)."""
    for table in ("run_inputs", "run_rejections", "run_milestones", "run_overrides", "run_unmatched_codes", "run_breakdowns"):
        if db[table].exists():
            for _ in db.execute(f"SELECT * FROM {table} WHERE run_id = ?", [run_id]):
                pass


def _encoded(
    db: Database, run_id: str, result: RunResult, dataset: CanonicalDataset, pseudonymised: bool
) -> tuple[_Digest, _Digest, _Digest, _Digest]:
    """Digests of the stored and the fresh rows (subjects, then cohort members), the fresh ones encoded against
    the store's own terms (looked up, never added: a decision the store has no words for cannot match one it holds)."""
    subjects_sql = "SELECT entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ?"
    cohorts_sql = "SELECT cohort, patient_id, reason, vals FROM run_cohorts WHERE run_id = ?"
    encoded = encoded_trace(result, dataset, trace.TermIndex(db.conn, add=False))
    try:
        if pseudonymised:
            return (
                _digest((r[0],) for r in db.execute(subjects_sql, [run_id]).fetchall()),
                _digest((r[0],) for r in _duck_rows(dataset, encoded.subjects_sql)),
                _digest((r[0],) for r in db.execute(cohorts_sql, [run_id]).fetchall()),
                _digest((r[0],) for r in _duck_rows(dataset, encoded.cohorts_sql)),
            )
        return (
            _digest(db.execute(subjects_sql, [run_id])),
            _digest(_duck_rows(dataset, encoded.subjects_sql)),
            _digest(db.execute(cohorts_sql, [run_id])),
            _digest(_duck_rows(dataset, encoded.cohorts_sql)),
        )
    finally:
        encoded.drop(dataset.con)


def _sentences(
    db: Database, run_id: str, terms: trace.Terms, result: RunResult, dataset: CanonicalDataset
) -> tuple[_Digest, _Digest, _Digest, _Digest]:
    """Digests of the stored and the fresh decisions and cohort members, each reason in words."""
    decoder = SubjectDecoder(db, run_id, terms)
    ordinal = {c.id: i for i, c in enumerate(result.components)}
    t = trace_of(result)

    def stored_decisions() -> Iterable[tuple[Any, ...]]:
        for entity, sid, shape, vals in db.execute(
            "SELECT entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ?", [run_id]
        ):
            for d in decoder.decisions(entity, shape, vals):
                yield entity, sid, ordinal.get(d["component"]), d["in_denominator"], d["in_numerator"], d["rule"], d["reason"]

    begun = [c.id for c in result.components if c.entity and c.denominator is not None]
    fresh_sql = f"SELECT entity, id, component, in_denominator, in_numerator, rule, reason FROM ({t.decisions_sql()})"

    def fresh_decisions() -> Iterable[tuple[Any, ...]]:
        for entity, sid, cid, den, num, rule, reason in _duck_rows(dataset, fresh_sql):
            if cid in begun:
                yield entity, sid, ordinal[cid], int(den), int(num), rule, t.sentence(reason)

    stored_members = (
        (c, pid, terms.sentence(r, v))
        for c, pid, r, v in db.execute("SELECT cohort, patient_id, reason, vals FROM run_cohorts WHERE run_id = ?", [run_id])
    )
    fresh_members = ((c, pid, t.sentence(r)) for c, pid, r in _duck_rows(dataset, t.cohort_members_sql()))
    return _digest(stored_decisions()), _digest(fresh_decisions()), _digest(stored_members), _digest(fresh_members)


def compare_stored_rows(
    db: Database,
    run: dict[str, Any],
    stored: StoredRun,
    result: RunResult,
    dataset: CanonicalDataset,
    *,
    split_encoded: bool = False,
) -> list[str]:
    """What differs between the run's stored rows and the re-evaluation (empty: everything was read and agrees).

    ``split_encoded``: the run's reasons were split from sentences (:func:`cquin.store.trace.split_encoded`).
    """
    run_id = run["run_id"]
    pseudonymised = bool(json.loads(run["parameters"] or "{}").get("pseudonymised"))
    problems: list[str] = []
    try:
        for c, s in zip(result.components, stored.components, strict=False):
            now = (c.id, c.numerator, c.denominator, f"{c.payment:.2f}", c.band)
            then = (s["component"], s["numerator"], s["denominator"], s["payment"], s["band"])
            if now != then:
                problems.append(f"{c.id}: stored {then[1]}/{then[2]} £{then[3]}, now {now[1]}/{now[2]} £{now[3]}")
        if len(result.components) != len(stored.components):
            problems.append(
                f"the store holds {len(stored.components)} component results; the ruleset has {len(result.components)}"
            )
        if split_encoded and not pseudonymised:
            # A run stored before reasons were kept as templates (or migrated): compared sentence by sentence.
            digests = _sentences(db, run_id, trace.Terms(db.conn), result, dataset)
        else:
            digests = _encoded(db, run_id, result, dataset, pseudonymised)
        problems += _differences(*digests)
        _read_all(db, run_id)
    except StoreError as exc:
        problems.append(f"the stored run cannot be read back in full: {exc}")
    return problems
