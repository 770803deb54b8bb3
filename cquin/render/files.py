"""The files the parties exchange, written from a stored run: the cohort list and the aggregate submission.

Both read the run back from the audit store (opened read-only), so what they say is what the store keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cquin.store import load_run, open_store


def write_cohort(store: Path, run_id: str, year: int, out: Path) -> int:
    """Write a cohort list CSV (NHS number and why each patient is in); returns the number of patients.

    The list names patients, for the care teams: it is not an aggregate, so
    disclosure control does not apply; every cell is still made formula-safe.
    """
    from cquin.engine.evidence import PSEUDONYMOUS_MARK
    from cquin.outfile import safe_cell, spreadsheet_csv
    from cquin.store import cohort_members, evidence_missing

    db = open_store(store, read_only=True)
    run = load_run(db, run_id).run
    name = f"year{year}"
    n = 0
    pseudonymous = any(m.startswith(PSEUDONYMOUS_MARK) for m in evidence_missing(run))
    # NHS numbers: owner-only (0600), even if the file existed with wider access.
    with spreadsheet_csv(out, identifiable=True) as w:
        w.writerow(["pseudonymous_patient_id" if pseudonymous else "nhs_number", "cohort", "why"])
        for row in cohort_members(db, run["run_id"], name):
            w.writerow([safe_cell(row["patient_id"]), name, safe_cell(row["reason"])])
            n += 1
    return n


def write_submission(store: Path, run_id: str, out: Path, *, disclosure_control: bool = False) -> int:
    """Write the aggregate return the provider submits for payment; returns its number of rows.

    Always exact: the parties to the contract exchange the figures the payment is
    decided on, so the commissioner can check every band (disclosure control is
    for publication, see :mod:`cquin.disclosure`).  It carries counts, bands and
    money only, never a patient identifier: no NHS numbers, no milestone details
    (which quote counts only anyway), no override notes.  UTF-8 with BOM.

    ``disclosure_control`` exists only so a return someone published under
    disclosure control can be reconciled like with like (:mod:`cquin.cycle.reconcile`):
    it publishes counts of patients (never staff counts or money) and marks each
    in the ``disclosure`` column.  ``cquin submission`` never sets it.
    """
    import json

    from cquin.disclosure import RULE_TEXT, applies_to, publish, published_percent
    from cquin.engine.outcome import NO_CONTRACT_VALUE, NextStep, basis_from_stored
    from cquin.outfile import check_out, safe_cell, spreadsheet_csv
    from cquin.store import evidence_missing, stored_data_quality

    check_out(out)
    db = open_store(store, read_only=True)
    stored = load_run(db, run_id)
    run = stored.run
    basis = basis_from_stored(run, stored.components)

    control = disclosure_control
    marks: dict[int, str] = {}

    def counted(item: str, measure: str, n: int | None, entity: str | None) -> tuple[str, str, str]:
        p = publish(n, control=applies_to(entity, control))
        if p.marker:
            marks[len(rows)] = p.marker
        return (item, measure, p.text)

    quality = stored_data_quality(db, run["run_id"]) or {"status": "not recorded", "message": ""}
    rows: list[tuple[str, str, str]] = [
        ("data_quality_check", "status", quality["status"]),  # the verdict on the data comes first
        *(("evidence_missing", "", m) for m in evidence_missing(run)),  # then what is missing
        ("run_id", "", run["run_id"]),
        ("ruleset", "", f"{run['ruleset_id']} {run['ruleset_version']}"),
        ("ruleset_sha256", "", run["ruleset_sha256"]),
        (
            "disclosure_control",
            "",
            "applied" if control else "not applied: exact figures (the figures the payment is decided on)",
        ),
        ("results_sha256", "", run["results_sha256"]),
        *((item, measure, value) for item, measure, value, _ in signoff_rows(db, run["run_id"])),
        ("as_of", "", run["as_of"] or "all records"),
        ("weighting", "percent_of_contract_value", basis.weighting_percent),
    ]
    if quality.get("message"):
        marks[0] = quality["message"]
    if control:
        marks[[r[0] for r in rows].index("disclosure_control")] = RULE_TEXT
    for y in basis.years:
        rows.append(
            (f"year.{y.year}", "contract_value", NO_CONTRACT_VALUE if y.contract_value is None else f"{y.contract_value:.2f}")
        )
        rows.append((f"year.{y.year}", "value", NO_CONTRACT_VALUE if y.value is None else f"{y.value:.2f}"))
        rows.append((f"year.{y.year}", "available", NO_CONTRACT_VALUE if y.available is None else f"{y.available:.2f}"))
        rows.append((f"year.{y.year}", "earned", NO_CONTRACT_VALUE if y.earned is None else f"{y.earned:.2f}"))
        if y.status:
            rows.append((f"year.{y.year}", "status", y.status))
    rows.append(("total", "available", NO_CONTRACT_VALUE if basis.available is None else f"{basis.available:.2f}"))
    rows.append(("total", "earned", NO_CONTRACT_VALUE if basis.earned is None else f"{basis.earned:.2f}"))
    for c in stored.components:
        cid = c["component"]
        entity = c.get("entity")
        rows.append(counted(cid, "numerator", c["numerator"], entity))
        rows.append(counted(cid, "denominator", c["denominator"], entity))
        if applies_to(entity, control) and c["numerator"] is not None:
            pct = published_percent(c["numerator"], c["denominator"], control=True)
            if pct is None:
                marks[len(rows)] = "not shown: a count is suppressed"
            rows.append((cid, "percent", pct or ""))
        else:
            rows.append((cid, "percent", c["percent"] or ""))
        rows.append((cid, "band", c["band"]))
        rows.append((cid, "payment_fraction", c["payment_fraction"]))
        given = basis.year(c["year"]).contract_value is not None
        rows.append((cid, "available", c["available"] if given else NO_CONTRACT_VALUE))
        rows.append((cid, "payment", c["payment"] if given else NO_CONTRACT_VALUE))
        step = NextStep.from_stored(c)
        if step is not None:
            rows.append((cid, "next_band", step.band))
            rows.append(counted(cid, "more_needed", step.more_needed, entity))
            rows.append((cid, "next_band_worth", NO_CONTRACT_VALUE if step.worth is None else f"{step.worth:.2f}"))
    for cohort_name, n in json.loads(run["cohorts"]).items():
        rows.append(counted(f"cohort.{cohort_name}", "patients", n, "patient"))
    pops = json.loads(run["populations"])
    ruleset = json.loads(run["ruleset_json"])
    for pid, pop in ruleset["populations"].items():
        if pop["entity"] == "staff" and pid in pops:
            rows.append((f"staff.{pid}", "staff", str(pops[pid])))
    for m in stored.milestones:
        rows.append((m["milestone"], "status", m["status"]))
    with spreadsheet_csv(out) as w:
        w.writerow(["item", "measure", "value", "disclosure"])
        for n, row in enumerate(rows):
            w.writerow([safe_cell(x) for x in (*row, marks.get(n, ""))])
    return len(rows)


def signoff_rows(db: Any, run_id: str) -> list[tuple[str, str, str, str]]:
    """The submission's sign-off rows: the state, then each party's latest decision on the results."""
    from cquin.cycle.signoff import PARTIES, signoff_state

    state = signoff_state(db, run_id)
    rows = [("signoff", "status", state.status, "")]
    for party in PARTIES:
        s = state.latest("results", party)
        rows.append((f"signoff.{party}", "decision", s.describe() if s else "none recorded", ""))
    if state.supersedes:
        rows.append(("supersedes", "", state.supersedes, ""))
    return rows
