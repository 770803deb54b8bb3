"""The adapter hooks: how a plugin tells cquin about the record formats it reads.

An adapter plugin is a module or object with functions named like these and
marked with ``cquin.hookimpl``; cquin finds third-party plugins through the
``cquin.adapters`` entry point group.  Built-in adapters register the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from cquin.adapters.base import AdapterRegistry

hookspec = pluggy.HookspecMarker("cquin")
hookimpl = pluggy.HookimplMarker("cquin")


@hookspec
def cquin_register_adapters(register: AdapterRegistry) -> None:
    """Called once when the plugin manager starts: add your adapter classes.

    Call ``register.add(MyAdapter)`` for each :class:`cquin.adapters.base.Adapter`
    subclass the plugin provides.  An adapter declares its ``name``,
    ``description``, ``tables`` (the canonical tables it can fill) and
    ``options``; implements ``detect(path) -> bool`` (does this path look like
    my format?) and ``load(path, builder, options)`` (stage rows into the
    :class:`cquin.dataset.DatasetBuilder`, reporting any record it cannot use
    through ``builder.reject``).  Returns nothing.
    """
