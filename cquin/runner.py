"""The commissioner's operations as library calls: evaluate and store a run, verify a stored run.

The CLI is a thin shell over these; tests call them directly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from cquin.dataset import TABLE_NAMES, CanonicalDataset
from cquin.dataset.duck import first_row
from cquin.dataset.ledger import file_sha256
from cquin.dataset.quality import DataQuality, QualityLimits, assess, load_limits
from cquin.engine.breakdowns import compute_breakdowns
from cquin.engine.evaluation import RunResult, evaluate
from cquin.engine.impact import Impact
from cquin.engine.recorded import RecordedDecision
from cquin.engine.ruleset import Ruleset, canonical_json, load_ruleset
from cquin.exceptions import RulesetError, StoreError
from cquin.faults import explained, reraise_fault
from cquin.loading import load_dataset, out_of_memory
from cquin.privacy import open_private
from cquin.store import Explanation, load_run, new_run_id, open_store, record_run, results_digest, trace

DEFAULT_RULESET = "cquin_2017_19"


@dataclass
class Evaluation:
    """A finished, stored run: its id, results, the dataset it read and the ruleset it applied."""

    run_id: str | None
    result: RunResult
    dataset: CanonicalDataset
    ruleset: Ruleset
    adapter: str
    quality: DataQuality
    breakdowns: dict[str, Any] | None = None  # the aggregate kept with the run (None when it was not stored)


def run_evaluation(
    source: Path,
    *,
    adapter: str | None = None,
    adapter_options: Mapping[str, str] | None = None,
    ruleset: str = DEFAULT_RULESET,
    contract_value: Decimal | None = None,
    contract_value_year2: Decimal | None = None,
    as_of: dt.date | None = None,
    store: Path | None = None,
    progress: Callable[[str], None] | None = None,
    pseudonymise_key: bytes | None = None,
    allow_draft: bool = False,
    org: Path | None = None,
    quality_limits: QualityLimits | None = None,
    accept_rejections: bool = False,
    supersedes: str | None = None,
) -> Evaluation:
    """Load ``source``, evaluate the ruleset, and (unless ``store`` is None) keep the run in the audit store.

    ``org`` is the folder of the organisation's own records (provider, staff, training, overrides) when they
    are not beside the export.  The decisions recorded in the store that the ruleset reads
    (``recorded_evidence``, e.g. the commissioner's acceptance of the plan) are applied and kept with the run;
    ``supersedes`` names the stored run this one replaces.

    The run's data are judged by the data-quality check (:mod:`cquin.dataset.quality`); a run that fails it is
    still evaluated and stored, marked as failing, and ``Evaluation.quality`` says so.
    """
    say = progress or (lambda _msg: None)
    started = dt.datetime.now(dt.UTC)
    rs = load_ruleset(ruleset)
    if rs.status == "draft" and not allow_draft:
        raise RulesetError(f"{rs.id} {rs.version} is a draft; pass --allow-draft to evaluate it")
    db = open_store(store) if store is not None else None  # fail fast on an unusable store
    if supersedes is not None:
        if db is None:
            raise StoreError("--supersedes needs the audit store (it names a stored run); drop --no-store")
        supersedes = load_run(db, supersedes).run["run_id"]
    say("loading records")
    limits = quality_limits or load_limits()
    dataset, adapter_name = load_dataset(source, rs.vocabulary(), adapter, adapter_options, org=org)
    quality = assess(dataset.ledger, limits, accept=accept_rejections)
    recorded = recorded_for(db, dataset, rs) if db is not None else []
    say("evaluating")
    try:
        result = evaluate(
            rs,
            dataset,
            contract_value=contract_value,
            contract_value_year2=contract_value_year2,
            as_of=as_of,
            recorded=recorded,
        )
    except duckdb.OutOfMemoryException as exc:
        reraise_fault(exc, "the data engine's temporary work files (evaluating)")
        raise out_of_memory("evaluating") from None
    except duckdb.Error as exc:
        reraise_fault(exc, "the data engine's temporary work files (evaluating)")
        raise
    run_id = None
    breakdowns = None
    if db is not None:
        say("summarising the run for the report, and writing the audit store")
        # The breakdowns are DuckDB's work and the store's write mostly SQLite's: each on its own core, the
        # breakdowns on a cursor of their own while the trace is copied, waited for just before they are stored.
        cursor = dataset.con.cursor()
        pool = ThreadPoolExecutor(1, thread_name_prefix="cquin-breakdowns")
        later = pool.submit(compute_breakdowns, cursor, rs)

        def summary() -> dict[str, Any]:
            try:
                return later.result()
            except duckdb.OutOfMemoryException as exc:
                reraise_fault(exc, "the data engine's temporary work files (summarising the run)")
                raise out_of_memory("summarising the run for the report") from None

        try:
            with explained("the data engine's temporary work files (writing the audit store)"):
                run_id = record_run(
                    db,
                    result,
                    dataset,
                    run_id=new_run_id(started),
                    started_at=started,
                    adapter=adapter_name,
                    source=str(Path(source).resolve()),
                    ruleset_source=str(rs.path.resolve()),
                    parameters={
                        "contract_value": None if contract_value is None else str(contract_value),
                        "contract_value_year2": None if contract_value_year2 is None else str(contract_value_year2),
                        "as_of": as_of.isoformat() if as_of else None,
                        "adapter_options": dict(adapter_options or {}),
                        "org": None if org is None else str(Path(org).resolve()),
                        "years": rs.years(),
                        "year_status": result.year_status,
                        "data_quality_limits": limits.as_dict(),
                        "accept_rejections": accept_rejections,
                        "recorded_evidence": [d.as_dict() for d in recorded],
                        **({"supersedes": supersedes} if supersedes else {}),
                    },
                    ruleset_json=canonical_json(rs.doc),
                    breakdowns=summary,
                    pseudonymise_key=pseudonymise_key,
                    data_quality=quality.as_dict(),
                )
            breakdowns = later.result()
        finally:
            # Not left running behind an error: the breakdowns' queries are interrupted, then waited for.
            if not later.done():
                cursor.interrupt()
            pool.shutdown(wait=True)
            cursor.close()
        # Closing checkpoints the write-ahead log into the store file (when no reader holds it), so the file
        # alone holds every committed run.
        db.conn.close()
    return Evaluation(run_id, result, dataset, rs, adapter_name, quality, breakdowns)


def recorded_for(db: Any, dataset: CanonicalDataset, rs: Ruleset) -> list[RecordedDecision]:
    """The recorded-evidence decisions in the store for the provider these records are from."""
    from cquin.cycle.signoff import recorded_decisions

    if not rs.doc.get("recorded_evidence"):
        return []
    row = first_row(dataset.con, "SELECT provider_code FROM provider WHERE provider_code IS NOT NULL LIMIT 1")
    return recorded_decisions(db, row[0] if row else None, rs.doc)


@dataclass
class Verification:
    run_id: str
    identical: bool
    problems: list[str]


def verify_run(store: Path, run_id: str, *, inputs: Path | None = None) -> Verification:
    """Re-evaluate a stored run from its inputs; say whether the results are identical, or why not.

    ``inputs`` is a folder holding a copy of the run's input files (the run was made elsewhere, or its folder
    moved): each input is found there by its name, checked against the stored SHA-256, and the run is
    re-evaluated from the copy.
    """
    import json

    db = open_store(store, read_only=True)
    stored = load_run(db, run_id)
    run = stored.run
    problems = []
    source = Path(run["source"])
    if inputs is not None:
        if not Path(inputs).is_dir():
            raise StoreError(f"--inputs {inputs}: not a folder")
        single = source.suffix != "" and not source.is_dir()  # the run read one file, not a folder
        source = Path(inputs) / source.name if single else Path(inputs)
    for inp in stored.inputs:
        if not inp["path"] or inp["sha256"] is None:
            continue
        p = Path(inp["path"])
        if inputs is not None:
            p = _copy_of(Path(inputs), p, Path(run["source"]))
        if not p.exists():
            problems.append(f"input {inp['name']} is no longer at {p}" + ("" if inputs is None else " (looked in --inputs)"))
        elif file_sha256(p) != inp["sha256"]:
            problems.append(f"input {inp['name']} has changed since the run (SHA-256 differs)")
    rs = load_ruleset(run["ruleset_source"]) if Path(run["ruleset_source"]).exists() else None
    if rs is None:
        problems.append(f"the ruleset file {run['ruleset_source']} is no longer there")
    elif rs.sha256 != run["ruleset_sha256"]:
        problems.append(f"the ruleset at {run['ruleset_source']} has changed since the run (SHA-256 differs)")
    if problems:
        return Verification(stored.run["run_id"], False, problems)
    params = json.loads(run["parameters"])
    assert rs is not None
    org = Path(params["org"]) if params.get("org") else None
    dataset, _ = load_dataset(source, rs.vocabulary(), run["adapter"], params.get("adapter_options") or {}, org=org)
    result = evaluate(
        rs,
        dataset,
        contract_value=Decimal(params["contract_value"]) if params.get("contract_value") else None,
        contract_value_year2=Decimal(params["contract_value_year2"]) if params.get("contract_value_year2") else None,
        as_of=dt.date.fromisoformat(params["as_of"]) if params.get("as_of") else None,
        recorded=[RecordedDecision.from_dict(d) for d in params.get("recorded_evidence") or []],
    )
    digest = results_digest(result, dataset)
    # A run stored by an older cquin (its reasons split from sentences) has a digest of those sentences: its
    # decisions are compared in words below instead.
    older = trace.split_encoded(db.conn, trace.Terms(db.conn), run["run_id"])
    if digest != run["results_sha256"] and not older:
        changed = [
            f"{c.id}: stored {s['numerator']}/{s['denominator']} £{s['payment']}, now {c.numerator}/{c.denominator} £{c.payment:.2f}"
            for c, s in zip(result.components, stored.components, strict=False)
            if (c.numerator, c.denominator, f"{c.payment:.2f}") != (s["numerator"], s["denominator"], s["payment"])
        ]
        return Verification(run["run_id"], False, ["the re-evaluated results differ from the stored ones"] + changed)
    # The digest agrees; now read back every row the store holds for the run and compare it with what the
    # re-evaluation gives, so "identical" is never said about stored data that was not read, or that changed.
    from cquin.verify import compare_stored_rows

    problems = compare_stored_rows(db, run, stored, result, dataset, split_encoded=older)
    if problems:
        return Verification(run["run_id"], False, problems)
    return Verification(run["run_id"], True, [])


def _copy_of(folder: Path, original: Path, source: Path) -> Path:
    """Where the copy of ``original`` is in ``folder``: at its path relative to the run's source, else by name."""
    try:
        rel = original.relative_to(source if source.is_dir() or not source.suffix else source.parent)
    except ValueError:
        rel = Path(original.name)
    if source.is_file() or source.suffix:  # a single-file source: the copy is the file itself, or one of that name
        return folder / original.name
    return folder / rel


