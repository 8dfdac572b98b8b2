"""The plugin manager and the registry of every component that plugins provide.

Built-in plugin modules and third-party packages (entry-point group ``collapse_bench``) are
loaded into one pluggy ``PluginManager``. The registry calls each ``register_*`` hook
implementation separately, so that it knows which plugin (and which distribution) provided each
component and can name both sides of a clash.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from collapse_bench import hookspecs
from collapse_bench.components import KINDS, Component
from collapse_bench.errors import ConfigError, PluginError

PROJECT = "collapse_bench"

#: Plugin modules that ship with collapse-bench, registered like any third-party plugin.
BUILTIN_PLUGINS = (
    "collapse_bench.builtin.datasets",
    "collapse_bench.builtin.models",
    "collapse_bench.builtin.mixers",
    "collapse_bench.builtin.metrics",
    "collapse_bench.builtin.protocols",
)

#: Hook name for each component kind.
HOOKS = {
    "dataset": "register_datasets",
    "model": "register_models",
    "mixer": "register_mixers",
    "metric": "register_metrics",
    "protocol": "register_protocols",
}


@dataclass(frozen=True)
class Registered:
    """One registered component and where it came from."""

    kind: str
    name: str
    obj: Any  # a Component subclass, or a protocol file Path
    plugin: str
    distribution: str | None
    version: str | None
    description: str

    @property
    def origin(self) -> str:
        """The distribution (with version) or plugin module that registered this component."""
        if self.distribution:
            return f"{self.distribution} {self.version}"
        return self.plugin


def create_plugin_manager() -> pluggy.PluginManager:
    """A fresh manager with the built-in plugins and every installed entry-point plugin."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    for module in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
    pm.load_setuptools_entrypoints(PROJECT)
    pm.check_pending()
    return pm


class Registry:
    """Every dataset, model, mixer, metric and protocol the installed plugins provide."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._items: dict[str, dict[str, Registered]] = {kind: {} for kind in HOOKS}
        self._collect()

    def _collect(self) -> None:
        dists = {id(plugin): dist for plugin, dist in self.pm.list_plugin_distinfo()}
        from collapse_bench import __version__

        for kind, hook_name in HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):  # registration order
                dist = dists.get(id(impl.plugin))
                if impl.plugin_name in BUILTIN_PLUGINS:
                    dist_name, dist_version = "collapse-bench", __version__
                elif dist is not None:
                    dist_name, dist_version = dist.project_name, dist.version
                else:
                    dist_name = dist_version = None
                register = functools.partial(self._add, kind, impl.plugin_name, dist_name, dist_version)
                impl.function(register=register)

    def _add(
        self,
        kind: str,
        plugin: str,
        dist: str | None,
        version: str | None,
        obj: Any,
    ) -> None:
        if kind == "protocol":
            path = Path(obj)
            with path.open("rb") as fh:
                meta = tomllib.load(fh)
            name, description = meta.get("name", path.stem), meta.get("description", "")
        else:
            base = KINDS[kind]
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise PluginError(
                    f"plugin {plugin!r} registered {obj!r} as a {kind}, which is not a "
                    f"subclass of {base.__module__}.{base.__name__}",
                    f"register a subclass of collapse_bench.{base.__name__}",
                )
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    f"plugin {plugin!r} registered a {kind} class {obj.__name__} without a name",
                    "give the class a `name` attribute",
                )
            description = obj.summary()
        table = self._items[kind]
        if name in table:
            other = table[name]
            raise PluginError(
                f"two plugins register a {kind} named {name!r}: {other.origin} ({other.plugin}) "
                f"and {dist + ' ' + str(version) if dist else plugin} ({plugin})",
                "uninstall one of them or rename one component",
            )
        table[name] = Registered(kind, name, obj, plugin, dist, version, description)

    def names(self, kind: str) -> list[str]:
        """Registered names of one kind, sorted."""
        return sorted(self._items[kind])

    def entries(self, kind: str) -> list[Registered]:
        """Registered components of one kind, sorted by name."""
        return [self._items[kind][n] for n in self.names(kind)]

    def get(self, kind: str, name: str) -> Registered:
        """Look up a component, or fail with a did-you-mean naming the known ones."""
        table = self._items[kind]
        if name in table:
            return table[name]
        close = difflib.get_close_matches(name, table, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"unknown {kind} {name!r}",
            f"{hint}known {kind}s: {', '.join(sorted(table))}; `collapse-bench list` shows them all",
        )

    def component(self, kind: str, name: str) -> type[Component]:
        """The registered class of a dataset, model, mixer or metric."""
        return self.get(kind, name).obj


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    return Registry(create_plugin_manager())
