"""Extra CLI command groups, each in its own module with ``register(app, groups)``; ``common`` is what they share.

``cquin.cli`` calls :func:`register_all` once; a module here adds its commands
to the main app or to one of the groups (``ruleset``, ``runs``, ``adapters``,
``demo``).  Commands stay thin: parse, call the library, render.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer


def register_all(app: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "common":  # the consoles and option parsers, not a command group
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(app, groups)
