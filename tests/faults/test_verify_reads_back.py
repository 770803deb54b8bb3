"""``runs verify`` reads back every stored row it vouches for: "identical" only about data it read and compared."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from tests.faults.helpers import run_main


@pytest.fixture
def store_copy(stored_demo, tmp_path):  # type: ignore[no-untyped-def]
    source, run_id = stored_demo
    store = tmp_path / "audit.sqlite"
    shutil.copy(source, store)
    return store, run_id


def test_an_untouched_run_verifies_as_identical(store_copy, capsys):
    store, run_id = store_copy
    ran = run_main(capsys, "runs", "verify", run_id, "--store", str(store))
    assert ran.code == 0 and "identical" in ran.out, ran.out + ran.err


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (  # one patient given the decisions (the shape) of another
            "UPDATE run_subjects SET shape = (SELECT max(shape) FROM run_subjects) WHERE entity = 'patient' AND subject_id = "
            "(SELECT min(subject_id) FROM run_subjects WHERE entity = 'patient' AND shape < (SELECT max(shape) FROM run_subjects))",
            "per-patient decisions",
        ),
        (
            "DELETE FROM run_cohorts WHERE (cohort, patient_id) = "
            "(SELECT cohort, patient_id FROM run_cohorts ORDER BY cohort, patient_id LIMIT 1)",
            "cohort lists",
        ),
        ("UPDATE run_components SET payment = '999.00' WHERE ordinal = 0", "stored"),
    ],
    ids=["a decision", "a cohort member", "a payment"],
)
def test_a_stored_row_changed_behind_the_digest_is_not_verified(store_copy, capsys, change, named):
    store, run_id = store_copy
    con = sqlite3.connect(store)
    assert con.execute(change).rowcount == 1
    con.commit()
    con.close()
    ran = run_main(capsys, "runs", "verify", run_id, "--store", str(store))
    assert ran.code == 1, ran.out + ran.err
    assert "NOT verified" in ran.out and named in ran.out and "identical" not in ran.out, ran.out
