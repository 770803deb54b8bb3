"""Errors a user can cause, each with a message written for them and an exit code.

Only ``cquin.cli`` catches these; everything else lets them travel up.
"""

from __future__ import annotations


class CquinError(Exception):
    """Base class for every error cquin raises on purpose."""

    exit_code = 1


class UserError(CquinError):
    """Something the user supplied (a file, an argument) is wrong."""

    exit_code = 2


class RulesetError(UserError):
    """A ruleset cannot be loaded or is invalid; carries every problem found."""

    exit_code = 3

    def __init__(
        self, message: str, problems: list[str] | None = None, *, location: object = None, bare_message: str = ""
    ) -> None:
        self.problems = problems or []
        self.location = location  # a yaml_source.Location, when the problem has one place
        self.bare_message = bare_message or message
        super().__init__(message)

    def __str__(self) -> str:
        base = super().__str__()
        if not self.problems:
            return base
        return base + "\n" + "\n".join(f"  {p}" for p in self.problems)


class ConfigError(UserError):
    """A settings file (an adapter mapping, data-quality limits) cannot be read or is invalid."""

    exit_code = 2


class DataError(UserError):
    """An input file cannot be read at all (not a row-level rejection)."""

    exit_code = 4


class AdapterError(UserError):
    """An adapter plugin failed, or none fits the source."""

    exit_code = 5


class StoreError(UserError):
    """The audit store cannot be opened, written or queried as asked."""

    exit_code = 6


class ResourceError(CquinError):
    """The machine ran out of a resource (memory, disk) the user can raise."""

    exit_code = 7


# Not an exception: a run whose data failed the data-quality check is still stored and shown, and the
# command then exits with this code (unless --accept-rejections was given).
DATA_QUALITY_EXIT = 8
