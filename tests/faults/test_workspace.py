"""Temporary data lives in one owner-only folder per process, removed at exit and swept after a kill."""

from __future__ import annotations

import fcntl
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cquin import workspace


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    base = tmp_path / "tmp"
    base.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(base))
    monkeypatch.setattr(workspace, "_root", None)
    monkeypatch.setattr(workspace, "_lock_fd", None)
    yield base
    workspace.cleanup()


def test_temporary_files_and_folders_are_owner_only_at_any_umask(private_tmp):
    old = os.umask(0)
    try:
        fd, path = workspace.new_file("copy-", ".csv")
        os.close(fd)
        folder = workspace.new_dir("engine-")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(workspace.root().stat().st_mode) == 0o700
    assert path.parent == folder.parent == workspace.root() and workspace.root().parent == private_tmp


def test_the_workspace_is_removed_with_everything_in_it(private_tmp):
    fd, _ = workspace.new_file("copy-", ".csv")
    os.write(fd, b"9990000018,1941-06-01\n")
    os.close(fd)
    workspace.cleanup()
    assert list(private_tmp.iterdir()) == []


def test_a_workspace_whose_process_was_killed_is_swept_and_a_live_one_is_kept(private_tmp):
    dead = private_tmp / "cquin-work-dead"
    dead.mkdir()
    (dead / workspace.LOCK_NAME).touch()  # nobody holds its lock: its process is gone
    (dead / "copy-1.csv").write_text("9990000018,1941-06-01\n")
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"d = {str(private_tmp / 'cquin-work-live')!r}\n"
            "os.mkdir(d); fd = os.open(d + '/.lock', os.O_CREAT | os.O_WRONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None and live.stdout.readline().strip() == "locked"
        other = private_tmp / "not-cquin"
        other.mkdir()
        removed = workspace.sweep_stale()
        assert removed == [dead]
        assert sorted(p.name for p in private_tmp.iterdir()) == ["cquin-work-live", "not-cquin"]
    finally:
        live.kill()
        live.wait()
    assert workspace.sweep_stale() == [private_tmp / "cquin-work-live"]  # once its process is gone


def test_an_older_cquins_empty_spill_folder_is_swept_only_when_long_idle(private_tmp):
    old, recent = private_tmp / "cquin-spill-old", private_tmp / "cquin-spill-recent"
    old.mkdir()
    recent.mkdir()
    os.utime(old, (1, 1))
    assert workspace.sweep_stale() == [old]
    assert recent.exists()


def test_the_lock_is_held_while_the_process_lives(private_tmp):
    lock = workspace.root() / workspace.LOCK_NAME
    fd = os.open(lock, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    assert Path(lock).exists()
