"""Reconcile a provider's return with the commissioner's evaluation, figure by figure.

The return is in the layout of the submission cquin writes (``cquin submission``: item, measure, value,
disclosure), whether cquin wrote it or the provider typed its own figures into that layout.  The
commissioner's side is the submission cquin writes for the evaluated run, with the same disclosure setting
as the return, so like is compared with like.

Where both hold the data — the return names a run that is in this audit store — each difference in a count
is explained patient by patient (or staff member by staff member) from the two runs' decisions, with the
rule and fact that decided each in both (:func:`cquin.cycle.compare.compare_runs`).  A figure in the return
that is not what its own run produced is called out as changed after the return was written.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cquin.cycle.compare import FigureChange, Move, RunComparison, compare_runs
from cquin.cycle.signoff import signoff_state
from cquin.exceptions import StoreError, UserError
from cquin.store import load_run, open_store

# Rows of a submission that describe it rather than report a figure.
META_ITEMS = ("run_id", "ruleset", "ruleset_sha256", "disclosure_control", "results_sha256", "supersedes")
COLUMNS = ["item", "measure", "value", "disclosure"]


@dataclass
class FigureLine:
    """One figure of the return beside the evaluation's."""

    item: str
    measure: str
    returned: str | None  # None: not in the return
    evaluated: str | None  # None: not a figure of the evaluation
    line: int | None  # the return's line
    status: str  # agrees | DIFFERS | not in the return | not a figure cquin reports
    explanation: list[str] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return self.status == "agrees"

    def as_dict(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "measure": self.measure,
            "returned": self.returned,
            "evaluated": self.evaluated,
            "line": self.line,
            "status": self.status,
            "explanation": self.explanation,
            "moves": [m.as_dict() for m in self.moves],
        }


@dataclass
class Reconciliation:
    run_id: str
    return_file: str
    return_run: str | None  # the run the return names
    return_run_stored: bool
    disclosure_control: bool
    figures: list[FigureLine]
    notes: list[str]
    signoff: str

    @property
    def differences(self) -> list[FigureLine]:
        return [f for f in self.figures if not f.agrees]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "return_file": self.return_file,
            "return_run": self.return_run,
            "return_run_stored": self.return_run_stored,
            "disclosure_control": self.disclosure_control,
            "agree": sum(f.agrees for f in self.figures),
            "differ": len(self.differences),
            "figures": [f.as_dict() for f in self.figures],
            "notes": self.notes,
            "signoff": self.signoff,
        }


