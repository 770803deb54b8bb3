"""Reading a small file whole, safely: it must be a regular file, and no larger than its kind allows.

Key files, rulesets, manifests, test cases and code lists are read whole into
memory, so each is size-capped: ``/dev/zero`` would otherwise fill the memory,
and a FIFO would hang the read.  The file is opened without blocking (a FIFO
opens at once) and checked with ``fstat`` on the open descriptor, so what is
checked is what is read.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cquin.exceptions import UserError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def size_text(n: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


def read_capped(path: Path, *, limit: int, what: str, error: type[UserError] = UserError) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; ``error`` (naming ``what``) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file ({what})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: the {what} must be a regular file, and this is {file_kind(st.st_mode)}")
        if st.st_size > limit:
            raise error(
                f"{path}: the {what} is {size_text(st.st_size)}, more than the {size_text(limit)} cquin reads; "
                "is it the right file?"
            )
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew while being read
            raise error(f"{path}: the {what} is larger than the {size_text(limit)} cquin reads; is it the right file?")
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({exc.strerror})") from None
    finally:
        os.close(fd)
