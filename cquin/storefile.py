"""The audit store's file: what it is, how it is opened, and what a SQLite failure means for the user.

A cquin store identifies itself: its SQLite header carries cquin's
``application_id`` (and the schema version in ``user_version``), and a marker
table ``cquin_store`` names the format.  Before anything is opened for writing,
the file's first hundred bytes are read (the SQLite header, see
https://www.sqlite.org/fileformat.html section 1.3) and anything that is neither
a new (absent or empty) file nor a cquin store is refused without a byte
written: cquin never writes a file not its own.

Read commands open the store read-only (``mode=ro``, or ``immutable=1`` when
the store sits in a read-only folder with nothing in its write-ahead log), so
they never write, never migrate, and never wait behind a writer: in WAL mode a
reader sees the last committed state at once.

Every SQLite error on a store connection becomes a :class:`StoreError` (or a
:class:`ResourceError` when the disk is full) naming the store and what to do.
"""

from __future__ import annotations

import enum
import os
import sqlite3
import stat
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from cquin.exceptions import ResourceError, StoreError
from cquin.privacy import make_private_dir, mount_point

APPLICATION_ID = 0x4351494E  # "CQIN" in the SQLite header (offset 68); 0 in files of other programs
SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100
WRITE_BUSY_TIMEOUT_MS = 600_000  # a second writer waits for the first rather than failing
# Readers never wait behind a writer (WAL lets them read the last committed state); this only covers the
# moment another process spends recovering the shared-memory index after a crash.
READ_BUSY_TIMEOUT_MS = 200
# Tables every cquin store has had since its first format (used to recognise stores written before the
# store identified itself in its header).
LEGACY_TABLES = {"runs", "run_inputs", "run_components", "run_milestones", "run_cohorts", "run_subjects"}
LEGACY_RUN_COLUMNS = {"run_id", "ruleset_sha256", "results_sha256", "ruleset_json"}
UNMARKED_VERSIONS = (1, 2, 3)  # the formats cquin wrote before format 4 marked the store as its own

# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26


class Kind(enum.Enum):
    NEW = "new"  # absent, or an empty file: cquin may make it a store
    CQUIN = "cquin"  # a cquin store (of any schema version)


@dataclass(frozen=True)
class Identity:
    kind: Kind
    schema_version: int = 0


