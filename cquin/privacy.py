"""Files and folders that hold patient data: created owner-only whatever the user's umask.

Folders are made 0700 and files 0600 explicitly (``os.mkdir``'s mode is cut by
the umask, and at umask 000 ``Path.mkdir`` would give 0777); a file written
again keeps nobody else's access either.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import IO

from cquin.exceptions import ResourceError

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` and any missing parents owner-only (0700); an existing folder is left as it is."""
    path = Path(path)
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(d, DIR_MODE)


def open_private(path: Path) -> IO[str]:
    """Open ``path`` for writing (truncating it), owner-only: 0600 even if it existed with wider access."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        pass  # e.g. a file system without permissions; the file was still created with the mode above
    return os.fdopen(fd, "w", newline="", encoding="utf-8")


def write_private_text(path: Path, text: str) -> None:
    with open_private(path) as fh:
        fh.write(text)


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding ``path`` (or the nearest existing parent of it)."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        dev = p.stat().st_dev
        while p.parent != p and p.parent.stat().st_dev == dev:
            p = p.parent
    except OSError:
        pass
    return p


def no_space(path: Path, needed_for: str) -> ResourceError:
    """The message for a full disk: which file system, where, and what needed the space."""
    import tempfile

    in_temp = Path(os.path.abspath(path)).is_relative_to(os.path.abspath(tempfile.gettempdir()))
    return ResourceError(
        f"no space left on {mount_point(path)} ({needed_for} needed more room in {path}); free some space there"
        + (", or set TMPDIR to a folder on a larger disk," if in_temp else "")
        + " and run again"
    )


def is_no_space(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, or a DuckDB or SQLite error) says the disk is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "database or disk is full" in text or "Disk quota exceeded" in text
