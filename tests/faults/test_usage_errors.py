"""A command typed wrongly gets its usage line and what was wrong, never a traceback."""

from __future__ import annotations

import pytest

from tests.faults.helpers import run_main


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("explain", "latest"), "Missing argument 'nhs_number'"),
        (("evaluate", "--no-such-option"), "No such option: --no-such-option"),
    ],
    ids=["missing-argument", "unknown-option"],
)
def test_a_usage_error_is_said_with_the_usage_line_and_no_traceback(capsys, args: tuple[str, ...], said: str) -> None:  # type: ignore[no-untyped-def]
    ran = run_main(capsys, *args)
    assert ran.code == 2
    assert said in ran.err and "Usage:" in ran.err
    assert "Traceback" not in ran.out + ran.err
