"""A store's trace written back in the layout of formats 1-4, as cquin wrote it before the trace was kept as facts.

Tests that carry an older store forward start from a store this cquin wrote and rewrite its trace the old
way: one row per subject with a JSON object of ``[in_denominator, in_numerator, rule, reason]`` per
component, each cohort member with its reason in words, and the old ``run_decisions`` view.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cquin.store import cohort_members, open_store, subject_decisions


def write_format4_trace(path: Path) -> None:
    db = open_store(path, read_only=True)
    runs = [r[0] for r in db.execute("SELECT run_id FROM runs").fetchall()]
    subjects, cohorts = [], []
    for run_id in runs:
        for entity, sid, decisions in subject_decisions(db, run_id):
            obj = {d["component"]: [d["in_denominator"], d["in_numerator"], d["rule"], d["reason"]] for d in decisions}
            subjects.append((run_id, entity, sid, json.dumps(obj, separators=(",", ":"))))
        for name in json.loads(db.execute("SELECT cohorts FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] or "{}"):
            cohorts += [(run_id, name, m["patient_id"], m["reason"]) for m in cohort_members(db, run_id, name)]
    db.conn.close()
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA foreign_keys = OFF")
    for sql in (
        "DROP VIEW run_decisions",
        "DROP VIEW run_cohort_members",
        "DROP TABLE run_subjects",
        "DROP TABLE run_cohorts",
        "DROP TABLE trace_terms",
        "CREATE TABLE run_cohorts (run_id TEXT REFERENCES runs(run_id), cohort TEXT, patient_id TEXT, reason TEXT)",
        "CREATE TABLE run_subjects (run_id TEXT REFERENCES runs(run_id), entity TEXT, subject_id TEXT, decisions TEXT)",
        "CREATE INDEX idx_subjects_subject ON run_subjects (run_id, subject_id)",
        "CREATE INDEX idx_run_cohorts_run ON run_cohorts (run_id)",
        """CREATE VIEW run_decisions AS
           SELECT s.run_id, j.key AS component, s.entity, s.subject_id,
                  json_extract(j.value, '$[0]') AS in_denominator, json_extract(j.value, '$[1]') AS in_numerator,
                  json_extract(j.value, '$[2]') AS rule, json_extract(j.value, '$[3]') AS reason
           FROM run_subjects s, json_each(s.decisions) j""",
    ):
        con.execute(sql)
    con.executemany("INSERT INTO run_subjects VALUES (?, ?, ?, ?)", subjects)
    con.executemany("INSERT INTO run_cohorts VALUES (?, ?, ?, ?)", cohorts)
    con.execute("PRAGMA user_version = 4")
    con.close()
