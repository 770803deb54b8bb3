"""The audit-store tables of the commissioning cycle, and the guards that keep a signed-off run as it was.

The store creates them in its migrations and the commissioning cycle (:mod:`cquin.cycle.signoff`) writes
them, so they sit at the store's floor, below both.
"""

from __future__ import annotations

from typing import Any

SIGNOFF_TABLE = "run_signoffs"
FROZEN_MESSAGE = "the run has been signed off: its records cannot be changed or deleted (evaluate again for a new run)"
PERMANENT_MESSAGE = "sign-off records are permanent: record a new decision instead"


def create_signoff_tables(db: Any) -> None:
    """Create the sign-off table (append-only) and freeze every run table for runs that have a sign-off.

    Idempotent; safe to call after any later step that adds a table with a ``run_id`` column.
    """
    db.execute(
        f"""CREATE TABLE IF NOT EXISTS {SIGNOFF_TABLE} (
              signoff_id INTEGER PRIMARY KEY AUTOINCREMENT,
              run_id TEXT NOT NULL,
              subject TEXT NOT NULL,
              party TEXT NOT NULL CHECK (party IN ('provider', 'commissioner')),
              signed_by TEXT NOT NULL,
              decision TEXT NOT NULL CHECK (decision IN ('agree', 'dispute')),
              note TEXT,
              decided_on TEXT NOT NULL,
              recorded_at TEXT NOT NULL,
              digest TEXT NOT NULL,
              provider_code TEXT,
              engine_version TEXT
            )"""
    )
    db.execute(f"CREATE INDEX IF NOT EXISTS idx_{SIGNOFF_TABLE}_run ON {SIGNOFF_TABLE} (run_id)")
    db.execute(f"CREATE INDEX IF NOT EXISTS idx_{SIGNOFF_TABLE}_provider ON {SIGNOFF_TABLE} (provider_code, subject)")
    for op in ("UPDATE", "DELETE"):
        db.execute(
            f"""CREATE TRIGGER IF NOT EXISTS {SIGNOFF_TABLE}_no_{op.lower()} BEFORE {op} ON {SIGNOFF_TABLE}
                BEGIN SELECT RAISE(ABORT, '{PERMANENT_MESSAGE}'); END"""
        )
    freeze_signed_off_runs(db)


def freeze_signed_off_runs(db: Any) -> None:
    """Triggers on every table with a ``run_id`` column refusing changes to a run that has a sign-off."""
    tables = [
        r[0]
        for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").fetchall()
        if r[0] != SIGNOFF_TABLE
    ]
    for name in tables:
        cols = {r[1] for r in db.execute(f'PRAGMA table_info("{name}")').fetchall()}
        if "run_id" not in cols:
            continue
        for op, row in (("UPDATE", "OLD"), ("DELETE", "OLD"), ("INSERT", "NEW")):
            db.execute(
                f"""CREATE TRIGGER IF NOT EXISTS "frozen_{name}_{op.lower()}" BEFORE {op} ON "{name}"
                    WHEN EXISTS (SELECT 1 FROM {SIGNOFF_TABLE} s WHERE s.run_id = {row}.run_id)
                    BEGIN SELECT RAISE(ABORT, '{FROZEN_MESSAGE}'); END"""
            )


def thaw_for_migration(db: Any) -> None:
    """Drop the guards on signed-off runs while the store's format changes (a migration may rebuild or fill run
    tables without changing what a run says); :func:`create_signoff_tables` puts them back in the same transaction."""
    for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'frozen\\_%' ESCAPE '\\'"
    ).fetchall():
        db.execute(f'DROP TRIGGER IF EXISTS "{name}"')
