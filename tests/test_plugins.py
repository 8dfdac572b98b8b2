"""The plugin contract: every component registers through hooks, and clashes name both plugins."""

from __future__ import annotations

import inspect

import pytest

from collapse_bench import Mixer, hookimpl, hookspecs
from collapse_bench.builtin.mixers import Replace
from collapse_bench.errors import ConfigError, PluginError
from collapse_bench.plugins import HOOKS, Registry, create_plugin_manager


class Shadow(Replace):
    """A second mixer called 'replace'."""


class ShadowPlugin:
    @hookimpl
    def register_mixers(self, register):
        register(Shadow)


class NotAMixerPlugin:
    @hookimpl
    def register_mixers(self, register):
        register(dict)


class Window(Mixer):
    """The last two synthetic sets."""

    name = "window"

    def mix(self, ctx):
        return ctx.history[-1]


class WindowPlugin:
    @hookimpl
    def register_mixers(self, register):
        register(Window)


def test_builtins_register_through_the_hooks(registry):
    for kind in HOOKS:
        entries = registry.entries(kind)
        assert entries, kind
        assert all(
            e.distribution == "collapse-bench" and e.plugin.startswith("collapse_bench.builtin") for e in entries
        )
        assert all(e.description for e in entries), kind


def test_a_plugin_adds_a_component():
    pm, infos = create_plugin_manager()
    pm.register(WindowPlugin(), name="window-plugin")
    entry = Registry(pm, infos).get("mixer", "window")
    assert (
        entry.obj is Window and entry.plugin == "window-plugin" and entry.description == "The last two synthetic sets."
    )


def test_two_plugins_with_one_name_is_an_error_naming_both():
    pm, infos = create_plugin_manager()
    pm.register(ShadowPlugin(), name="shadow-plugin")
    with pytest.raises(PluginError) as err:
        Registry(pm, infos)
    assert "collapse-bench" in err.value.cause and "shadow-plugin" in err.value.cause and "'replace'" in err.value.cause


def test_registering_something_that_is_not_a_component_is_refused(capsys, monkeypatch):
    pm, infos = create_plugin_manager()
    pm.register(NotAMixerPlugin(), name="bad-plugin")
    registry = Registry(pm, infos)  # a warning, and everything else keeps working
    assert "bad-plugin" in capsys.readouterr().err and "replace" in registry.names("mixer")
    monkeypatch.setenv("COLLAPSE_BENCH_STRICT_PLUGINS", "1")
    pm, infos = create_plugin_manager()
    pm.register(NotAMixerPlugin(), name="bad-plugin")
    with pytest.raises(PluginError, match="bad-plugin"):
        Registry(pm, infos)


def test_unknown_names_suggest_the_closest(registry):
    with pytest.raises(ConfigError) as err:
        registry.get("mixer", "acumulate")
    assert "did you mean 'accumulate'" in err.value.fix


def test_every_hook_is_documented_with_an_example():
    specs = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]
    assert {f.__name__ for f in specs} == set(HOOKS.values())
    for f in specs:
        doc = inspect.getdoc(f) or ""
        assert ":param register:" in doc and "Example::" in doc, f.__name__
