"""The trace is stored as compact facts, and reads back as the very sentences the evaluation wrote.

``tests/fixtures/stores/format4-demo.sqlite`` is a real store of format 4, written by the cquin before the
trace was kept as facts (the demo, evaluated for £12m); the ``.explain-*.txt`` files beside it are what that
cquin's ``explain`` printed for three subjects.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from cquin.store import SCHEMA_VERSION, cohort_members, decisions_for, open_store
from cquin.store.trace import render, split
from tests.faults.helpers import run_main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
RUN = "20261203T134531-c582b8"


@pytest.fixture
def format4(tmp_path: Path) -> Path:
    store = tmp_path / "audit.sqlite"
    shutil.copy(FIXTURES / "format4-demo.sqlite", store)
    return store


def _old_trace(store: Path) -> tuple[dict[tuple[str, str], list[list[object]]], list[tuple[str, str, str]]]:
    """The format-4 trace as it is in the file: decisions by (entity, subject) in component order, cohort members."""
    con = sqlite3.connect(store)
    subjects = {
        (entity, sid): [[cid, *v] for cid, v in json.loads(text).items()]
        for entity, sid, text in con.execute("SELECT entity, subject_id, decisions FROM run_subjects")
    }
    cohorts = con.execute("SELECT cohort, patient_id, reason FROM run_cohorts ORDER BY cohort, patient_id").fetchall()
    con.close()
    return subjects, cohorts


@pytest.mark.parametrize(
    "sentence",
    [
        "snomed 343087000 (deafness_hearing) recorded 2016-09-16 (conditions.csv line 3) (+1 more LTC categories)",
        "baseline: PAM level 3 (from score 58.9) on 2018-02-20 (assessments.csv line 4)",
        "excluded by agreed override: 100% sure of 9990000018's move, agreed 2019-03-21 (overrides.csv line 3)",
        "no values at all, and a literal %s and %% in the text",
        " ".join(str(n) for n in range(40)),  # more values than the SQL views fill: kept whole
        "",
    ],
)
def test_a_sentence_splits_into_a_template_and_values_and_renders_back_exactly(sentence: str) -> None:
    template, values = split(sentence)
    assert render(template, values) == sentence
    assert all(v.replace("-", "").replace(".", "").isdigit() and "|" not in v for v in values)


def test_a_format4_store_is_migrated_and_every_decision_reads_as_before(format4: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    subjects, cohorts = _old_trace(format4)
    ran = run_main(capsys, "store", "migrate", "--store", str(format4))
    assert ran.code == 0 and f"from format 4 to {SCHEMA_VERSION}" in ran.out, ran.out + ran.err
    db = open_store(format4, read_only=True)
    for (entity, sid), old in subjects.items():
        now = [
            [d["component"], d["in_denominator"], d["in_numerator"], d["rule"], d["reason"]]
            for d in decisions_for(db, RUN, sid)
            if d["entity"] == entity
        ]
        assert now == old, sid
    names = sorted({c for c, _, _ in cohorts})
    assert [(n, m["patient_id"], m["reason"]) for n in names for m in cohort_members(db, RUN, n)] == cohorts


@pytest.mark.parametrize("subject", ["9990002444", "9990000018", "S00001"])
def test_a_migrated_store_explains_a_subject_word_for_word_as_the_older_cquin(format4: Path, capsys, subject: str) -> None:  # type: ignore[no-untyped-def]
    assert run_main(capsys, "store", "migrate", "--store", str(format4)).code == 0
    ran = run_main(capsys, "explain", "latest", subject, "--store", str(format4))
    assert ran.code == 0, ran.err
    expected = (FIXTURES / f"format4-demo.explain-{subject}.txt").read_text(encoding="utf-8")
    assert " ".join(ran.out.split()) == " ".join(expected.split())


def test_the_sql_views_render_the_same_sentences_as_cquin_reads(format4: Path) -> None:
    subjects, cohorts = _old_trace(format4)
    open_store(format4).conn.close()  # migrates
    con = sqlite3.connect(format4)
    viewed = {
        (e, s, c): [d, n, r, why]
        for e, s, c, d, n, r, why in con.execute(
            "SELECT entity, subject_id, component, in_denominator, in_numerator, rule, reason FROM run_decisions"
        )
    }
    assert viewed == {(e, s, cid): rest for (e, s), old in subjects.items() for cid, *rest in old}
    assert con.execute("SELECT cohort, patient_id, reason FROM run_cohort_members ORDER BY 1, 2").fetchall() == cohorts


def test_reading_commands_ask_for_a_migration_before_reading_an_older_trace_and_change_nothing(format4: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    before = hashlib.sha256(format4.read_bytes()).hexdigest()
    assert run_main(capsys, "runs", "list", "--store", str(format4)).code == 0  # the runs themselves read as they are
    ran = run_main(capsys, "explain", "latest", "9990000018", "--store", str(format4))
    assert ran.code == 6 and "cquin store migrate" in ran.err and "Traceback" not in ran.err, ran.err
    assert hashlib.sha256(format4.read_bytes()).hexdigest() == before


def test_the_trace_takes_a_fraction_of_the_space_of_its_sentences(format4: Path) -> None:
    subjects, _ = _old_trace(format4)
    open_store(format4).conn.close()
    con = sqlite3.connect(format4)
    stored = con.execute("SELECT sum(length(vals)) + 4 * count(*) FROM run_subjects").fetchone()[0]
    words = sum(len(json.dumps(dict((cid, v) for cid, *v in old))) for old in subjects.values())
    assert stored * 3 < words


def test_trace_terms_cannot_be_changed_or_deleted(format4: Path) -> None:
    open_store(format4).conn.close()
    con = sqlite3.connect(format4)
    for sql in ("UPDATE trace_terms SET text = 'rewritten' WHERE kind = 'reason'", "DELETE FROM trace_terms"):
        with pytest.raises(sqlite3.IntegrityError, match="trace terms are permanent"):
            con.execute(sql)


def test_an_empty_reason_reads_as_empty_in_the_sql_views_too() -> None:
    from cquin.store import trace

    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE run_components (run_id TEXT, ordinal INTEGER, component TEXT)")
    trace.create_tables(con)
    trace.create_views(con)
    con.execute("INSERT INTO trace_terms (term_id, kind, text) VALUES (1, 'reason', ''), (2, 'reason', 'line %s')")
    con.execute(
        "INSERT INTO run_cohorts VALUES ('r', 'year1', 'p1', 1, ''), ('r', 'year1', 'p2', 2, '7'), ('r', 'year1', 'p3', NULL, '')"
    )
    rows = con.execute("SELECT patient_id, reason FROM run_cohort_members ORDER BY patient_id").fetchall()
    assert rows == [("p1", ""), ("p2", "line 7"), ("p3", None)]


def test_runs_whose_components_differ_are_compared_component_by_component(format4: Path) -> None:
    """A shape names components by their place in the run: two runs listing them in another order store the
    same row for different decisions, and the comparison must still see who moved."""
    from cquin.cycle.compare import _subject_pairs

    open_store(format4).conn.close()
    con = sqlite3.connect(format4)
    con.execute("PRAGMA foreign_keys = OFF")
    cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    con.execute(f"INSERT INTO runs SELECT {', '.join('?' if c == 'run_id' else c for c in cols)} FROM runs", ["B"])
    con.execute(
        """INSERT INTO run_components (run_id, ordinal, component, year, name, entity)
           SELECT 'B', CASE ordinal WHEN 0 THEN 1 WHEN 1 THEN 0 ELSE ordinal END, component, year, name, entity
           FROM run_components WHERE run_id = ?""",
        [RUN],
    )
    con.execute("INSERT INTO run_subjects SELECT 'B', entity, subject_id, shape, vals FROM run_subjects WHERE run_id = ?", [RUN])
    con.commit()
    con.close()
    db = open_store(format4, read_only=True)
    moved = list(_subject_pairs(db, RUN, "B"))
    assert moved, "the swapped components decide differently for some patients"
    for _, _, before, after in moved:
        assert before != after


def test_a_run_whose_reasons_were_split_from_sentences_verifies_and_compares_with_a_new_run_as_unchanged(
    tmp_path: Path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    """A migrated run keeps the templates split out of its sentences, a new run the evaluation's own: their rows
    differ for the same decisions, so verification and comparison read both in words."""
    from cquin.cycle.compare import _subject_pairs
    from cquin.demo import DEMO_DIR
    from cquin.runner import run_evaluation
    from cquin.store import trace
    from tests.store.legacy import write_format4_trace

    folder = tmp_path / "records"
    shutil.copytree(DEMO_DIR, folder)
    store = tmp_path / "audit.sqlite"
    old = run_evaluation(folder, store=store).run_id
    assert old is not None
    write_format4_trace(store)
    assert run_main(capsys, "store", "migrate", "--store", str(store)).code == 0
    con = sqlite3.connect(store)  # as the older cquin wrote it: a digest of the decisions in words
    con.execute("UPDATE runs SET results_sha256 = ? WHERE run_id = ?", [hashlib.sha256(b"sentences").hexdigest(), old])
    con.commit()
    con.close()
    new = run_evaluation(folder, store=store).run_id
    assert new is not None
    db = open_store(store, read_only=True)
    terms = trace.Terms(db.conn)
    assert trace.split_encoded(db.conn, terms, old) and not trace.split_encoded(db.conn, terms, new)
    changed = db.execute(
        "SELECT count(*) FROM run_subjects a JOIN run_subjects b USING (entity, subject_id) "
        "WHERE a.run_id = ? AND b.run_id = ? AND a.vals IS NOT b.vals",
        [old, new],
    ).fetchone()[0]
    assert changed > 0, "the two encodings differ row by row"
    assert list(_subject_pairs(db, old, new)) == []
    db.conn.close()
    for run_id in (old, new):
        ran = run_main(capsys, "runs", "verify", run_id, "--store", str(store))
        assert ran.code == 0 and "identical" in ran.out, ran.out + ran.err
    # A stored fact of the migrated run changed by hand: verification reads it in words and finds it.
    con = sqlite3.connect(store)
    con.execute(
        "UPDATE run_subjects SET vals = replace(vals, '2018', '2016') WHERE run_id = ? AND subject_id = '9990000018'", [old]
    )
    con.commit()
    con.close()
    ran = run_main(capsys, "runs", "verify", old, "--store", str(store))
    assert ran.code != 0 and "per-patient decisions differ" in ran.out, ran.out + ran.err


def test_a_new_run_stores_values_not_words(tmp_path: Path) -> None:
    """The reasons' words are templates in trace_terms; a subject's row holds only the values of its reasons."""
    from cquin.demo import DEMO_DIR
    from cquin.runner import run_evaluation

    store = tmp_path / "audit.sqlite"
    run_id = run_evaluation(DEMO_DIR, store=store).run_id
    con = sqlite3.connect(store)
    vals = [v for (v,) in con.execute("SELECT vals FROM run_subjects WHERE run_id = ? AND entity = 'patient'", [run_id])]
    words = ("recorded", "conversation", "baseline", "csv", "line", "snomed")
    assert vals and not any(w in v for v in vals for w in words)
    kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM trace_terms")}
    assert kinds == {"rule", "template", "shape"}
    con.close()


def test_the_sql_views_render_a_new_runs_reasons_as_cquin_reads_them_even_with_quotes_and_bars(tmp_path: Path) -> None:
    """A value may hold ``|``, ``"`` or ``\\`` (a code, an override's free-text reason): the views still read it."""
    from cquin.runner import run_evaluation
    from cquin.store import subject_decisions
    from tests.demo_overrides import demo_with_override_reason

    # Every override's reason, whichever of them changes a decision.
    folder = demo_with_override_reason(tmp_path / "records", 'moved | said "back\\slash"')
    store = tmp_path / "audit.sqlite"
    run_id = run_evaluation(folder, store=store).run_id
    db = open_store(store, read_only=True)
    read = {(e, s, d["component"]): d["reason"] for e, s, ds in subject_decisions(db, run_id) for d in ds}
    cohorts = [(n, m["patient_id"], m["reason"]) for n in ("year1", "year2") for m in cohort_members(db, run_id, n)]
    db.conn.close()
    con = sqlite3.connect(store)
    viewed = {(e, s, c): why for e, s, c, why in con.execute("SELECT entity, subject_id, component, reason FROM run_decisions")}
    members = con.execute("SELECT cohort, patient_id, reason FROM run_cohort_members ORDER BY 1, 2").fetchall()
    con.close()
    assert viewed == read
    assert members == cohorts
    assert any('by agreed override: moved | said "back\\slash"' in (why or "") for _, _, why in members)


