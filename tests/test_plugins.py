"""The plugin contract: every component registers through hooks, and clashes name both plugins."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from collapse_bench import HIGHER, Dataset, Metric, Mixer, Verifier, hookimpl, hookspecs
from collapse_bench.builtin.mixers import Replace
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.protocols import PROTOCOL_DIR
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


class Sonnets(Dataset):
    """A handful of documents."""

    name = "sonnets"
    modality = "text"

    def load(self):
        return ["Shall I compare thee to a summer's day?", "Thou art more lovely and more temperate."]


class Unigram(CategoricalModel):
    """A categorical model under another name."""

    name = "unigram"


class TypeTokenRatio(Metric):
    """Distinct types over tokens."""

    name = "type-token-ratio"
    modalities = frozenset({"text"})
    outputs = {"type-token-ratio": HIGHER}

    def compute(self, ctx):
        return {"type-token-ratio": len(set(ctx.samples.ravel().tolist())) / ctx.samples.size}


class RowLength(Verifier):
    """Prefers short vectors."""

    name = "row-length"
    modalities = frozenset({"vector"})

    def score(self, rows, ctx):
        return -np.linalg.norm(rows, axis=1)


class EveryHook:
    """One plugin using every hook, so that each hook is exercised by a test."""

    def __init__(self, protocol: Path) -> None:
        self.protocol = protocol

    @hookimpl
    def register_datasets(self, register):
        register(Sonnets)

    @hookimpl
    def register_models(self, register):
        register(Unigram)

    @hookimpl
    def register_mixers(self, register):
        register(Window)

    @hookimpl
    def register_metrics(self, register):
        register(TypeTokenRatio)

    @hookimpl
    def register_verifiers(self, register):
        register(RowLength)

    @hookimpl
    def register_protocols(self, register):
        register(self.protocol)


def test_every_hook_registers_its_components(tmp_path):
    text = (Path(PROTOCOL_DIR) / "smoke.toml").read_text().replace('name = "smoke"', 'name = "every-hook"')
    (tmp_path / "every.toml").write_text(text)
    plugin = EveryHook(tmp_path / "every.toml")
    implemented = {name for name in HOOKS.values() if hasattr(getattr(plugin, name, None), "collapse_bench_impl")}
    assert implemented == set(HOOKS.values()), "extend EveryHook when a hook is added"
    pm, infos = create_plugin_manager()
    pm.register(plugin, name="every-hook")
    registry = Registry(pm, infos)
    for kind, name in [
        ("dataset", "sonnets"),
        ("model", "unigram"),
        ("mixer", "window"),
        ("metric", "type-token-ratio"),
        ("verifier", "row-length"),
        ("protocol", "every-hook"),
    ]:
        assert registry.get(kind, name).plugin == "every-hook", kind
    assert Sonnets().load()[0].startswith("Shall I")


class BrokenProtocolPlugin:
    def __init__(self, path: Path) -> None:
        self.path = path

    @hookimpl
    def register_protocols(self, register):
        register(self.path)


def test_a_broken_protocol_file_is_the_plugins_problem(tmp_path, capsys):
    (tmp_path / "bad.toml").write_text("name = [unclosed")
    pm, infos = create_plugin_manager()
    pm.register(BrokenProtocolPlugin(tmp_path / "bad.toml"), name="bad-protocols")
    registry = Registry(pm, infos)
    assert "bad-protocols" in capsys.readouterr().err and "quick" in registry.names("protocol")