def require_store(path: Path) -> Path:
    if not Path(path).exists():
        raise StoreError(f"{path}: no audit store here (run `cquin evaluate` first, or pass --store)")
    return path


def explain_subject(store: Path, run_id: str, subject: str, *, pseudonymise_key: bytes | None = None) -> Explanation:
    """A patient's (or staff member's) decisions in a run, with the run's own copy of the ruleset for citations.

    A run written with ``--pseudonymise`` keeps pseudonyms, not NHS numbers: give the pseudonym itself, or the
    NHS number with the key the run was written with, which is turned into the pseudonym to look up.
    """
    import json

    from cquin.pseudonymise import key_fingerprint, pseudonym
    from cquin.store import cohorts_of, decisions_for

    db = open_store(store, read_only=True)
    run = load_run(db, run_id).run
    subject_id = subject.replace(" ", "").replace("-", "") if subject.replace(" ", "").replace("-", "").isdigit() else subject
    written_with = json.loads(run["parameters"] or "{}").get("pseudonymised")
    if pseudonymise_key is not None:
        if not written_with:
            raise StoreError(f"run {run['run_id']} was not pseudonymised; explain it without --pseudonymise")
        if key_fingerprint(pseudonymise_key) != written_with:
            raise StoreError(
                f"run {run['run_id']} was pseudonymised with another key (fingerprint {written_with}, "
                f"this key's is {key_fingerprint(pseudonymise_key)})"
            )
        if subject_id.isdigit():
            subject_id = pseudonym(pseudonymise_key, subject_id)
    elif written_with and subject_id.isdigit() and len(subject_id) == 10:
        raise StoreError(
            f"run {run['run_id']} keeps pseudonyms, not NHS numbers: give the pseudonym, or the NHS number with "
            "--pseudonymise KEYFILE (the key the run was written with)"
        )
    decisions = decisions_for(db, run["run_id"], subject_id)
    # Rows rejected at load that name this subject: its id was the rejected value, or the row's reference or reason.
    rejections = list(
        db.query(
            """SELECT file, line, column_name, value, reason FROM run_rejections
               WHERE run_id = ? AND (value = ? OR ref = ? OR instr(reason, ?) > 0) ORDER BY file, line""",
            [run["run_id"], subject_id, subject_id, subject_id],
        )
    )
    if not decisions and not rejections:
        raise StoreError(
            f"run {run['run_id']} has no decisions about {subject!r} and no rejected row names it "
            "(check the NHS number or staff id; `cquin cohort` lists a cohort)"
        )
    cohorts = cohorts_of(db, run["run_id"], subject_id)
    return Explanation(run, subject_id, decisions, cohorts, json.loads(run["ruleset_json"]), rejections)