def read_return(path: Path) -> tuple[dict[tuple[str, str], tuple[str, int]], dict[str, str]]:
    """The return's figures keyed by (item, measure) with their line, and its describing rows (run id, ...)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file (give the provider's return: the CSV `cquin submission` writes)") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 CSV file (expected the layout `cquin submission` writes)") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the return ({exc.strerror})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise UserError(f"{path}: the return is empty (expected the header {','.join(COLUMNS)})") from None
    except csv.Error as exc:
        raise UserError(f"{path} line 1: not readable as CSV ({exc})") from None
    if [h.strip().lower() for h in header[:3]] != COLUMNS[:3]:
        raise UserError(
            f"{path} line 1: the header is {','.join(header)!r}; a return has the columns {','.join(COLUMNS)} "
            "(the layout `cquin submission` writes)"
        )
    figures: dict[tuple[str, str], tuple[str, int]] = {}
    meta: dict[str, str] = {}
    try:
        for n, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < 3:
                raise UserError(f"{path} line {n}: expected item, measure and value, found {len(row)} cell(s)")
            item, measure, value = (_plain(c) for c in row[:3])
            if item in META_ITEMS or item.startswith("signoff"):
                meta[item] = value
                continue
            if (item, measure) in figures:
                raise UserError(
                    f"{path} line {n}: {item} {measure} is given twice (also on line {figures[(item, measure)][1]}); "
                    "a return gives each figure once"
                )
            figures[(item, measure)] = (value, n)
    except csv.Error as exc:
        raise UserError(f"{path}: not readable as CSV ({exc})") from None
    return figures, meta


def _plain(cell: str) -> str:
    """A cell as written, without the apostrophe cquin puts before a cell a spreadsheet could run as a formula."""
    cell = cell.strip()
    return cell[1:] if cell.startswith("'") else cell


def _same(a: str, b: str) -> bool:
    if a.strip().lower() == b.strip().lower():
        return True
    try:
        return Decimal(a.replace(",", "").replace("£", "")) == Decimal(b.replace(",", "").replace("£", ""))
    except (InvalidOperation, ValueError):
        return False


def _evaluated_rows(store: Path, run_id: str, control: bool) -> dict[tuple[str, str], str]:
    """The submission cquin writes for ``run_id``, as figures: written to a private temporary folder, read, removed."""
    from cquin.render.files import write_submission

    with tempfile.TemporaryDirectory(prefix="cquin-reconcile-") as tmp:
        out = Path(tmp) / "submission.csv"
        write_submission(store, run_id, out, disclosure_control=control)
        figures, _ = read_return(out)
    return {k: v for k, (v, _) in figures.items()}


def reconcile(store: Path, run_id: str, return_file: Path) -> Reconciliation:
    """Compare the return with the evaluation of ``run_id`` figure by figure, naming who is behind each difference."""
    db = open_store(store, read_only=True)
    run = load_run(db, run_id).run
    rid = run["run_id"]
    returned, meta = read_return(return_file)
    if not returned:
        raise UserError(f"{return_file}: the return has no figures (only its header or describing rows)")
    control = meta.get("disclosure_control", "").strip().lower() == "applied"
    evaluated = _evaluated_rows(store, rid, control)
    notes = []
    return_run = meta.get("run_id") or None
    cmp: RunComparison | None = None
    own: dict[tuple[str, str], str] = {}
    stored = False
    if return_run:
        try:
            other = load_run(db, return_run).run
        except StoreError:
            notes.append(
                f"the return names run {return_run}, which is not in this audit store: the differences are shown, "
                "but not the patients behind them (both sides need the data)"
            )
        else:
            stored = True
            return_run = other["run_id"]
            if return_run != rid:
                cmp = compare_runs(db, return_run, rid)
                own = _evaluated_rows(store, return_run, control)
                notes.append(f"the return is run {return_run}'s; the runs differ in: {', '.join(cmp.differs_in) or 'nothing'}")
            else:
                own = evaluated
    else:
        notes.append("the return names no run: the differences are shown, but not the patients behind them")
    if control:
        notes.append("the return is under disclosure control: small counts are compared as published (suppressed or rounded)")
    ruleset = json.loads(run["ruleset_json"])
    lines = []
    for key in list(dict.fromkeys([*evaluated, *returned])):
        item, measure = key
        mine = evaluated.get(key)
        theirs, line = returned.get(key, (None, None))
        if theirs is None:
            status = "not in the return"
        elif mine is None:
            status = "not a figure cquin reports"
        else:
            status = "agrees" if _same(theirs, mine) else "DIFFERS"
        fl = FigureLine(item, measure, theirs, mine, line, status)
        if status == "DIFFERS":
            _explain(fl, own, cmp, ruleset, return_run)
        lines.append(fl)
    return Reconciliation(rid, str(return_file), return_run, stored, control, lines, notes, signoff_state(db, rid).summary)


def _explain(
    fl: FigureLine, own: dict[tuple[str, str], str], cmp: RunComparison | None, ruleset: dict[str, Any], return_run: str | None
) -> None:
    """Say why a figure differs: edited after it was written, or the patients and staff behind it."""
    key = (fl.item, fl.measure)
    if own and key in own and fl.returned is not None and not _same(fl.returned, own[key]):
        fl.explanation.append(
            f"the return's figure is not what run {return_run} produced ({own[key]}): it was changed after cquin wrote the return"
        )
        return
    if cmp is None:
        return
    fig = _figure_for(cmp, fl.item, fl.measure, ruleset)
    if fig is not None:
        fl.moves = list(fig.moves)
        counts: dict[str, int] = {}
        for m in fig.moves:
            side = "in the evaluation, not the return" if m.direction == "in" else "in the return, not the evaluation"
            counts[f"{side} ({m.why})"] = counts.get(f"{side} ({m.why})", 0) + 1
        fl.explanation += [f"{n:,} {m}" for m, n in counts.items()]
        return
    if fl.measure in ("percent", "band", "payment_fraction", "payment"):
        parts = [
            f"{f.measure} {f.before} in the return, {f.after} in the evaluation"
            for f in cmp.figures
            if f.item == fl.item and f.before != f.after
        ]
        if parts:
            fl.explanation.append("follows from the " + "; ".join(parts))
        else:
            note = next((c for c in cmp.components if c.component == fl.item), None)
            if note is not None and note.before and note.after:
                fl.explanation.append(
                    f"the return's run decided it as {note.before['band']}; the evaluation as {note.after['band']}"
                )


def _figure_for(cmp: RunComparison, item: str, measure: str, ruleset: dict[str, Any]) -> FigureChange | None:
    """The comparison's figure behind a submission row (a component's count, a cohort's size, a staff count)."""
    if item.startswith("cohort.") and measure == "patients":
        return next((f for f in cmp.figures if f.item == item and f.measure == "members"), None)
    if item.startswith("staff.") and measure == "staff":
        pop = item.split(".", 1)[1]
        for c in ruleset["components"]:
            for key in ("denominator", "numerator"):
                if c.get(key) == pop:
                    return next((f for f in cmp.figures if f.item == c["id"] and f.measure == key), None)
        return None
    return next((f for f in cmp.figures if f.item == item and f.measure == measure), None)
