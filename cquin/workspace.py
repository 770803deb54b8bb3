"""cquin's private temporary folder: every temporary file holding patient data lives in it, and it goes at exit.

One folder per process, ``cquin-work-*`` in the system's temporary directory
(``TMPDIR``), created owner-only (0700).  The data engine's spill files, its
work database and any copy of an input file go inside it, so removing it
removes them all: at exit, on an error, on Ctrl-C and on SIGTERM (see
:mod:`cquin.signals`).  A process killed outright (SIGKILL, power loss) cannot
clean up, so the folder holds a lock file that its process keeps locked while
it lives; the next cquin to start removes every such folder whose lock is free.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path

from cquin.exceptions import ResourceError
from cquin.privacy import is_no_space, no_space

PREFIX = "cquin-work-"
LEGACY_PREFIXES = ("cquin-spill-",)  # folders cquin made before it had one locked workspace per process
LOCK_NAME = ".lock"
YOUNG_SECONDS = 60  # a folder this new without its lock file may be another cquin that is just starting
LEGACY_IDLE_SECONDS = 3600  # an older cquin's folder is swept only when empty and untouched this long

_root: Path | None = None
_lock_fd: int | None = None
_pid: int | None = None


def temp_root() -> Path:
    return Path(tempfile.gettempdir())


def root() -> Path:
    """This process's workspace, created (and stale ones from killed processes swept) on first use."""
    global _root, _lock_fd, _pid
    if _root is not None and _pid == os.getpid() and _root.exists():
        return _root
    sweep_stale()
    base = temp_root()
    try:
        made = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))  # mkdtemp makes it 0700
        fd = os.open(made / LOCK_NAME, os.O_CREAT | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0), 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(base, "cquin's temporary work folder") from None
        raise ResourceError(f"{base}: cannot make cquin's temporary work folder there ({exc.strerror}); set TMPDIR") from None
    _root, _lock_fd, _pid = made, fd, os.getpid()
    atexit.register(cleanup)
    return made


def new_dir(prefix: str) -> Path:
    """A new private folder inside the workspace."""
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root()))
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(temp_root(), "cquin's temporary work folder") from None
        raise


def new_file(prefix: str, suffix: str) -> tuple[int, Path]:
    """A new private (0600) file inside the workspace: its open descriptor and path."""
    try:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=root())
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(temp_root(), "cquin's temporary work folder") from None
        raise
    return fd, Path(name)


def cleanup() -> None:
    """Remove this process's workspace and everything in it (idempotent; never raises)."""
    global _root, _lock_fd
    if _root is None or _pid != os.getpid():
        return
    with contextlib.suppress(OSError):
        shutil.rmtree(_root, ignore_errors=True)
    if _lock_fd is not None:
        with contextlib.suppress(OSError):
            os.close(_lock_fd)
    _root, _lock_fd = None, None


def sweep_stale() -> list[Path]:
    """Remove workspaces left by cquin processes that were killed (their lock is free); returns what was removed."""
    removed: list[Path] = []
    base = temp_root()
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    uid = os.getuid()
    for entry in entries:
        name = entry.name
        if not (name.startswith(PREFIX) or name.startswith(LEGACY_PREFIXES)):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_dir(follow_symlinks=False) or st.st_uid != uid:
            continue  # never another user's, never through a link
        path = Path(entry.path)
        if _abandoned(path, st.st_mtime):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _abandoned(path: Path, mtime: float) -> bool:
    if path.name.startswith(LEGACY_PREFIXES):
        # An older cquin's folder has no lock to ask: remove it only when it is empty and long untouched
        # (what a killed older cquin leaves), never one that may still be in use.
        try:
            return not any(path.iterdir()) and time.time() - mtime > LEGACY_IDLE_SECONDS
        except OSError:
            return False
    lock = path / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        # No lock: a folder another cquin is creating right now, or one whose lock was removed.
        return time.time() - mtime > YOUNG_SECONDS
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # its process is alive
    finally:
        os.close(fd)
    return True
