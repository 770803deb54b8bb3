"""Pseudonymisation: a keyed hash in place of each NHS number, so an audit store can be shared.

The pseudonym is HMAC-SHA256 of the NHS number (digits only) under a secret key
the provider keeps, written ``p-`` followed by the first 20 hex digits (80
bits: collisions are negligible for any provider's caseload).  The same key
gives the same pseudonym in every run, so runs stay comparable and a patient
can still be followed through an audit by whoever holds the key; without the
key the pseudonym cannot be turned back into the NHS number (a plain hash could:
there are only 10^10 NHS numbers).

Free text (reasons, rejected values) is pseudonymised by replacing every run
of exactly ten digits, written plain or as ``XXX XXX XXXX`` / ``XXX-XXX-XXXX``:
an NHS number that fails its check digit is still someone's, so validity is
not required.  A ten-digit code in the same text would be replaced too, which
errs on the safe side.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import pyarrow as pa

from cquin.exceptions import UserError

PREFIX = "p-"
HEX_DIGITS = 20
MIN_KEY_BYTES = 16
MAX_KEY_FILE_BYTES = 4096  # a key is a few dozen bytes; anything larger is the wrong file (or /dev/zero)
_TEN_DIGITS = re.compile(r"(?<![0-9])[0-9]{3}[ -]?[0-9]{3}[ -]?[0-9]{4}(?![0-9])")


def load_key(path: Path) -> bytes:
    """Read a key file (its bytes, surrounding white space removed); refuse one too short to be secret."""
    from cquin.files import read_capped

    key = read_capped(Path(path), limit=MAX_KEY_FILE_BYTES, what="pseudonymisation key").strip()
    if len(key) < MIN_KEY_BYTES:
        raise UserError(
            f"{path}: the pseudonymisation key is {len(key)} bytes; use at least {MIN_KEY_BYTES} random bytes "
            '(e.g. `python -c "import secrets; print(secrets.token_hex(32))" > KEYFILE`)'
        )
    return key


def key_fingerprint(key: bytes) -> str:
    """A short, non-secret name for a key (to record which key a store used, never the key itself)."""
    return hmac.new(key, b"cquin key fingerprint", hashlib.sha256).hexdigest()[:12]


def pseudonym(key: bytes, nhs_number: str) -> str:
    """The pseudonym for one NHS number; spaces and hyphens are ignored, so every written form agrees."""
    digits = nhs_number.replace(" ", "").replace("-", "")
    return PREFIX + hmac.new(key, digits.encode("utf-8"), hashlib.sha256).hexdigest()[:HEX_DIGITS]


def pseudonymise_text(key: bytes, text: str | None) -> str | None:
    """``text`` with every ten-digit number (an NHS number, valid or not) replaced by its pseudonym."""
    if text is None:
        return None
    return _TEN_DIGITS.sub(lambda m: pseudonym(key, m.group(0)), text)


def register_duckdb(con: Any, key: bytes) -> None:
    """Make ``cquin_pseudonym(id)`` and ``cquin_pseudonymise_text(text)`` SQL functions on a DuckDB connection.

    The store can then pseudonymise as it copies rows out of the evaluation,
    e.g. ``SELECT cohort, cquin_pseudonym(id), cquin_pseudonymise_text(reason) FROM cohort_members``.
    """

    def ids(column: pa.Array) -> pa.Array:
        return pa.array([None if v is None else pseudonym(key, v) for v in column.to_pylist()], pa.string())

    def texts(column: pa.Array) -> pa.Array:
        return pa.array([pseudonymise_text(key, v) for v in column.to_pylist()], pa.string())

    for name, fn in (("cquin_pseudonym", ids), ("cquin_pseudonymise_text", texts)):
        try:
            con.remove_function(name)
        except Exception:  # not registered yet
            pass
        con.create_function(name, fn, ["VARCHAR"], "VARCHAR", type="arrow", null_handling="special")


class Pseudonymiser:
    """What the audit store applies as it writes a run: pseudonyms with a key, or everything as it is without one.

    ``id_sql``/``text_sql`` wrap a DuckDB column expression (the functions are
    registered on ``con``); ``id``/``text`` do the same for Python values.
    """

    def __init__(self, key: bytes | None, con: Any = None) -> None:
        self.key = key
        if key is not None and con is not None:
            register_duckdb(con, key)

    @property
    def fingerprint(self) -> str | None:
        return None if self.key is None else key_fingerprint(self.key)

    def id_sql(self, column: str) -> str:
        return column if self.key is None else f"cquin_pseudonym({column})"

    def text_sql(self, column: str) -> str:
        return column if self.key is None else f"cquin_pseudonymise_text({column})"

    def id(self, value: str | None) -> str | None:
        return value if self.key is None or value is None else pseudonym(self.key, value)

    def text(self, value: str | None) -> str | None:
        return value if self.key is None else pseudonymise_text(self.key, value)
