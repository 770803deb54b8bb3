"""Pseudonymisation: a keyed hash (HMAC-SHA256) in place of each NHS number, in identifiers and in free text."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from cquin.exceptions import UserError
from cquin.pseudonymise import Pseudonymiser, key_fingerprint, load_key, pseudonym, pseudonymise_text, register_duckdb

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"


def test_a_pseudonym_is_a_keyed_hash_not_the_number() -> None:
    p = pseudonym(KEY, "9434765919")
    assert re.fullmatch(r"p-[0-9a-f]{20}", p)
    assert "9434765919" not in p


def test_the_same_key_gives_the_same_pseudonym_for_every_written_form() -> None:
    assert pseudonym(KEY, "9434765919") == pseudonym(KEY, "943 476 5919") == pseudonym(KEY, "943-476-5919")


def test_another_key_gives_another_pseudonym() -> None:
    assert pseudonym(KEY, "9434765919") != pseudonym(OTHER_KEY, "9434765919")


def test_different_numbers_get_different_pseudonyms() -> None:
    assert len({pseudonym(KEY, f"999000{i:04d}") for i in range(2000)}) == 2000


def test_nhs_numbers_in_free_text_are_replaced_valid_or_not() -> None:
    text = "NHS number '9990022063' fails the Modulus 11 check digit; include of 999 000 0018 refused"
    out = pseudonymise_text(KEY, text)
    assert out == (
        f"NHS number '{pseudonym(KEY, '9990022063')}' fails the Modulus 11 check digit; "
        f"include of {pseudonym(KEY, '9990000018')} refused"
    )


def test_longer_codes_and_dates_in_free_text_are_left_alone() -> None:
    text = "snomed 962851000000103 recorded 2017-05-01 (conditions.csv line 1234)"
    assert pseudonymise_text(KEY, text) == text


def test_duckdb_functions_give_the_same_pseudonyms() -> None:
    con = duckdb.connect()
    register_duckdb(con, KEY)
    row = con.execute(
        "SELECT cquin_pseudonym('9434765919'), cquin_pseudonymise_text('patient 9434765919 excluded'), cquin_pseudonym(NULL)"
    ).fetchone()
    assert row == (pseudonym(KEY, "9434765919"), f"patient {pseudonym(KEY, '9434765919')} excluded", None)


def test_a_short_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("secret\n", encoding="utf-8")
    with pytest.raises(UserError, match="at least 16"):
        load_key(tmp_path / "key")


def test_a_key_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(KEY + b"\n")
    assert load_key(tmp_path / "key") == KEY


def test_the_fingerprint_names_a_key_without_revealing_it() -> None:
    assert key_fingerprint(KEY) != key_fingerprint(OTHER_KEY)
    assert KEY.decode() not in key_fingerprint(KEY)


def test_the_store_helper_pseudonymises_only_with_a_key() -> None:
    con = duckdb.connect()
    on, off = Pseudonymiser(KEY, con), Pseudonymiser(None)
    assert off.id_sql("id") == "id" and off.id("9434765919") == "9434765919" and off.fingerprint is None
    number, text = "'9434765919'", "'seen 9434765919'"
    sql = f"SELECT {on.id_sql(number)}, {on.text_sql(text)}"
    assert con.execute(sql).fetchone() == (on.id("9434765919"), on.text("seen 9434765919"))
    assert on.id("9434765919") == pseudonym(KEY, "9434765919") and on.fingerprint == key_fingerprint(KEY)


@pytest.fixture(scope="module")
def pseudonymised_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The demo evaluated into a store written with a key; (store, run id, an NHS number in the year 1 cohort)."""
    from cquin.demo import DEMO_DIR
    from cquin.runner import run_evaluation

    store = tmp_path_factory.mktemp("pseudo") / "audit.sqlite"
    plain = run_evaluation(DEMO_DIR, store=None)
    assert plain.result.trace is not None
    member = min(plain.result.trace.cohort("year1"))
    ev = run_evaluation(DEMO_DIR, store=store, pseudonymise_key=KEY)
    return store, str(ev.run_id), str(member)


def test_a_pseudonymised_store_keeps_no_nhs_number_of_a_patient(pseudonymised_run) -> None:
    import sqlite3

    store, run_id, member = pseudonymised_run
    con = sqlite3.connect(store)
    subjects = [
        r[0] for r in con.execute("SELECT subject_id FROM run_subjects WHERE run_id = ? AND entity = 'patient'", [run_id])
    ]
    assert subjects and all(s.startswith(pseudonym(KEY, member)[:2]) for s in subjects)
    assert not con.execute("SELECT count(*) FROM run_subjects WHERE vals LIKE ?", [f"%{member}%"]).fetchone()[0]
    assert not con.execute("SELECT count(*) FROM run_decisions WHERE reason LIKE ?", [f"%{member}%"]).fetchone()[0]
    assert not con.execute("SELECT count(*) FROM run_cohort_members WHERE reason LIKE ?", [f"%{member}%"]).fetchone()[0]


def test_explain_finds_a_patient_of_a_pseudonymised_run_by_nhs_number_with_the_key(pseudonymised_run) -> None:
    from cquin.runner import explain_subject

    store, run_id, member = pseudonymised_run
    explanation = explain_subject(store, run_id, member, pseudonymise_key=KEY)
    assert explanation.subject_id == pseudonym(KEY, member)
    assert any(d["component"] == "y1.ltc_identification" and d["in_numerator"] for d in explanation.decisions)
    assert explain_subject(store, run_id, pseudonym(KEY, member)).decisions == explanation.decisions  # or by pseudonym


def test_explain_of_a_pseudonymised_run_by_nhs_number_without_the_key_says_what_to_give(pseudonymised_run) -> None:
    from cquin.exceptions import StoreError
    from cquin.runner import explain_subject

    store, run_id, member = pseudonymised_run
    with pytest.raises(StoreError, match="keeps pseudonyms, not NHS numbers.*--pseudonymise KEYFILE"):
        explain_subject(store, run_id, member)
    with pytest.raises(StoreError, match="pseudonymised with another key"):
        explain_subject(store, run_id, member, pseudonymise_key=OTHER_KEY)
