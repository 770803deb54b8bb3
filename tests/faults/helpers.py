"""Running cquin as a user would, in this process (fast) or as a separate process (for signals and kills)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Ran:
    code: int
    out: str
    err: str


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """``cquin ARGS`` through the console entry point (so errors are rendered as a user sees them)."""
    from cquin.cli import main

    old = sys.argv
    sys.argv = ["cquin", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def cquin_process(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> Ran:
    full_env = {**os.environ, "COLUMNS": "250", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "cquin.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=full_env
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def no_traceback(ran: Ran) -> None:
    assert "Traceback" not in ran.err + ran.out, ran.err
