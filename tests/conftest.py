"""Shared fixtures: run protocols through the real harness into temporary run directories."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap

# Tests never touch the network: the hub and telemetry stay off (read when `datasets` is imported).
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_EVALUATE_OFFLINE="1", HF_UPDATE_DOWNLOAD_COUNTS="0")
# Commands started by tests cache into a fresh folder, never the user's cache.
os.environ["COLLAPSE_BENCH_CACHE"] = tempfile.mkdtemp(prefix="collapse-bench-test-cache-")

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from collapse_bench.plugins import get_registry

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def registry():
    return get_registry()


@pytest.fixture
def run(collapse_bench_run) -> Callable[..., pd.DataFrame]:
    """``run(protocol, models, mixers, metrics, **overrides)``: the authoring kit's fixture, as our tests use it."""
    return collapse_bench_run


def make_distribution(site: Path, dist: str, source: str) -> dict[str, str]:
    """Install a real distribution (metadata and a ``collapse_bench`` entry point) into ``site``.

    ``importlib.metadata`` finds it on ``PYTHONPATH`` exactly as it finds pip-installed packages,
    so tests exercise entry-point discovery for real. Returns the environment to run with.
    """
    module = dist.replace("-", "_")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[collapse_bench]\n{module} = {module}\n")
    return {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``collapse-bench ARGS`` in a real subprocess, as a user runs it."""
    code = "from collapse_bench.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """``cli(*args, cwd=folder)``: run the command line in a subprocess."""
    return _cli


@pytest.fixture(scope="session")
def smoke(tmp_path_factory) -> Path:
    """A folder with a finished smoke run ``runs/grid`` and its ``bundle.json``.

    ngram x (replace, accumulate) x 2 seeds, 3 generations: seconds.
    """
    root = tmp_path_factory.mktemp("smoke")
    args = ["run", "-p", "smoke", "--model", "ngram", "--mixer", "replace", "--mixer", "accumulate"]
    done = _cli(*args, "--seeds", "2", "--out", "runs", "--run-id", "grid", "-q", cwd=root)
    assert done.returncode == 0, done.stderr
    done = _cli("export", "runs", "-o", "bundle.json", cwd=root)
    assert done.returncode == 0, done.stderr
    assert "2 entries, 4 cells, 1 run(s)" in done.stdout
    return root
