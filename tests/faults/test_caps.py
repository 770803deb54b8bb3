"""Every file cquin reads whole is a regular file of bounded size; arguments are checked before any work.

``/dev/zero`` as a key, ruleset, manifest or code-list download used to fill
the memory (a MemoryError traceback), and a FIFO hung the read; a contract
value of 1e30 failed with a decimal traceback after the whole load had run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cquin.demo import DEMO_DIR
from tests.faults.helpers import no_traceback, run_main


@pytest.fixture(params=["/dev/zero", "fifo", "folder", "huge"])
def unreadable(request, tmp_path) -> Path:  # type: ignore[no-untyped-def]
    if request.param == "/dev/zero":
        return Path("/dev/zero")
    path = tmp_path / request.param
    if request.param == "fifo":
        os.mkfifo(path)  # nobody writes to it: reading it would wait for ever
    elif request.param == "folder":
        path.mkdir()
    else:
        with path.open("wb") as fh:  # sparse: 200 MB that take no room
            fh.truncate(200_000_000)
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "--demo", "--no-store", "--pseudonymise", "{}"],
        ["ruleset", "validate", "{}"],
        ["evaluate-many", "{}"],
        ["ruleset", "import-codelist", "{}", "--system", "snomed", "--out", "{out}"],
    ],
    ids=["pseudonymise key", "ruleset", "manifest", "code list download"],
)
def test_a_file_read_whole_must_be_a_regular_file_of_bounded_size(command, unreadable, tmp_path, capsys):
    args = [a.format(unreadable, out=tmp_path / "list.csv") if "{" in a else a for a in command]
    started = time.monotonic()
    ran = run_main(capsys, *args)
    no_traceback(ran)
    said = ran.err + ran.out  # `ruleset validate` reports on standard output
    assert ran.code in (2, 3), said
    assert str(unreadable) in said, said
    says = {
        "/dev/zero": "character device",
        "fifo": "named pipe",
        "folder": "a folder",
        "huge": "more than",
    }[unreadable.name if unreadable.name != "zero" else "/dev/zero"]
    assert says in said, said
    assert time.monotonic() - started < 60  # it does not hang (a FIFO read would wait for ever)
    assert not (tmp_path / "list.csv").exists()


def test_a_code_list_with_too_many_codes_is_refused_with_its_size(tmp_path, capsys):
    from cquin.engine.ruleset import MAX_CODES_PER_LIST

    download = tmp_path / "download.csv"
    with download.open("w", encoding="utf-8") as fh:
        fh.write("code,term\n")
        for i in range(MAX_CODES_PER_LIST + 5):
            fh.write(f"{1000000 + i},term\n")
    ran = run_main(capsys, "ruleset", "import-codelist", str(download), "--system", "local", "--out", str(tmp_path / "o.csv"))
    no_traceback(ran)
    assert ran.code == 2 and f"more than {MAX_CODES_PER_LIST:,} codes" in ran.err, ran.err


def test_a_rulesets_code_list_with_too_many_codes_is_a_ruleset_problem(tmp_path, monkeypatch):
    import cquin.engine.ruleset_check as checker_module
    from cquin.engine.ruleset import check_ruleset

    monkeypatch.setattr(checker_module, "MAX_CODES_PER_LIST", 10)  # the bundled lists are larger than this
    _, problems = check_ruleset("cquin_2017_19")
    assert any("more than 10 codes" in str(p) for p in problems), problems[:3]


@pytest.mark.parametrize("value", ["1e30", "1e999999999", "-5", "NaN", "12000000.005", "9" * 100])
def test_a_contract_value_out_of_range_is_refused_before_anything_is_read(value, tmp_path, capsys, monkeypatch):
    import cquin.loading

    def never(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the records were read before the arguments were checked")

    monkeypatch.setattr(cquin.loading, "load_dataset", never)
    monkeypatch.setattr("cquin.runner.load_dataset", never)
    ran = run_main(capsys, "evaluate", str(DEMO_DIR), "--no-store", "--contract-value", value)
    no_traceback(ran)
    assert ran.code == 2 and "--contract-value" in ran.err, ran.err


def test_a_large_but_real_contract_value_is_accepted(tmp_path, capsys):
    ran = run_main(capsys, "evaluate", "--demo", "--no-store", "--format", "csv", "--contract-value", "250,000,000.50")
    assert ran.code == 0, ran.err
