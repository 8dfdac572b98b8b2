"""Shared fixtures: run protocols through the real harness into temporary run directories."""

from __future__ import annotations

import os
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