def load_to_folder(
    source: Path,
    out_dir: Path,
    *,
    adapter: str | None = None,
    adapter_options: Mapping[str, str] | None = None,
    ruleset: str = DEFAULT_RULESET,
    org: Path | None = None,
    quality_limits: QualityLimits | None = None,
    accept_rejections: bool = False,
) -> tuple[CanonicalDataset, Path, list[tuple[str, str, int]], DataQuality]:
    """Load ``source`` and write the canonical CSV folder, ``rejections.csv`` and ``load-report.json``.

    The folder is written whole or not at all: everything goes into a new folder beside it, which then
    takes its place, so nothing from an earlier load survives (a table this source lacks is not left over
    from the last one).  A folder holding anything ``cquin load`` does not write is refused untouched.
    Files are owner-only and every cell is formula-safe.  Also returns the condition codes no LTC code
    list knows, counted by system and code, and the data-quality verdict (which the load report carries first).
    The folder holds the organisational files too (from ``org`` or beside the export), so it is a complete
    canonical dataset the ``canonical`` adapter reads back.
    """
    from cquin import loadout

    loadout.check_out_dir(out_dir, source)
    rs = load_ruleset(ruleset)
    limits = quality_limits or load_limits()
    dataset, name = load_dataset(source, rs.vocabulary(), adapter, adapter_options, org=org)
    quality = assess(dataset.ledger, limits, accept=accept_rejections)
    with loadout.replacing(out_dir) as staging:
        report, unmatched = _write_load(staging, source, dataset, name, rs, org, quality)
    return dataset, out_dir / report.name, unmatched, quality


