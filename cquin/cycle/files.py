"""Files the cycle commands write: created readable by their owner only, since they can name patients."""

from __future__ import annotations

import os
from pathlib import Path

from cquin.exceptions import UserError


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (owner-only permissions for a new file); a clear error if it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the file ({exc.strerror})") from None