def identify(path: Path) -> Identity:
    """Say what ``path`` is, reading only (never creating side files); StoreError for anything not cquin's."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return Identity(Kind.NEW)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the audit store ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{path}: is a folder, not an audit store; pass --store FILE (e.g. {path / 'cquin-audit.sqlite'})")
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: is not a regular file (a device, pipe or socket), so it cannot be an audit store")
    if st.st_size == 0:
        return Identity(Kind.NEW)
    try:
        with path.open("rb") as fh:
            header = fh.read(HEADER_BYTES)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the audit store ({exc.strerror})") from None
    if not header.startswith(SQLITE_MAGIC) or len(header) < HEADER_BYTES:
        _not_ours(path, "it is not an SQLite database")
    app_id = int.from_bytes(header[68:72], "big")
    version = int.from_bytes(header[60:64], "big")
    if app_id == APPLICATION_ID:
        return Identity(Kind.CQUIN, version)
    if app_id != 0:
        _not_ours(path, f"it is another program's SQLite database (application id {app_id:#x})")
    # Application id 0: another program's database, or a cquin store from before stores identified themselves
    # (or one whose new header is still in its write-ahead log).  Look inside without writing anything.
    return _inspect_unmarked(path)


def _inspect_unmarked(path: Path) -> Identity:
    wal = Path(str(path) + "-wal")
    # immutable=1 reads the main file only, taking no locks and creating no -wal/-shm files; with a
    # write-ahead log present its newer pages must be read too, which mode=ro does.
    flags = "mode=ro" if wal.exists() else "immutable=1"
    try:
        con = sqlite3.connect(_uri(path, flags), uri=True, timeout=READ_BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error:
        _not_ours(path, "SQLite cannot open it")
    try:
        app_id = con.execute("PRAGMA application_id").fetchone()[0]
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        run_columns = {r[1] for r in con.execute("PRAGMA table_info(runs)")} if "runs" in tables else set()
    except sqlite3.DatabaseError as exc:
        _not_ours(path, f"SQLite cannot read it ({exc})")
    finally:
        con.close()
    if app_id == APPLICATION_ID:
        return Identity(Kind.CQUIN, version)
    if app_id == 0 and version in UNMARKED_VERSIONS and LEGACY_TABLES <= tables and LEGACY_RUN_COLUMNS <= run_columns:
        return Identity(Kind.CQUIN, version)
    if not tables:
        _not_ours(path, "it is an SQLite database that cquin did not create")
    _not_ours(path, "it is another program's SQLite database (tables " + ", ".join(sorted(tables)[:5]) + ")")


def _not_ours(path: Path, why: str) -> NoReturn:
    raise StoreError(
        f"{path}: not a cquin audit store ({why}); cquin leaves it untouched. "
        "Pass --store with a cquin audit store, or a new file name"
    )


def _uri(path: Path, flags: str) -> str:
    return "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?" + flags


def connect_read(path: Path) -> sqlite3.Connection:
    """A read-only connection to an identified store: it never writes, creates or migrates anything.

    A store others could read is still made owner-only (its mode, not its bytes; where allowed).
    """
    private(path)
    wal = Path(str(path) + "-wal")
    try:
        con = sqlite3.connect(
            _uri(path, "mode=ro"), uri=True, timeout=READ_BUSY_TIMEOUT_MS / 1000, isolation_level=None, factory=StoreConnection
        )
        con.store_path = path
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file and its WAL index now
        return con
    except StoreError:
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)
        if wal.exists() or writable:
            raise
    # A read-only folder (or file system) where SQLite cannot make the WAL's shared-memory file: with no
    # write-ahead log, the main file is the whole committed state and nobody can be writing it.
    con = sqlite3.connect(_uri(path, "immutable=1"), uri=True, isolation_level=None, factory=StoreConnection)
    con.store_path = path
    return con


def connect_write(path: Path, identity: Identity) -> sqlite3.Connection:
    """A read-write connection; a new store is created owner-only and marked as cquin's before anything else."""
    if identity.kind is Kind.NEW:
        try:
            if not path.parent.exists():
                make_private_dir(path.parent)
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create the audit store ({exc.strerror})") from None
    else:
        for p in (path, path.parent):
            if not os.access(p, os.W_OK):
                raise StoreError(
                    f"{path}: the audit store is read-only ({'the file' if p == path else 'its folder'} cannot be written); "
                    "commands that store runs need write access to the file and its folder (reading commands work as it is)"
                )
        private(path)
    con = sqlite3.connect(
        str(path), timeout=WRITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, factory=StoreConnection, check_same_thread=True
    )
    con.store_path = path
    con.execute(f"PRAGMA busy_timeout = {WRITE_BUSY_TIMEOUT_MS}")
    if identity.kind is Kind.NEW:
        # Larger pages suit a store of long JSON rows written in bulk (about a third faster than 4 KB
        # pages); they take effect only while the file is empty.  The application id is the first thing
        # written, in the rollback-journal mode a new file starts in, so it lands in the file's header at once.
        con.execute("PRAGMA page_size = 16384")
        if con.execute("PRAGMA application_id").fetchone()[0] == 0:
            con.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    con.execute("PRAGMA journal_mode = WAL")
    private(path)
    return con


def private(path: Path) -> None:
    """Make the store and its write-ahead log and shared-memory files owner-only (they hold NHS numbers)."""
    for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm")):
        try:
            if p.exists() and stat.S_IMODE(p.stat().st_mode) & 0o077:
                os.chmod(p, stat.S_IMODE(p.stat().st_mode) & 0o700)
        except OSError:
            pass  # not ours to change (e.g. a read-only copy): reading it is still allowed


