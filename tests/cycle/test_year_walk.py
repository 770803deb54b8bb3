"""A full commissioning year, walked through as the commissioner and the provider would (issue 19, "Done when").

Evaluate at the ends of Q2, Q3 and Q4 of Year 1, compare the runs, sign off (the plan accepted, the Year 1
cohort agreed, the Q4 figures agreed), evaluate at the end of the scheme, reconcile the provider's return
against it where the return differs in three named ways, and sign the final run off; a signed-off run then
refuses to change.

The small provider (tests/cycle/conftest.py), by hand, with a £1,000,000 contract (£2,500 a year; the plan is
25% = £625, staff training 30% = £750, conversations 50% = £1,250, improvement 50% = £1,250):

  as of 30 Sep 2017: LTC 018, 026 of 4 served; baseline 018 only: 1/2 = 50% pays 50%; cohort {018};
                     staff S1 of S1, S2 trained: 1/2 pays 40%; plan agreed 15 Sep 2017, recording system not yet
                     live (10 Jan 2018): plan only, 50%, provisional; conversations 1/1.
  as of 31 Dec 2017: + 034 (hypertension 20 Nov 2017); baselines 018, 026 (10 Oct 2017), 034 (1 Dec 2017): 3/3;
                     cohort {018, 026}; conversations 1/2 (026's is in May 2018).
  as of 31 Mar 2018: the recording system is live: the plan pays 100% (provisional until the commissioner says).
  all records:       conversations 2/2; improvement: 018 level 2 -> 3, 026 1 -> 1: 1/2 pays 50%.

The provider's return differs from the commissioner's final evaluation in three known ways:
  1. an override the commissioner never agreed: 034 included in the Year 1 cohort;
  2. a training record the commissioner's copy lacks: S2 trained on 30 Mar 2018;
  3. a figure typed over after cquin wrote the return: LTC patients identified 3 -> 4.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from cquin.cycle.compare import compare_runs
from cquin.cycle.reconcile import reconcile
from cquin.cycle.signoff import delete_run, record_signoff, signoff_state
from cquin.exceptions import StoreError, UserError
from cquin.render.files import write_submission
from cquin.runner import run_evaluation
from cquin.store import open_store

from .conftest import RECORDS, write_records

Q2, Q3, Q4 = dt.date(2017, 9, 30), dt.date(2017, 12, 31), dt.date(2018, 3, 31)


def evaluate(records: Path, store: Path, **kw: object) -> str:
    ev = run_evaluation(records, contract_value=Decimal("1000000"), store=store, **kw)  # type: ignore[arg-type]
    assert ev.run_id is not None
    return ev.run_id


def components(store: Path, run_id: str) -> dict[str, tuple[int | None, int | None, str]]:
    rows = open_store(store).query(
        "SELECT component, numerator, denominator, payment FROM run_components WHERE run_id = ? ORDER BY ordinal", [run_id]
    )
    return {r["component"]: (r["numerator"], r["denominator"], r["payment"]) for r in rows}


def figure(cmp, item: str, measure: str):  # type: ignore[no-untyped-def]
    return next(f for f in cmp.figures if f.item == item and f.measure == measure)


def test_a_full_year_evaluated_compared_signed_off_and_reconciled(tmp_path: Path):
    store = tmp_path / "audit.sqlite"
    records = write_records(tmp_path / "commissioner")

    # -- evaluate at each quarter end
    q2, q3, q4 = (evaluate(records, store, as_of=day) for day in (Q2, Q3, Q4))
    assert components(store, q2) == {
        "y1.plan": (None, None, "312.50"),
        "y1.ltc_identification": (2, 4, "375.00"),
        "y1.activation_assessment": (1, 2, "375.00"),
        "y1.staff_training": (1, 2, "300.00"),
        # Issue 16 item 6: before Year 2 begins (1 Apr 2018) it is "not started": no counts, no money.
        "y2.conversations": (None, None, "0.00"),
        "y2.activation_improvement": (None, None, "0.00"),
    }
    assert components(store, q3)["y1.activation_assessment"] == (3, 3, "750.00")
    assert components(store, q3)["y2.conversations"] == (None, None, "0.00")
    assert components(store, q4)["y1.plan"] == (None, None, "625.00")

    # -- compare: what moved between the quarters, and why
    first = compare_runs(store, q2, q3)
    assert first.differs_in == ["as-of date"]
    assert [m.subject_id for m in figure(first, "y1.ltc_identification", "numerator").moved_in] == ["9990000034"]
    assert [m.subject_id for m in figure(first, "cohort.year1", "members").moved_in] == ["9990000026"]
    assert {m.why for m in figure(first, "y1.activation_assessment", "numerator").moves} == {
        "record dated after 2017-09-30 (counted as of 2017-12-31)"
    }
    second = compare_runs(store, q3, q4)
    assert [c.component for c in second.components if c.changed] == ["y1.plan"]
    assert all(not f.moves for f in second.figures)

    # -- sign off: the plan received and accepted, the Year 1 cohort agreed, the Q4 figures agreed
    record_signoff(
        store, q4, party="commissioner", by="Chris Commissioner", decision="yes", subject="plan", on=dt.date(2018, 3, 20)
    )
    record_signoff(store, q4, party="commissioner", by="Chris Commissioner", decision="agree", subject="cohort.year1", on=Q4)
    _, state = record_signoff(store, q4, party="provider", by="Pat Analyst", decision="agree", on=dt.date(2018, 4, 10))
    assert state.status == "agreed by the provider; awaiting the commissioner"

    # -- the final evaluation reads the plan's acceptance and keeps the agreed cohort
    final = evaluate(records, store)
    done = components(store, final)
    assert done["y2.conversations"] == (2, 2, "1250.00")
    assert done["y2.activation_improvement"] == (1, 2, "625.00")
    band = next(open_store(store).query("SELECT band FROM run_components WHERE run_id = ? AND component = 'y1.plan'", [final]))
    assert band["band"] == "Plan agreed and recording system in place"
    assert [(c, matches) for c, _, matches in signoff_state(open_store(store), final).cohort_agreements] == [("year1", True)]

    # -- the provider's return, from the provider's own records, with one figure typed over
    training = RECORDS["training.csv"] + "\nS2,2018-03-30,Care and support planning"
    overrides = "patient_id,cohort,action,reason,agreed_on\n9990000034,year1,include,clinical judgement,2018-01-05"
    provider_run = evaluate(write_records(tmp_path / "provider", training_csv=training, overrides_csv=overrides), store)
    returned = tmp_path / "return.csv"
    write_submission(store, provider_run, returned, disclosure_control=False)
    text = returned.read_text()
    assert "y1.ltc_identification,numerator,3,\n" in text
    returned.write_text(text.replace("y1.ltc_identification,numerator,3,\n", "y1.ltc_identification,numerator,4,\n"))

    rec = reconcile(store, final, returned)
    differing = {(f.item, f.measure): f for f in rec.differences}
    # The money totals and the distances to the next band (issue 16) follow from the figures below.
    derived = {k for k in differing if k[1] in ("next_band", "more_needed", "next_band_worth") or k[0] == "total"}
    derived |= {k for k in differing if k[0].startswith("year.") and k[1] == "earned"}
    assert derived >= {("total", "earned"), ("y1.staff_training", "more_needed")}
    assert set(differing) - derived == {
        # 1. the unagreed override: 034 in the cohorts and in the conversations denominator
        ("cohort.year1", "patients"),
        ("cohort.year2", "patients"),
        ("y2.conversations", "denominator"),
        ("y2.conversations", "percent"),
        ("y2.conversations", "band"),
        ("y2.conversations", "payment_fraction"),
        ("y2.conversations", "payment"),
        # 2. S2's training record
        ("staff.trained_staff", "staff"),
        ("y1.staff_training", "numerator"),
        ("y1.staff_training", "percent"),
        ("y1.staff_training", "band"),
        ("y1.staff_training", "payment_fraction"),
        ("y1.staff_training", "payment"),
        # 3. the figure typed over
        ("y1.ltc_identification", "numerator"),
    }
    cohort = differing[("cohort.year1", "patients")]
    assert (cohort.returned, cohort.evaluated) == ("3", "2")
    assert [(m.subject_id, m.direction, m.why) for m in cohort.moves] == [("9990000034", "out", "override")]
    assert "included by agreed override: clinical judgement" in cohort.moves[0].before
    trained = differing[("y1.staff_training", "numerator")]
    assert [(m.subject_id, m.entity, m.why) for m in trained.moves] == [("S2", "staff", "record added or changed")]
    assert "completed 2018-03-30" in trained.moves[0].before
    assert "no training record completed by 2018-03-31" in trained.moves[0].after
    assert differing[("y1.staff_training", "payment")].explanation == [
        "follows from the numerator 2 in the return, 1 in the evaluation"
    ]
    typed = differing[("y1.ltc_identification", "numerator")]
    assert (typed.returned, typed.evaluated) == ("4", "3") and not typed.moves
    assert typed.explanation == [
        f"the return's figure is not what run {provider_run} produced (3): it was changed after cquin wrote the return"
    ]

    # -- sign the final run off; from then on it cannot change
    record_signoff(store, final, party="provider", by="Pat Analyst", decision="agree", on=dt.date(2019, 4, 25))
    _, state = record_signoff(
        store, final, party="commissioner", by="Chris Commissioner", decision="agree", on=dt.date(2019, 4, 28)
    )
    assert state.signed_off
    with pytest.raises(StoreError, match="cannot be deleted"):
        delete_run(store, final)
    with pytest.raises(sqlite3.IntegrityError, match="signed off"):
        open_store(store).conn.execute("UPDATE run_components SET payment = '1250.00' WHERE run_id = ?", [final])
    assert components(store, final) == done

    # -- a correction is a new run that says what it supersedes; the signed-off run stays as it was
    corrected = evaluate(records, store, supersedes=final)
    assert signoff_state(open_store(store), corrected).supersedes == final
    assert signoff_state(open_store(store), final).superseded_by == [corrected]
    with pytest.raises(UserError, match="superseded"):
        record_signoff(store, final, party="provider", by="Pat Analyst", decision="dispute")
    assert components(store, final) == done
