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
import importlib.metadata
import importlib.util
import os
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from collapse_bench import hookspecs
from collapse_bench.components import Component
from collapse_bench.errors import ConfigError, PluginError
from collapse_bench.hookspecs import HOOKS, KINDS
from collapse_bench.protocol import Protocol, load_protocol_file

PROJECT = "collapse_bench"

#: Plugin modules that ship with collapse-bench, registered like any third-party plugin.
BUILTIN_PLUGINS = (
    "collapse_bench.builtin.datasets",
    "collapse_bench.builtin.models",
    "collapse_bench.builtin.mixers",
    "collapse_bench.builtin.metrics",
    "collapse_bench.builtin.verifiers",
    "collapse_bench.builtin.protocols",
)


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


@dataclass
class PluginInfo:
    """One loaded (or refused) plugin, as ``collapse-bench plugins`` lists it."""

    name: str
    distribution: str | None
    version: str | None
    source: str  # "built-in", "entry point" or the path of a loose plugin file
    hooks: list[str] = field(default_factory=list)
    problem: str | None = None


def _names(variable: str) -> set[str] | None:
    """Normalized distribution names in an environment variable; ``None`` when it is unset."""
    value = os.environ.get(variable)
    if value is None:
        return None
    return {_normalize(n) for n in value.split(",") if n.strip()}


def _normalize(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _flag(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}


class Problems:
    """Plugin failures: warnings that leave everything else working, or errors in strict mode."""

    def __init__(self) -> None:
        self.strict = _flag("COLLAPSE_BENCH_STRICT_PLUGINS")

    def __call__(self, cause: str, fix: str) -> str:
        if self.strict:
            raise PluginError(cause, fix + " (COLLAPSE_BENCH_STRICT_PLUGINS=1 makes this an error)")
        sys.stderr.write(f"collapse-bench: warning: {cause}; it is ignored ({fix})\n")
        return cause


def _loose_plugins(folders: list[Path]) -> list[tuple[str, Path]]:
    files = []
    for folder in folders:
        if not folder.is_dir():
            raise ConfigError(f"plugins folder {str(folder)!r} does not exist", "give an existing folder of .py files")
        files += [(f"{folder}/{f.name}", f) for f in sorted(folder.glob("*.py")) if not f.name.startswith("_")]
    return files


def create_plugin_manager(
    plugins_dirs: list[Path] | None = None, problems: Problems | None = None
) -> tuple[pluggy.PluginManager, list[PluginInfo]]:
    """A manager with the built-in plugins, the installed entry-point plugins and loose plugin files.

    ``COLLAPSE_BENCH_LOAD_PLUGINS`` (comma-separated distributions; empty for none) and
    ``COLLAPSE_BENCH_DISABLE_PLUGINS`` choose which installed plugins load. A plugin that fails
    to import, or whose hook implementations match no hook, is reported and left out.
    """
    from collapse_bench import __version__

    problems = problems or Problems()
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    infos = []
    for module in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(module), name=module)
        infos.append(PluginInfo(module, "collapse-bench", __version__, "built-in"))
    only, blocked = _names("COLLAPSE_BENCH_LOAD_PLUGINS"), _names("COLLAPSE_BENCH_DISABLE_PLUGINS") or set()
    candidates: list[tuple[str, str | None, str | None, str, Any]] = []
    for ep in importlib.metadata.entry_points(group=PROJECT):
        dist = ep.dist.metadata["Name"] if ep.dist else None
        version = ep.dist.version if ep.dist else None
        key = _normalize(dist or ep.name)
        if (only is not None and key not in only) or key in blocked or pm.has_plugin(ep.name):
            continue
        candidates.append((ep.name, dist, version, "entry point", ep.load))
    for name, path in _loose_plugins([*(plugins_dirs or []), *_env_dirs()]):
        candidates.append((name, None, None, str(path), functools.partial(_import_file, path)))
    for name, dist, version, source, load in candidates:
        info = PluginInfo(name, dist, version, source)
        who = f"plugin {name!r}" + (f" ({dist} {version})" if dist else f" ({source})")
        try:
            plugin = load()
            pm.register(plugin, name=name)
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if pm.has_plugin(name):
                pm.unregister(name=name)
            info.problem = problems(f"{who} does not fit the hooks: {_hint(str(exc))}", "fix the plugin's hook names")
        except Exception as exc:  # an import error of third-party code
            info.problem = problems(f"{who} failed to load: {type(exc).__name__}: {exc}", "fix or uninstall it")
        infos.append(info)
    return pm, infos