class StoreCursor(sqlite3.Cursor):
    """A cursor whose SQLite errors are explained in the user's terms (see :func:`store_error`)."""

    connection: StoreConnection

    def execute(self, sql: str, parameters: Any = ()) -> StoreCursor:
        try:
            return super().execute(sql, parameters)  # type: ignore[return-value]
        except sqlite3.IntegrityError:
            raise  # a constraint or a sign-off guard refusing a change: the caller's to explain
        except sqlite3.DatabaseError as exc:
            raise store_error(self.connection.store_path, exc) from None

    def executemany(self, sql: str, seq: Any) -> StoreCursor:
        try:
            return super().executemany(sql, seq)  # type: ignore[return-value]
        except sqlite3.IntegrityError:
            raise  # a constraint or a sign-off guard refusing a change: the caller's to explain
        except sqlite3.DatabaseError as exc:
            raise store_error(self.connection.store_path, exc) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.IntegrityError:
            raise  # a constraint or a sign-off guard refusing a change: the caller's to explain
        except sqlite3.DatabaseError as exc:
            raise store_error(self.connection.store_path, exc) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.IntegrityError:
            raise  # a constraint or a sign-off guard refusing a change: the caller's to explain
        except sqlite3.DatabaseError as exc:
            raise store_error(self.connection.store_path, exc) from None

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size or 1)
        except sqlite3.IntegrityError:
            raise  # a constraint or a sign-off guard refusing a change: the caller's to explain
        except sqlite3.DatabaseError as exc:
            raise store_error(self.connection.store_path, exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.IntegrityError:
            raise  # a constraint or a sign-off guard refusing a change: the caller's to explain
        except sqlite3.DatabaseError as exc:
            raise store_error(self.connection.store_path, exc) from None


class StoreConnection(sqlite3.Connection):
    """A connection to an audit store that knows its path, so every error can name it."""

    store_path: Path = Path("cquin-audit.sqlite")

    def cursor(self, factory: Any = StoreCursor) -> Any:  # type: ignore[override]
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = ()) -> StoreCursor:  # type: ignore[override]
        return self.cursor().execute(sql, parameters)  # type: ignore[no-any-return]

    def executemany(self, sql: str, parameters: Any) -> StoreCursor:  # type: ignore[override]
        return self.cursor().executemany(sql, parameters)  # type: ignore[no-any-return]

    def executescript(self, sql: str) -> Any:  # type: ignore[override]
        try:
            return super().executescript(sql)
        except sqlite3.DatabaseError as exc:
            raise store_error(self.store_path, exc) from None


def store_error(path: Path, exc: sqlite3.Error) -> StoreError | ResourceError:
    """A user's message for an SQLite failure on the store at ``path``: what went wrong and what to do.

    The error keeps SQLite's own words as ``sqlite_detail``.
    """
    error = _store_error(path, exc)
    error.sqlite_detail = str(exc)  # type: ignore[union-attr]
    return error


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError | ResourceError:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    detail = str(exc)
    if code == _FULL or "disk is full" in detail:
        return ResourceError(
            f"no space left on {mount_point(path)} (the file system holding the audit store {path}): "
            "the run was not stored and nothing in the store changed; free some space and run again"
        )
    if code in (_CORRUPT, _NOTADB) or "malformed" in detail:
        return StoreError(
            f"{path}: the audit store is damaged ({detail}); what was asked cannot be trusted from it. "
            f"Restore it from a backup; `cquin store check --store {path}` reports what is damaged"
        )
    if code == _READONLY or "readonly" in detail or "read-only" in detail:
        return StoreError(
            f"{path}: the audit store is read-only ({detail}); commands that store runs need write access to the "
            "file and its folder (reading commands work as it is)"
        )
    if code in (_BUSY, _LOCKED):
        return StoreError(f"{path}: the audit store is busy ({detail}): another program holds it locked; try again")
    if code in (_IOERR, _CANTOPEN, _PERM):
        return StoreError(
            f"{path}: the audit store cannot be read or written ({detail}); check the file, its folder and the disk"
        )
    return StoreError(f"{path}: the audit store failed: {detail}")
