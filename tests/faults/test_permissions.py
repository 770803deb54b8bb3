"""Files that name patients are owner-only whatever the umask, even when they existed with wider access."""

from __future__ import annotations

import os
import stat

from tests.faults.helpers import run_main


def test_a_cohort_list_is_owner_only_even_over_a_file_others_could_read(stored_demo, tmp_path, capsys):
    store, run_id = stored_demo
    out = tmp_path / "cohort.csv"
    out.write_text("old\n")
    os.chmod(out, 0o644)
    old = os.umask(0)
    try:
        ran = run_main(capsys, "cohort", run_id, "--out", str(out), "--store", str(store))
    finally:
        os.umask(old)
    assert ran.code == 0, ran.err
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text(encoding="utf-8-sig").startswith("nhs_number,")  # with a BOM, so Excel reads UTF-8


def test_exported_tables_are_written_into_an_owner_only_folder_at_any_umask(stored_demo, tmp_path, capsys):
    store, run_id = stored_demo
    old = os.umask(0)
    try:
        ran = run_main(capsys, "export", run_id, "--tables", str(tmp_path / "bi" / "tables"), "--store", str(store))
    finally:
        os.umask(old)
    assert ran.code == 0, ran.err
    assert stat.S_IMODE((tmp_path / "bi").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "bi" / "tables").stat().st_mode) == 0o700
