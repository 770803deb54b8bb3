"""What an adapter is, and the registry plugins add adapters to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cquin.dataset import TABLE_NAMES, DatasetBuilder


@dataclass(frozen=True)
class AdapterOption:
    """An option a user may pass to an adapter (``--option name=value``)."""

    name: str
    description: str
    default: str | None = None
    choices: tuple[str, ...] = ()


class Adapter:
    """Base class for adapters: read one record format into the canonical dataset.

    Subclasses set the class attributes and implement :meth:`detect` and
    :meth:`load`.  ``load`` must stage rows only through the builder (which
    checks every row, keeps only canonical columns and counts every record),
    and report any source record it cannot use with ``builder.reject``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    tables: ClassVar[tuple[str, ...]] = ()
    options: ClassVar[tuple[AdapterOption, ...]] = ()

    def detect(self, path: Path) -> bool:
        """True when ``path`` looks like this adapter's format."""
        raise NotImplementedError

    def load(self, path: Path, builder: DatasetBuilder, options: Mapping[str, str]) -> None:
        """Stage the records at ``path`` into ``builder``."""
        raise NotImplementedError

    def option_values(self, given: Mapping[str, str]) -> dict[str, str]:
        """The adapter's options with defaults filled in; unknown names or bad choices raise ValueError."""
        known = {o.name: o for o in self.options}
        for key, value in given.items():
            if key not in known:
                raise ValueError(f"adapter {self.name!r} has no option {key!r} (options: {', '.join(known) or 'none'})")
            if known[key].choices and value not in known[key].choices:
                raise ValueError(f"adapter {self.name!r}: option {key} must be one of {', '.join(known[key].choices)}")
        out = {o.name: o.default for o in self.options if o.default is not None}
        out.update(given)
        return out


@dataclass(frozen=True)
class RegisteredAdapter:
    cls: type[Adapter]
    plugin: str  # the distribution (package) that provides it
    version: str


class AdapterRegistry:
    """Collects adapters from every plugin, checking each one as it is added."""

    def __init__(self) -> None:
        self.adapters: dict[str, RegisteredAdapter] = {}
        self._current: tuple[str, str] = ("cquin", "")

    def registering_for(self, plugin: str, version: str) -> None:
        """Charge the adapters added from now on to ``plugin`` (its distribution name and version)."""
        self._current = (plugin, version)

    def add(self, cls: Any) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            raise TypeError(f"{cls!r} is not a cquin Adapter subclass")
        if not cls.name or not cls.name.replace("_", "").replace("-", "").isalnum():
            raise TypeError(f"adapter {cls.__name__} needs a name of letters, digits, '-' or '_'")
        unknown = set(cls.tables) - set(TABLE_NAMES)
        if not cls.tables or unknown:
            raise TypeError(
                f"adapter {cls.name!r} must declare the canonical tables it fills (unknown: {', '.join(sorted(unknown)) or 'none declared'})"
            )
        if cls.name in self.adapters:
            other = self.adapters[cls.name].plugin
            raise TypeError(f"two plugins register an adapter called {cls.name!r} ({other} and {self._current[0]})")
        self.adapters[cls.name] = RegisteredAdapter(cls, *self._current)
