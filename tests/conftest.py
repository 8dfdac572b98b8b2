"""Shared fixtures: run protocols through the real harness into temporary run directories."""

from __future__ import annotations

import os
import tempfile
import textwrap

# Tests never touch the network: the hub and telemetry stay off (read when `datasets` is imported).
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_UPDATE_DOWNLOAD_COUNTS="0")
# Commands started by tests cache into a fresh folder, never the user's cache.
os.environ["COLLAPSE_BENCH_CACHE"] = tempfile.mkdtemp(prefix="collapse-bench-test-cache-")

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from collapse_bench import load_results
from collapse_bench.cache import Cache
from collapse_bench.plugins import get_registry
from collapse_bench.protocol import resolve_protocol
from collapse_bench.runner import RunConfig, Runner, load_data, make_plan, manifest
from collapse_bench.store import RunDir


@pytest.fixture(scope="session")
def registry():
    return get_registry()


def run_protocol(
    registry,
    out: Path,
    protocol: str = "smoke",
    models: Sequence[str] = (),
    mixers: Sequence[str] = (),
    metrics: Sequence[str] = (),
    cache: Path | None = None,
    **overrides,
) -> pd.DataFrame:
    """Run a protocol through plan, data loading and the runner; return its tidy results."""
    proto = resolve_protocol(protocol).override(**overrides)
    plan = make_plan(registry, proto, models, mixers, metrics)
    load_data(plan)
    run = RunDir(out)
    with run.lock():
        run.write_manifest(manifest(plan, RunConfig(protocol, tuple(models), tuple(mixers)), out.name, ["test"]))
        failures = Runner(plan, run, Cache(cache or out / "cache")).execute()
    assert not failures, failures
    return load_results(out)


@pytest.fixture
def run(registry, tmp_path) -> Callable[..., pd.DataFrame]:
    """``run(protocol, models, mixers, metrics, **overrides)`` into a fresh temporary run directory."""
    counter = iter(range(1000))

    def _run(*args, **kwargs) -> pd.DataFrame:
        return run_protocol(registry, tmp_path / f"run{next(counter)}", *args, **kwargs)

    return _run


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
