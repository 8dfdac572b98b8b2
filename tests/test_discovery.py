"""Third-party plugins through entry points: selection, isolation of broken ones, tracing, listing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_distribution

GOOD = '''
from collapse_bench import Mixer, hookimpl


class Window(Mixer):
    """The last two synthetic sets together."""

    name = "window"

    def __init__(self, *, k: int = 2) -> None:
        self.k = k

    def mix(self, ctx):
        import numpy as np

        return np.concatenate(ctx.history[-self.k:])


@hookimpl
def register_mixers(register):
    register(Window)
'''
BROKEN = "import a_module_that_does_not_exist\n"
TYPO = """
from collapse_bench import hookimpl


@hookimpl
def register_mixer(register):
    pass
"""
RAISING = """
from collapse_bench import hookimpl


@hookimpl
def register_metrics(register):
    raise RuntimeError("metrics are not ready")
"""
LOOSE = '''
import numpy as np
from collapse_bench import HIGHER, Metric, hookimpl


class TypeTokenRatio(Metric):
    """Distinct token types over tokens in the synthetic set."""

    name = "type-token-ratio"
    modalities = frozenset({"text"})
    outputs = {"type-token-ratio": HIGHER}

    def compute(self, ctx):
        return {"type-token-ratio": len(np.unique(ctx.samples)) / ctx.samples.size}


@hookimpl
def register_metrics(register):
    register(TypeTokenRatio)
'''


@pytest.fixture
def site(tmp_path) -> dict[str, str]:
    """One good and three broken plugin distributions, installed."""
    env = {}
    for dist, source in (
        ("good-plugin", GOOD),
        ("broken-plugin", BROKEN),
        ("typo-plugin", TYPO),
        ("raising-plugin", RAISING),
    ):
        env = make_distribution(tmp_path / "site", dist, source)
    return env


def cb(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COLLAPSE_BENCH_") or k == "COLLAPSE_BENCH_CACHE"}
    return subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env={**clean, **env}, timeout=600,
    )  # fmt: skip


def test_a_good_plugin_runs_beside_broken_ones(tmp_path, site):
    res = cb("list", "mixer", cwd=tmp_path, env=site)
    assert res.returncode == 0, res.stderr
    assert "window" in res.stdout and "good-plugin 0.1" in res.stdout
    warnings = res.stderr
    assert "broken-plugin 0.1" in warnings and "ModuleNotFoundError" in warnings
    assert "typo-plugin 0.1" in warnings and "did you mean 'register_mixers'" in warnings
    assert "raising-plugin 0.1" in warnings and "metrics are not ready" in warnings
    assert "Traceback" not in warnings
    run = cb("run", "--protocol", "smoke", "--mixer", "window:k=2", "--mixer", "replace", "-q", cwd=tmp_path, env=site)
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in next((tmp_path / "runs").glob("*/records.jsonl")).read_text().splitlines()]
    assert {r["mixer"] for r in records} == {"window", "replace"}


def test_strict_mode_turns_a_broken_plugin_into_an_error(tmp_path, site):
    res = cb("list", cwd=tmp_path, env={**site, "COLLAPSE_BENCH_STRICT_PLUGINS": "1"})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("collapse-bench: error:") and "broken-plugin" in res.stderr


@pytest.mark.parametrize(
    ("variable", "value", "window_loaded"),
    [
        ("COLLAPSE_BENCH_LOAD_PLUGINS", "good-plugin", True),
        ("COLLAPSE_BENCH_LOAD_PLUGINS", "good_plugin", True),
        ("COLLAPSE_BENCH_LOAD_PLUGINS", "", False),
        ("COLLAPSE_BENCH_DISABLE_PLUGINS", "good-plugin,broken-plugin,typo-plugin,raising-plugin", False),
    ],
)
def test_choosing_which_plugins_load(tmp_path, site, variable, value, window_loaded):
    res = cb("list", "mixer", cwd=tmp_path, env={**site, variable: value})
    assert res.returncode == 0
    assert ("window" in res.stdout) is window_loaded
    assert "warning" not in res.stderr  # the broken ones were not loaded at all
    assert "replace" in res.stdout  # built-ins always load


def test_loose_plugin_files_and_tracing(tmp_path):
    folder = tmp_path / "my-plugins"
    folder.mkdir()
    (folder / "ttr.py").write_text(LOOSE)
    env = {"COLLAPSE_BENCH_TRACE_PLUGINS": "1"}
    res = cb("--plugins-dir", str(folder), "list", "metric", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "type-token-ratio" in res.stdout and str(folder) in res.stdout
    assert "trace: register_metrics -> " in res.stderr and "type-token-ratio" in res.stderr
    run = cb(
        "--plugins-dir",
        str(folder),
        "run",
        "--protocol",
        "smoke",
        "--metric",
        "type-token-ratio",
        "-q",
        cwd=tmp_path,
        env={},
    )
    assert run.returncode == 0, run.stderr
    missing = cb("--plugins-dir", str(tmp_path / "nope"), "list", cwd=tmp_path, env={})
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_plugins_command_lists_distributions_hooks_and_components(tmp_path, site):
    res = cb("plugins", "--json", cwd=tmp_path, env=site)
    assert res.returncode == 0
    rows = {r["distribution"] or r["name"]: r for r in json.loads(res.stdout)}
    good = rows["good-plugin"]
    assert (
        good["version"] == "0.1"
        and good["hooks"] == ["register_mixers"]
        and good["components"] == {"mixer": ["window"]}
    )
    assert good["problem"] is None
    assert "ModuleNotFoundError" in rows["broken-plugin"]["problem"]
    assert rows["collapse-bench"]["source"] == "built-in"
    text = cb("plugins", cwd=tmp_path, env=site).stdout
    assert "good_plugin  (good-plugin 0.1)" in text and "NOT LOADED" in text