def _write_load(
    out_dir: Path,
    source: Path,
    dataset: CanonicalDataset,
    name: str,
    rs: Ruleset,
    org: Path | None,
    quality: DataQuality,
) -> tuple[Path, list[tuple[str, str, int]]]:
    import csv
    import json

    from cquin.engine.evaluation import unmatched_codes
    from cquin.outfile import safe_cell
    from cquin.privacy import write_private_text

    dataset.write_csv(out_dir, cell=safe_cell)
    with open_private(out_dir / "rejections.csv") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "line", "ref", "column", "value", "reason"])
        for row in dataset.ledger.rejection_rows():
            w.writerow([safe_cell(x) for x in row])
    unmatched = unmatched_codes(rs, dataset)
    report = out_dir / "load-report.json"
    write_private_text(
        report,
        json.dumps(
            {
                "data_quality_check": quality.as_dict(),
                "source": str(source),
                "org": None if org is None else str(org),
                "adapter": name,
                "ruleset": {"id": rs.id, "version": rs.version, "sha256": rs.sha256},
                "files": {
                    f.name: {**f.as_dict(), "sha256": f.sha256, "table": f.table, "delimiter": f.delimiter}
                    for f in dataset.ledger.files.values()
                },
                "tables_not_supplied": [t for t in TABLE_NAMES if t not in dataset.present],
                "notes": dataset.ledger.notes,
                "rejections": dataset.ledger.rejection_count(),
                "unmatched_codes": [{"code_system": s, "code": c, "count": n} for s, c, n in unmatched],
            },
            indent=2,
        )
        + "\n",
    )
    return report, unmatched


def ruleset_impact(
    old: Ruleset, new: Ruleset, source: Path, adapter: str | None = None, options: Mapping[str, str] | None = None
) -> Impact:
    """What changing ``old`` for ``new`` does to the records at ``source`` (loaded once for each ruleset)."""
    from cquin.engine.impact import impact

    old_dataset, _ = load_dataset(source, old.vocabulary(), adapter, options)
    new_dataset, _ = load_dataset(source, new.vocabulary(), adapter, options)
    return impact(old, new, old_dataset, new_dataset, source)
