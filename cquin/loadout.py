"""The folder ``cquin load --out`` writes: whole or not at all, never mixed with an earlier load or others' files.

A monthly job that reuses one folder must not read last month's tables beside
this month's: the new files are written into a fresh owner-only folder beside
the target, which then replaces it in two renames; a failure part-way leaves
the old folder as it was.  A folder holding any file ``cquin load`` does not
write is refused before anything is read or written (cquin never writes, or
removes, a file not its own).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cquin.dataset import tables
from cquin.exceptions import UserError
from cquin.privacy import is_no_space, make_private_dir, no_space

REPORT_FILES = ("rejections.csv", "load-report.json")


def load_files() -> set[str]:
    """The names of every file ``cquin load`` may write."""
    return {t.file_name for t in tables()} | set(REPORT_FILES)


def check_out_dir(out_dir: Path, source: Path | None = None) -> None:
    """Refuse an output folder that is not a folder, holds files cquin load did not write, or holds the source.

    A folder counts as an earlier load's only with its ``load-report.json``: a folder of canonical files
    the user made (perhaps the very records being loaded) is never replaced.
    """
    if source is not None:
        src, out = Path(os.path.abspath(source)), Path(os.path.abspath(out_dir))
        if src == out or src.is_relative_to(out):
            raise UserError(f"--out {out_dir}: that is where the records are read from; choose another folder")
    if not out_dir.exists():
        if out_dir.is_symlink():
            raise UserError(f"{out_dir}: a link to nothing; choose a new or empty folder for --out")
        return
    if not out_dir.is_dir():
        raise UserError(f"--out {out_dir}: exists and is not a folder; choose a new or empty folder")
    ours = load_files()
    try:
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in ours or not p.is_file() or p.is_symlink())
    except OSError as exc:
        raise UserError(f"--out {out_dir}: cannot read the folder ({exc.strerror})") from None
    if not others and any(out_dir.iterdir()) and not (out_dir / "load-report.json").is_file():
        others = ["no load-report.json: not written by cquin load"]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise UserError(
            f"--out {out_dir}: the folder holds files cquin load did not write ({shown}); cquin replaces the whole "
            "folder with each load, so choose a new or empty folder (or one an earlier `cquin load` wrote)"
        )


@contextlib.contextmanager
def replacing(out_dir: Path) -> Iterator[Path]:
    """A new private folder to write into; on success it takes ``out_dir``'s place (the old one is removed)."""
    out_dir = Path(os.path.abspath(out_dir))
    parent = out_dir.parent
    try:
        make_private_dir(parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.cquin-load-", dir=parent))  # 0700
    except OSError as exc:
        if is_no_space(exc):
            raise no_space(parent, "the canonical dataset") from None
        raise UserError(f"--out {out_dir}: cannot write there ({exc.strerror})") from None
    try:
        try:
            yield staging
        except OSError as exc:
            if is_no_space(exc):
                raise no_space(parent, "the canonical dataset") from None
            raise UserError(f"--out {out_dir}: cannot write there ({exc.strerror})") from None
        check_out_dir(out_dir)  # again: nothing of anyone else's may have arrived meanwhile
        _swap(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap(staging: Path, out_dir: Path) -> None:
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.cquin-old-", dir=out_dir.parent))
    try:
        os.rename(out_dir, old / "folder")
    except OSError:
        # The folder cannot be moved (a mount point, say): replace its files in place instead.
        shutil.rmtree(old, ignore_errors=True)
        for p in out_dir.iterdir():
            p.unlink()
        for p in staging.iterdir():
            os.replace(p, out_dir / p.name)
        return
    try:
        os.rename(staging, out_dir)
    except OSError:
        os.rename(old / "folder", out_dir)  # put the earlier load back as it was
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
