"""Shared fixtures: run protocols through the real harness into temporary run directories."""

from __future__ import annotations

import os

# Tests never touch the network: the hub and telemetry stay off (read when `datasets` is imported).
os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", HF_UPDATE_DOWNLOAD_COUNTS="0")

from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import pytest

from collapse_bench import load_results
from collapse_bench.plugins import get_registry
from collapse_bench.protocol import resolve_protocol
from collapse_bench.runner import Runner, load_data, make_plan
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
    **overrides,
) -> pd.DataFrame:
    """Run a protocol through plan, data loading and the runner; return its tidy results."""
    proto = resolve_protocol(protocol).override(**overrides)
    plan = make_plan(registry, proto, models, mixers, metrics)
    load_data(plan)
    run = RunDir(out)
    run.create()
    from collapse_bench.runner import manifest

    run.write_manifest(manifest(plan, out.name, ["test"]))
    Runner(plan, run).execute()
    return load_results(out)


@pytest.fixture
def run(registry, tmp_path) -> Callable[..., pd.DataFrame]:
    """``run(protocol, models, mixers, metrics, **overrides)`` into a fresh temporary run directory."""
    counter = iter(range(1000))

    def _run(*args, **kwargs) -> pd.DataFrame:
        return run_protocol(registry, tmp_path / f"run{next(counter)}", *args, **kwargs)

    return _run
