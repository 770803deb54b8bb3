"""Faults that are not the user's data: an interrupt, or a full disk, recognised wherever they surface.

Ctrl-C, SIGTERM and a full temporary directory reach cquin through DuckDB,
SQLite or plain OSErrors, and would otherwise be reported as whatever was
running (an adapter failure, an unreadable CSV file, an engine error).  Code that
turns errors into user messages calls :func:`reraise_fault` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cquin import signals, workspace
from cquin.exceptions import CquinError
from cquin.privacy import is_no_space, no_space


def reraise_fault(exc: BaseException, doing: str, where: Path | None = None) -> None:
    """Raise the interrupt or full-disk error ``exc`` stands for (naming ``where``, default the temporary folder)."""
    if signals.is_interrupt(exc):
        raise signals.as_interrupt(exc) from None
    if is_no_space(exc):
        raise no_space(where or workspace.temp_root(), doing) from None


@contextmanager
def explained(doing: str, where: Path | None = None) -> Iterator[None]:
    """Within the block, interrupts and full disks are reported as such; other errors pass unchanged."""
    try:
        yield
    except CquinError:
        raise
    except BaseException as exc:
        reraise_fault(exc, doing, where)
        raise
