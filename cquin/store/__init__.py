"""The audit store: every run, its inputs, rejections, results and per-subject decisions, in SQLite.

``schema`` opens, checks and migrates a store; ``write`` records one evaluation; ``read`` gives runs back;
``trace`` is the stored form of the per-subject decisions (compact facts, rendered as sentences when read).
"""

from cquin.store.read import (
    LATEST,
    Explanation,
    StoredRun,
    SubjectDecoder,
    cohort_members,
    cohorts_of,
    decisions_for,
    evidence_missing,
    list_runs,
    load_run,
    resolve_run_id,
    stored_data_quality,
    subject_decisions,
)
from cquin.store.schema import (
    DEFAULT_STORE,
    READABLE_FROM,
    SCHEMA_VERSION,
    StoreCheck,
    check_store,
    migrate_store,
    new_run_id,
    open_store,
    quick_check,
    reason_group,
)
from cquin.store.write import encoded_trace, notices, record_run, results_digest, trace_of

__all__ = [
    "DEFAULT_STORE",
    "LATEST",
    "READABLE_FROM",
    "SCHEMA_VERSION",
    "Explanation",
    "StoreCheck",
    "StoredRun",
    "SubjectDecoder",
    "check_store",
    "cohort_members",
    "cohorts_of",
    "decisions_for",
    "encoded_trace",
    "evidence_missing",
    "list_runs",
    "load_run",
    "migrate_store",
    "new_run_id",
    "notices",
    "open_store",
    "quick_check",
    "reason_group",
    "record_run",
    "resolve_run_id",
    "results_digest",
    "stored_data_quality",
    "subject_decisions",
    "trace_of",
]
