"""The plugin manager: built-in adapters and those installed under the ``cquin.adapters`` entry point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import pluggy

from cquin import __version__, hookspecs
from cquin.adapters.base import Adapter, AdapterRegistry, RegisteredAdapter
from cquin.exceptions import AdapterError

ENTRY_POINT_GROUP = "cquin.adapters"
BUILTIN = ("cquin.adapters.canonical", "cquin.adapters.fhir", "cquin.adapters.csds", "cquin.adapters.mapped")


@cache
def plugin_manager() -> pluggy.PluginManager:
    import importlib

    pm = pluggy.PluginManager("cquin")
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        pm.register(module, name=name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take cquin down
            _broken.append(f"plugin {ep.name!r} ({ep.value}) failed to load: {type(exc).__name__}: {exc}")
            continue
        dist = ep.dist
        pm.register(plugin, name=f"{ENTRY_POINT_GROUP}:{ep.name}")
        _origin[f"{ENTRY_POINT_GROUP}:{ep.name}"] = (dist.name if dist else ep.name, dist.version if dist else "")
    pm.check_pending()
    return pm


_broken: list[str] = []
_origin: dict[str, tuple[str, str]] = {}


@cache
def registry() -> AdapterRegistry:
    pm = plugin_manager()
    reg = AdapterRegistry()
    for name, plugin in pm.list_name_plugin():
        reg.registering_for(*_origin.get(name, ("cquin", __version__)))
        hook = getattr(plugin, "cquin_register_adapters", None)
        if hook is None:
            continue
        try:
            hook(register=reg)
        except Exception as exc:
            _broken.append(f"plugin {name!r} failed to register its adapters: {type(exc).__name__}: {exc}")
    return reg


def broken_plugins() -> list[str]:
    registry()
    return list(_broken)


def adapters() -> dict[str, RegisteredAdapter]:
    return dict(registry().adapters)


def get_adapter(name: str) -> Adapter:
    found = adapters().get(name)
    if found is None:
        raise AdapterError(f"no adapter called {name!r} (installed: {', '.join(sorted(adapters()))})")
    return found.cls()


def detect_adapter(path: Path) -> Adapter:
    """The one adapter that recognises ``path``; an error if none or several do."""
    matches = []
    for name, reg in sorted(adapters().items()):
        try:
            if reg.cls().detect(path):
                matches.append(name)
        except Exception as exc:
            raise AdapterError(f"adapter {name!r} failed while looking at {path}: {type(exc).__name__}: {exc}") from None
    if not matches:
        raise AdapterError(f"no adapter recognises {path}; name one with --adapter (installed: {', '.join(sorted(adapters()))})")
    if len(matches) > 1:
        raise AdapterError(f"several adapters recognise {path} ({', '.join(matches)}); choose one with --adapter")
    return get_adapter(matches[0])
