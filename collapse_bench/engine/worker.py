"""What a worker process (or Ray task) needs to compute steps: the run's setup, and its own share of cores.

A worker rebuilds the plan from the run's configuration (plugins are installed, or loaded from
the same folders, on every machine) and reads the prepared data from the cache, so what travels
is a few strings, never models or data. It writes cache entries only; the driver alone writes
the run directory.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from dataclasses import dataclass
from typing import Any

#: Environment variables that size the thread pools of torch and the BLAS libraries.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class WorkerSetup:
    """Everything a worker needs to build its workspace: plain data, so it pickles anywhere."""

    config: dict[str, Any]
    plugin_dirs: tuple[str, ...]
    cache_root: str
    data_key: str
    #: Threads for torch and BLAS in this worker; ``None`` leaves the libraries' defaults.
    threads: int | None = None


def limit_threads(threads: int) -> None:
    """Give this process ``threads`` threads for torch and BLAS, so that workers do not spin each other.

    The environment covers libraries imported later; threadpoolctl (if installed) and torch
    (if imported) are told directly.
    """
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def init_process(setup: WorkerSetup) -> None:
    """Start a worker process: its share of cores; Ctrl-C is the driver's to handle, not the worker's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if setup.threads:
        limit_threads(setup.threads)


_workspaces: dict[str, Any] = {}


def workspace_for(setup: WorkerSetup) -> Any:
    """This process's :class:`~collapse_bench.engine.workspace.Workspace` for ``setup``, built once."""
    from collapse_bench.cache import digest

    name = digest(dataclasses.asdict(setup))
    if name not in _workspaces:
        from pathlib import Path

        from collapse_bench import plugins
        from collapse_bench.cache import Cache
        from collapse_bench.engine.prepared import read_prepared, settle
        from collapse_bench.engine.workspace import Workspace
        from collapse_bench.plan import RunConfig

        if setup.threads:
            limit_threads(setup.threads)
        plugins.PLUGIN_DIRS[:] = [Path(p) for p in setup.plugin_dirs]
        plan = RunConfig.from_dict(setup.config).make_plan(plugins.get_registry())
        cache = Cache(Path(setup.cache_root))
        real = read_prepared(cache, setup.data_key)
        if real is None:
            raise RuntimeError(f"the prepared data {setup.data_key[:12]} is not in the cache {setup.cache_root}")
        settle(plan, real)
        _workspaces.clear()
        _workspaces[name] = Workspace(plan, real, cache)
    return _workspaces[name]


def run_step(setup: WorkerSetup, step: Any) -> Any:
    """Compute one step in this worker; an exception (a plugin's, or a worker that cannot set up) is its error."""
    import traceback

    from collapse_bench.engine.workspace import StepResult

    try:
        workspace = workspace_for(setup)
    except Exception as exc:
        return StepResult(step.key, error=f"the worker could not set up: {exc}", traceback=traceback.format_exc())
    return workspace.run(step)
