"""Signals and interrupts: Ctrl-C or SIGTERM at any moment ends cquin cleanly, with nothing partial left behind.

SIGINT raises :class:`KeyboardInterrupt` (Python's default) and SIGTERM/SIGHUP
raise :class:`Terminated`, so either unwinds the stack: the audit store's open
transaction rolls back (a run is stored whole or not at all) and the temporary
workspace is removed.  The data engine turns an interrupt it notices into its
own ``InterruptException``; :func:`is_interrupt` recognises both, so callers
never report an interrupt as a failed adapter or unreadable file.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from types import FrameType
from typing import Any


class Terminated(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """The process was asked to stop (SIGTERM or SIGHUP); not an Exception, so nothing swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_requested: Terminated | None = None  # kept, since the data engine may turn it into its own exception


_interrupted = False


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C, remembered: the command-line library renders a KeyboardInterrupt as a silent exit 130."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted() -> bool:
    """Whether Ctrl-C (SIGINT) reached Python in this process."""
    return _interrupted


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    global _requested
    _requested = Terminated(signum)
    raise _requested


# Data engine connections to interrupt on SIGTERM: the engine listens for SIGINT only, and Python runs a
# signal handler only when the engine hands control back, which a long query may not do for minutes.
_engines: weakref.WeakSet[Any] = weakref.WeakSet()
_installed = False


def watch_engine(con: Any) -> None:
    """Interrupt ``con``'s running query when the process is asked to stop."""
    _engines.add(con)


def install() -> None:
    """Make SIGTERM and SIGHUP unwind like Ctrl-C does (call from the main thread, at start)."""
    global _installed
    signal.signal(signal.SIGINT, _raise_interrupt)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_terminated)
    if _installed:
        return
    # The C-level signal handler writes each signal's number to this pipe at once, whatever the main
    # thread is doing; a helper thread reads it and interrupts the data engine's running queries.
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(r,), name="cquin-signals", daemon=True).start()
    _installed = True


def _watch(fd: int) -> None:
    global _requested
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in (signal.SIGTERM, signal.SIGHUP):
                if _requested is None:
                    _requested = Terminated(signum)
                for con in list(_engines):
                    try:
                        con.interrupt()
                    except Exception:  # already closed
                        pass


def shutting_down() -> None:
    """Ignore further signals while cquin cleans up and exits (a second Ctrl-C must not interrupt the cleanup)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except (ValueError, OSError):  # not the main thread
            pass


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is Ctrl-C or a termination request, including the data engine's rendering of one."""
    if isinstance(exc, KeyboardInterrupt | Terminated):
        return True
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        return False
    # The engine reports an interrupted query as InterruptException or as RuntimeError("Query interrupted").
    return isinstance(exc, duckdb.InterruptException) or (isinstance(exc, RuntimeError) and "Query interrupted" in str(exc))


def as_interrupt(exc: BaseException) -> BaseException:
    """The interrupt ``exc`` stands for: itself, or a KeyboardInterrupt for the data engine's InterruptException."""
    if isinstance(exc, KeyboardInterrupt | Terminated):
        return exc
    return _requested if _requested is not None else KeyboardInterrupt()


__all__: list[Any] = ["Terminated", "as_interrupt", "install", "is_interrupt", "shutting_down"]
