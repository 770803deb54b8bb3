"""What every command shares: the two consoles and the parsing of option values into the library's types.

Both ``cquin/cli.py`` and the command groups in this package import it; nothing here imports a command.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from rich.console import Console

from cquin.exceptions import UserError
from cquin.money import parse_pounds

# Emoji codes off: a value such as ':x:' in a file name or a reason is printed as written, never as a picture
# (values are also passed through rich's escape(), so their brackets are never markup).
out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def parse_options(values: list[str] | None) -> dict[str, str]:
    """``--option NAME=VALUE`` values as a mapping."""
    out = {}
    for item in values or []:
        if "=" not in item:
            raise UserError(f"--option {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_money(text: str | None, flag: str) -> Decimal | None:
    """An amount in pounds given with ``flag`` (None when not given)."""
    if text is None:
        return None
    try:
        return parse_pounds(text)
    except ValueError as exc:
        raise UserError(f"{flag} {text!r}: {exc}") from None


def parse_date(text: str | None, flag: str) -> dt.date | None:
    """A date written YYYY-MM-DD given with ``flag`` (None when not given)."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{flag} {text!r}: expected a date written YYYY-MM-DD") from None