def _env_dirs() -> list[Path]:
    value = os.environ.get("COLLAPSE_BENCH_PLUGINS_DIR", "")
    return [Path(p) for p in value.split(os.pathsep) if p]


def _import_file(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"collapse_bench_plugin_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hint(message: str) -> str:
    """Pluggy's message, with the closest real hook for a misspelled one."""
    for word in message.replace("'", " ").split():
        close = difflib.get_close_matches(word, list(HOOKS.values()), n=1, cutoff=0.8)
        if close and word != close[0]:
            return f"{message} (did you mean {close[0]!r}?)"
    return message


class Registry:
    """Every dataset, model, mixer, metric, verifier and protocol the loaded plugins provide."""

    def __init__(
        self, pm: pluggy.PluginManager, plugins: list[PluginInfo] | None = None, problems: Problems | None = None
    ) -> None:
        self.pm = pm
        self.plugins = plugins or []
        self.problems = problems or Problems()
        self.trace = _flag("COLLAPSE_BENCH_TRACE_PLUGINS")
        self._items: dict[str, dict[str, Registered]] = {kind: {} for kind in HOOKS}
        self._collect()

    def _collect(self) -> None:
        info = {p.name: p for p in self.plugins}
        for kind, hook_name in HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in reversed(hook.get_hookimpls()):  # registration order
                plugin = info.get(impl.plugin_name) or PluginInfo(impl.plugin_name, None, None, "registered")
                plugin.hooks.append(hook_name)
                offered: list[Any] = []
                try:
                    impl.function(register=offered.append)
                    described = [(obj, *self._describe(kind, obj)) for obj in offered]
                except Exception as exc:
                    who = f"plugin {plugin.name!r}" + (
                        f" ({plugin.distribution} {plugin.version})" if plugin.distribution else ""
                    )
                    what = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                    plugin.problem = self.problems(f"{who} failed in {hook_name}: {what}", "fix or uninstall it")
                    continue
                for obj, name, description in described:
                    self._add(kind, plugin.name, plugin.distribution, plugin.version, obj, name, description)
                if self.trace:
                    names = ", ".join(getattr(o, "name", str(o)) for o in offered) or "nothing"
                    sys.stderr.write(f"collapse-bench: trace: {hook_name} -> {plugin.name}: {names}\n")

    def _describe(self, kind: str, obj: Any) -> tuple[str, str]:
        """Name and description of a registered component, refusing anything that is not one of ``kind``."""
        base = KINDS[kind]
        if base is None:  # a protocol file
            path = Path(obj)
            if not path.is_file():
                raise PluginError(
                    f"registered protocol file {str(obj)!r} does not exist", "register an existing .toml path"
                )
            with path.open("rb") as fh:
                meta = tomllib.load(fh)  # a broken file is the plugin's problem, found here
            return meta.get("name", path.stem), meta.get("description", "")
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise PluginError(
                f"registered {obj!r} as a {kind}, which is not a subclass of collapse_bench.{base.__name__}",
                f"register a subclass of collapse_bench.{base.__name__}",
            )
        if not isinstance(getattr(obj, "name", None), str) or not obj.name:
            raise PluginError(
                f"registered a {kind} class {obj.__name__} without a name", "give the class a `name` attribute"
            )
        return obj.name, obj.summary()

    def _add(
        self,
        kind: str,
        plugin: str,
        dist: str | None,
        version: str | None,
        obj: Any,
        name: str,
        description: str,
    ) -> None:
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

    def protocol(self, name_or_path: str, sets: Sequence[str] = ()) -> Protocol:
        """A protocol by registered name (``quick``) or by path to a TOML file, with ``--set`` overrides."""
        path = Path(name_or_path)
        if not (name_or_path.endswith(".toml") or path.is_file()):
            path = Path(self.get("protocol", name_or_path).obj)
        return load_protocol_file(path, sets)

    def component(self, kind: str, name: str) -> type[Component]:
        """The registered class of a dataset, model, mixer, metric or verifier."""
        return self.get(kind, name).obj


#: Folders of loose plugin files given on the command line (``--plugins-dir``).
PLUGIN_DIRS: list[Path] = []


@functools.cache
def get_registry() -> Registry:
    """The process-wide registry, built on first use (plugins are loaded lazily, once)."""
    problems = Problems()
    pm, plugins = create_plugin_manager(PLUGIN_DIRS, problems)
    return Registry(pm, plugins, problems)