def test_every_reason_a_new_run_keeps_reads_word_for_word_as_the_older_cquin_wrote_it(tmp_path: Path, format4: Path) -> None:
    """The demo evaluated now, its reasons made from templates and values, against the sentences the cquin
    before wrote for the same demo (the format-4 fixture): every subject, every component, every cohort member."""
    from decimal import Decimal

    from cquin.demo import DEMO_DIR
    from cquin.runner import run_evaluation
    from cquin.store import subject_decisions

    old_subjects, old_cohorts = _old_trace(format4)
    assert any("another instrument than" in str(d[4]) for ds in old_subjects.values() for d in ds)
    store = tmp_path / "audit.sqlite"
    run_id = run_evaluation(DEMO_DIR, store=store, contract_value=Decimal("12000000")).run_id
    db = open_store(store, read_only=True)
    new_subjects = {
        (e, s): [[d["component"], d["in_denominator"], d["in_numerator"], d["rule"], d["reason"]] for d in ds]
        for e, s, ds in subject_decisions(db, run_id)
    }
    names = sorted({c for c, _, _ in old_cohorts})
    new_cohorts = [(n, m["patient_id"], m["reason"]) for n in names for m in cohort_members(db, run_id, n)]
    db.conn.close()
    assert new_subjects == old_subjects
    assert new_cohorts == old_cohorts
