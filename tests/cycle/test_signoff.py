"""Sign-off, recorded: who agreed what, when, against which results; signed-off runs are kept exactly as they were.

The indicator: returns are "submitted via NHS Digital SDCS following locally agreed sign off processes by the
commissioner"; "local commissioners will need to confirm whether the plan has been received and accepted by the
end of the year (yes/no)"; the Year 2 cohort is one the provider "will identify and agree ... with the commissioner".
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cquin.cli import app
from cquin.cycle.signoff import delete_run, record_signoff, signoff_state, signoff_statuses
from cquin.exceptions import StoreError, UserError
from cquin.render.files import write_submission
from cquin.render.runs import render_run_list
from cquin.runner import run_evaluation, verify_run
from cquin.store import list_runs, open_store

from .conftest import write_records

VALUE = Decimal("1000000")


def evaluate(records: Path, store: Path, **kw: object) -> str:
    ev = run_evaluation(records, contract_value=VALUE, store=store, **kw)  # type: ignore[arg-type]
    assert ev.run_id is not None
    return ev.run_id


def plan(store: Path, run_id: str) -> dict[str, str]:
    row = next(
        open_store(store).query("SELECT band, payment FROM run_components WHERE run_id = ? AND component = 'y1.plan'", [run_id])
    )
    return dict(row)


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One stored run nobody has signed off (for tests that record nothing)."""
    folder = tmp_path_factory.mktemp("one")
    store = folder / "audit.sqlite"
    return store, evaluate(write_records(folder / "records"), store)


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One stored run the commissioner has signed off (for tests that try, and fail, to change it)."""
    folder = tmp_path_factory.mktemp("signed")
    store = folder / "audit.sqlite"
    rid = evaluate(write_records(folder / "records"), store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="agree")
    return store, rid


# ----------------------------------------------------------------------------- recording


def test_a_signoff_records_who_agreed_what_when_against_the_results_hash(records: Path, store: Path):
    rid = evaluate(records, store)
    saved, state = record_signoff(store, rid, party="provider", by="Pat Analyst", decision="agree", on=dt.date(2018, 4, 20))
    results_hash = next(open_store(store).query("SELECT results_sha256 FROM runs WHERE run_id = ?", [rid]))["results_sha256"]
    assert (saved.party, saved.signed_by, saved.decision, saved.decided_on) == ("provider", "Pat Analyst", "agree", "2018-04-20")
    assert saved.digest == results_hash and saved.provider_code == "RYX"
    assert state.status == "agreed by the provider; awaiting the commissioner"
    assert not state.signed_off and state.frozen


def test_both_parties_agreeing_signs_the_run_off(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="provider", by="Pat Analyst", decision="agree")
    _, state = record_signoff(store, rid, party="commissioner", by="Chris Commissioner", decision="agree", note="checked")
    assert state.signed_off and state.status == "signed off"
    assert "Chris Commissioner" in state.summary and "checked" in state.summary


def test_a_dispute_is_recorded_with_its_note_and_the_run_is_not_signed_off(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="provider", by="Pat Analyst", decision="agree")
    _, state = record_signoff(store, rid, party="commissioner", by="Chris", decision="dispute", note="staff list incomplete")
    assert not state.signed_off
    assert state.status == "disputed by the commissioner"
    assert "DISPUTED by the commissioner (Chris" in state.summary and "staff list incomplete" in state.summary


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"party": "auditor", "by": "X", "decision": "agree"}, "provider or commissioner"),
        ({"party": "provider", "by": "  ", "decision": "agree"}, "name of the person"),
        ({"party": "provider", "by": "X", "decision": "maybe"}, "agree or dispute"),
        ({"party": "provider", "by": "X", "decision": "agree", "subject": "money"}, "can be signed off on results"),
        ({"party": "provider", "by": "X", "decision": "yes", "subject": "plan"}, "recorded by the commissioner"),
    ],
)
def test_a_signoff_that_does_not_make_sense_is_refused_and_nothing_is_recorded(one_run: tuple[Path, str], kw, message):
    store, rid = one_run
    with pytest.raises(UserError, match=message):
        record_signoff(store, rid, **kw)
    assert not signoff_state(open_store(store), rid).decisions


# ----------------------------------------------------------------------------- a signed-off run is kept


def test_a_signed_off_run_cannot_be_deleted(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="provider", by="Pat", decision="agree")
    with pytest.raises(StoreError, match="cannot be deleted: it has 1 sign-off"):
        delete_run(store, rid)
    assert list(open_store(store).query("SELECT run_id FROM runs WHERE run_id = ?", [rid]))


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE runs SET totals = '{}' WHERE run_id = ?",
        "DELETE FROM runs WHERE run_id = ?",
        "UPDATE run_components SET payment = '999999.00' WHERE run_id = ?",
        "DELETE FROM run_subjects WHERE run_id = ?",
        "DELETE FROM run_cohorts WHERE run_id = ?",
        "INSERT INTO run_cohorts (run_id, cohort, patient_id, reason) VALUES (?, 'year1', '9990000034', 'added later')",
    ],
)
def test_a_signed_off_run_refuses_change_even_from_sql(signed_run: tuple[Path, str], sql: str):
    store, rid = signed_run
    db = open_store(store)
    with pytest.raises(sqlite3.IntegrityError, match="signed off"):
        db.conn.execute(sql, [rid])


def test_signoff_records_themselves_are_permanent(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="dispute")
    db = open_store(store)
    for sql in ("UPDATE run_signoffs SET decision = 'agree'", "DELETE FROM run_signoffs"):
        with pytest.raises(sqlite3.IntegrityError, match="permanent"):
            db.conn.execute(sql)


def test_a_run_nobody_signed_off_can_be_deleted_completely(records: Path, store: Path):
    keep = evaluate(records, store)
    rid = evaluate(records, store)
    delete_run(store, rid)
    db = open_store(store)
    for table in ("runs", "run_components", "run_subjects", "run_cohorts", "run_inputs"):
        assert not list(db.query(f"SELECT 1 FROM {table} WHERE run_id = ?", [rid])), table
        assert list(db.query(f"SELECT 1 FROM {table} WHERE run_id = ?", [keep])), table


def test_other_runs_stay_changeable_when_one_is_signed_off(records: Path, store: Path):
    signed = evaluate(records, store)
    other = evaluate(records, store)
    record_signoff(store, signed, party="provider", by="Pat", decision="agree")
    delete_run(store, other)


# ----------------------------------------------------------------------------- supersession


def test_re_evaluating_makes_a_new_run_that_says_what_it_supersedes(records: Path, store: Path):
    old = evaluate(records, store)
    record_signoff(store, old, party="commissioner", by="Chris", decision="dispute", note="conversations missing")
    new = evaluate(records, store, supersedes=old[:10] + old[10:])
    db = open_store(store)
    assert json.loads(next(db.query("SELECT parameters FROM runs WHERE run_id = ?", [new]))["parameters"])["supersedes"] == old
    assert signoff_state(db, new).supersedes == old and f"supersedes run {old}" in signoff_state(db, new).summary
    assert signoff_state(db, old).superseded_by == [new] and f"SUPERSEDED by run {new}" in signoff_state(db, old).summary


def test_a_superseded_run_cannot_be_signed_off(records: Path, store: Path):
    old = evaluate(records, store)
    new = evaluate(records, store, supersedes=old)
    with pytest.raises(UserError, match=f"superseded by run {new}"):
        record_signoff(store, old, party="provider", by="Pat", decision="agree")


def test_superseding_a_run_that_is_not_there_is_refused_before_anything_is_written(records: Path, store: Path):
    evaluate(records, store)
    with pytest.raises(StoreError, match="no run 'nope'"):
        evaluate(records, store, supersedes="nope")
    assert len(list(open_store(store).query("SELECT run_id FROM runs"))) == 1


# ----------------------------------------------------------------------------- the plan: received and accepted (yes/no)


def test_until_the_commissioner_confirms_the_plan_its_level_is_provisional(records: Path, store: Path):
    rid = evaluate(records, store)
    got = plan(store, rid)
    assert got["band"] == "Plan agreed and recording system in place (provisional: awaiting the commissioner's confirmation)"
    assert got["payment"] == "625.00"  # £1m x 0.25% x 25%


def test_a_plan_accepted_by_the_end_of_year_1_pays_and_is_no_longer_provisional(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="yes", subject="plan", on=dt.date(2018, 3, 20))
    again = evaluate(records, store)
    assert plan(store, again) == {"band": "Plan agreed and recording system in place", "payment": "625.00"}


def test_a_plan_the_commissioner_did_not_accept_is_no_plan(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="no", subject="plan", on=dt.date(2018, 3, 20))
    assert plan(store, evaluate(records, store)) == {"band": "No plan", "payment": "0.00"}


def test_a_plan_accepted_only_after_year_1_is_no_plan(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="yes", subject="plan", on=dt.date(2018, 4, 2))
    assert plan(store, evaluate(records, store)) == {"band": "No plan", "payment": "0.00"}


def test_a_later_yes_keeps_the_date_of_the_first_acceptance(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="yes", subject="plan", on=dt.date(2018, 3, 1))
    record_signoff(store, rid, party="commissioner", by="Sam", decision="yes", subject="plan", on=dt.date(2018, 5, 1))
    assert plan(store, evaluate(records, store))["band"] == "Plan agreed and recording system in place"


def test_an_evaluation_as_of_a_date_before_the_confirmation_does_not_know_it(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="no", subject="plan", on=dt.date(2018, 3, 20))
    earlier = evaluate(records, store, as_of=dt.date(2017, 12, 31))
    # Known on 31 Dec 2017: the plan (15 Sep 2017), not the recording system (10 Jan 2018), not the refusal (20 Mar 2018).
    assert (
        plan(store, earlier)["band"]
        == "Plan agreed, recording system not in place (provisional: awaiting the commissioner's confirmation)"
    )
    assert (
        "not yet recorded"
        in next(open_store(store).query("SELECT note FROM run_components WHERE run_id = ? AND component = 'y1.plan'", [earlier]))[
            "note"
        ]
    )


def test_the_confirmation_a_run_used_is_kept_with_it_so_verify_reproduces_it(records: Path, store: Path):
    first = evaluate(records, store)
    record_signoff(store, first, party="commissioner", by="Chris", decision="yes", subject="plan", on=dt.date(2018, 3, 20))
    rid = evaluate(records, store)
    record_signoff(store, first, party="commissioner", by="Chris", decision="no", subject="plan", on=dt.date(2018, 3, 25))
    assert verify_run(store, rid).identical


def test_the_confirmation_is_for_the_provider_not_the_run(records: Path, store: Path, tmp_path: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="no", subject="plan", on=dt.date(2018, 3, 20))
    other = write_records(
        tmp_path / "other",
        provider_csv="provider_code,provider_name,plan_agreed_on,recording_system_live_on\nRZZ,Other Trust,2017-09-15,2018-01-10",
    )
    assert plan(store, evaluate(other, store))["band"].endswith("(provisional: awaiting the commissioner's confirmation)")


# ----------------------------------------------------------------------------- cohorts agreed


def test_a_cohort_agreement_is_recorded_against_the_cohort_members(records: Path, store: Path, tmp_path: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="agree", subject="cohort.year1")
    same = evaluate(records, store)
    assert [(c, m) for c, _, m in signoff_state(open_store(store), same).cohort_agreements] == [("year1", True)]
    changed = write_records(
        tmp_path / "changed",
        overrides_csv="patient_id,cohort,action,reason,agreed_on\n9990000034,year1,include,clinical judgement,2018-01-05",
    )
    moved = evaluate(changed, store)
    state = signoff_state(open_store(store), moved)
    assert [(c, m) for c, _, m in state.cohort_agreements] == [("year1", False)]
    assert "cohort year1: agreed by the commissioner" in "\n".join(state.lines())
    assert "DIFFERS from the one agreed" in "\n".join(state.lines())


# ----------------------------------------------------------------------------- every output shows it


def test_the_submission_says_whether_the_run_is_signed_off(records: Path, store: Path, tmp_path: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="provider", by="Pat", decision="agree", on=dt.date(2018, 4, 20))
    out = tmp_path / "submission.csv"
    write_submission(store, rid, out)
    text = out.read_text()
    assert "signoff,status,agreed by the provider; awaiting the commissioner," in text
    assert 'signoff.provider,decision,"agreed by the provider (Pat, 2018-04-20)",' in text
    assert "signoff.commissioner,decision,none recorded," in text


def test_the_cli_records_a_signoff_and_every_run_view_shows_it(records: Path, store: Path, tmp_path: Path):
    cli = CliRunner()
    rid = evaluate(records, store)
    got = cli.invoke(
        app,
        [
            "signoff",
            rid,
            "--as",
            "commissioner",
            "--by",
            "Chris C",
            "--decision",
            "agree",
            "--on",
            "2018-04-28",
            "--store",
            str(store),
        ],
    )
    assert got.exit_code == 0, got.output
    assert "the commissioner (Chris C) agrees run" in got.output
    for args in (["runs", "show", rid], ["runs", "signoff", rid], ["explain", rid, "9990000018"]):
        shown = cli.invoke(app, [*args, "--store", str(store)])
        assert shown.exit_code == 0, shown.output
        assert "agreed by the commissioner; awaiting the provider" in shown.output, args
    wide = Console(width=400, record=True)
    db = open_store(store)
    render_run_list(wide, list_runs(db), signoff_statuses(db))
    assert "agreed by the commissioner; awaiting the provider" in wide.export_text()
    page = tmp_path / "report.html"
    assert cli.invoke(app, ["report", rid, "--out", str(page), "--store", str(store)]).exit_code == 0
    assert "sign-off: agreed by the commissioner; awaiting the provider" in page.read_text()


def test_evaluate_shows_the_new_run_is_not_signed_off_and_what_it_supersedes(records: Path, store: Path):
    cli = CliRunner()
    old = evaluate(records, store)
    got = cli.invoke(app, ["evaluate", str(records), "--store", str(store), "--supersedes", old, "--format", "json"])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    assert doc["signoff"]["status"] == "not signed off" and doc["signoff"]["supersedes"] == old
    table = cli.invoke(app, ["evaluate", str(records), "--store", str(store)], terminal_width=200)
    assert "sign-off: not signed off" in table.output


def test_deleting_a_signed_off_run_from_the_cli_is_a_clear_error(records: Path, store: Path):
    from cquin.cli import main

    rid = evaluate(records, store)
    record_signoff(store, rid, party="provider", by="Pat", decision="agree")
    got = CliRunner().invoke(app, ["runs", "delete", rid, "--store", str(store)])
    assert isinstance(got.exception, StoreError) and "cannot be deleted" in str(got.exception)
    assert main  # the console entry point turns StoreError into exit code 6 (tested with the other errors)


def test_a_format_change_keeps_the_guards_on_a_signed_off_run(records: Path, store: Path):
    rid = evaluate(records, store)
    record_signoff(store, rid, party="commissioner", by="Chris", decision="agree")
    db = open_store(store)
    db.conn.execute("PRAGMA user_version = 2")  # as a store written before sign-offs existed would read
    db.conn.close()
    reopened = open_store(store)
    assert reopened.conn.execute("PRAGMA user_version").fetchone()[0] >= 3
    with pytest.raises(sqlite3.IntegrityError, match="signed off"):
        reopened.conn.execute("DELETE FROM run_components WHERE run_id = ?", [rid])
    assert signoff_state(reopened, rid).frozen
