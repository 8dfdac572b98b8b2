"""The ``ray`` executor: every step a Ray task, its parent's result passed as an object reference.

Ray starts a step once its parent has finished, on any node with the CPUs and GPUs the model
asks for. A lost worker or node is a system failure that Ray retries (``max_retries``); a
plugin's exception is returned as the step's error, never retried, and recorded as the cell's
failure. Workers write only cache entries, so on several machines the cache must be on a
filesystem every node mounts: :meth:`RayExecutor.check_shared_cache` proves it before the run.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collapse_bench.engine.executors import Done, ExecutorOptions
from collapse_bench.engine.graph import StepGraph, StepSpec
from collapse_bench.engine.worker import WorkerSetup, run_step
from collapse_bench.engine.workspace import StepResult
from collapse_bench.errors import DiskFullError, UserError

#: Times Ray starts a task again after its worker or node was lost.
MAX_RETRIES = 3
#: Environment the workers of a run share with the driver (plugins found the same way).
SHARED_ENVIRONMENT = ("PYTHONPATH", "COLLAPSE_BENCH_PLUGINS_DIR", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
#: Seconds to wait for a cluster to answer, and for the cache probe.
CONNECT_TIMEOUT = 60


def _step_after(setup: WorkerSetup, step: StepSpec, parent: StepResult | None = None) -> StepResult:
    """A Ray task: compute ``step`` unless its parent failed (then it is skipped, never recorded)."""
    if parent is not None and parent.error is not None:
        return StepResult(step.key, error=parent.error, skipped=True)
    return run_step(setup, step)


def _probe(root: str, token: str) -> str:
    """A Ray task: leave ``token`` in the cache folder, for the driver to find; return this node's name."""
    import socket

    folder = Path(root) / "probes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / token).write_text(token, encoding="utf-8")
    return socket.gethostname()


def _reachable(address: str) -> None:
    """Refuse a ``host:port`` nobody listens on at once (Ray itself would retry for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {host}:{port} ({exc.strerror or exc})") from None


def _token_auth_if_available() -> None:
    """Send the cluster a token when one is at hand and the user chose no authentication mode.

    ``ray start`` turns token authentication on by itself when ``~/.ray/auth_token`` exists, but a
    driver joining by address sends a token only under ``RAY_AUTH_MODE=token``, so without this
    the documented ``ray start`` recipe was refused ("InvalidAuthToken"). A cluster without
    authentication accepts a driver that sends a token.
    """
    if os.environ.get("RAY_AUTH_MODE"):
        return
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    if os.environ.get("RAY_AUTH_TOKEN") or Path(path).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line error saying how to install it."""
    _token_auth_if_available()  # Ray reads its authentication mode when first imported
    try:
        import ray
    except ImportError:
        raise UserError(
            "--executor ray needs Ray, which is not installed", "pip install 'collapse-bench[ray]'"
        ) from None
    return ray


class RayExecutor:
    """Steps as Ray tasks on an existing cluster (``--ray-address``, ``RAY_ADDRESS``) or a local one."""

    def __init__(self, setup: WorkerSetup, options: ExecutorOptions, resources: Callable[[StepSpec], dict]) -> None:
        self.setup, self.options, self.resources = setup, options, resources
        self.ray = import_ray()
        #: Whether this run called ``ray.init`` (rather than finding this process already joined).
        self.joined = False
        #: Whether it also started the cluster (a local one), which it then stops.
        self.started = False
        self.refs: list[Any] = []

    def connect(self) -> None:
        """Join the cluster the user named, the one this process already joined, or start a local one."""
        ray = self.ray
        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        address = self.options.ray_address or os.environ.get("RAY_ADDRESS")
        env = {k: os.environ[k] for k in SHARED_ENVIRONMENT if os.environ.get(k)}
        settings: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False, "logging_level": "error"}
        try:
            if address:
                _reachable(address)
                ray.init(address=address, **settings)
            else:
                ray.init(include_dashboard=False, **settings)
                self.started = True
            self.joined = True
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(
                f"cannot reach the Ray cluster at {address or 'a new local cluster'}: {first}",
                "start it with `ray start --head` (see docs/scale-out.md), or check --ray-address / RAY_ADDRESS; a "
                "cluster with token authentication needs its token here (~/.ray/auth_token or RAY_AUTH_TOKEN)",
            ) from None

    def check_shared_cache(self) -> None:
        """Have a worker on every node write into the cache, and read it here; refuse a cache they do not share."""
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        probe = ray.remote(_probe)
        tokens = {}
        for node in ray.nodes():
            if node.get("Alive"):
                token = uuid.uuid4().hex
                strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                tokens[token] = probe.options(num_cpus=0, scheduling_strategy=strategy).remote(
                    self.setup.cache_root, token
                )
        try:
            hosts = dict(zip(tokens, ray.get(list(tokens.values()), timeout=CONNECT_TIMEOUT), strict=True))
        except (ray.exceptions.RayError, ray.exceptions.GetTimeoutError) as exc:
            raise UserError(
                f"a Ray worker could not write into the cache {self.setup.cache_root}: {str(exc).splitlines()[0]}",
                "give --cache a folder every node of the cluster can write (a shared filesystem)",
            ) from None
        folder = Path(self.setup.cache_root) / "probes"
        try:
            for token, host in hosts.items():
                if not (folder / token).exists():
                    raise UserError(
                        f"the cache {self.setup.cache_root} is not shared with the Ray workers: "
                        f"a file written there on node {host} is not visible here",
                        "give --cache a folder on a filesystem every node mounts (NFS, Lustre, ...)",
                    )
        finally:
            for token in hosts:
                (folder / token).unlink(missing_ok=True)

    def execute(self, graph: StepGraph, done: Done) -> None:
        ray = self.ray
        task = ray.remote(_step_after)
        setup = ray.put(self.setup)
        refs: dict[str, Any] = {}
        for step in graph.steps:
            need = self.resources(step)
            options = {"num_cpus": need.get("cpus", 1), "num_gpus": need.get("gpus", 0)}
            options.update(max_retries=MAX_RETRIES, retry_exceptions=False)
            parent = refs[step.parent] if step.parent else None
            refs[step.key] = task.options(**options).remote(setup, step, parent)
        steps = {ref: graph.by_key[key] for key, ref in refs.items()}
        pending = list(refs.values())
        self.refs = pending
        while pending:
            finished, pending = ray.wait(pending, num_returns=1)
            self.refs = pending
            step = steps[finished[0]]
            try:
                result = ray.get(finished[0])
            except ray.exceptions.RayError as exc:  # retries used up, or an earlier generation's task lost
                if isinstance(getattr(exc, "cause", None), DiskFullError):
                    raise exc.cause from None
                if step.parent is not None and self._lost(refs[step.parent]):
                    continue  # the parent's loss is the failure recorded for this chain
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                result = StepResult(step.key, error=f"Ray lost the task: {text}", traceback=str(exc))
            if not result.skipped:
                done(step, result)

    def _lost(self, ref: Any) -> bool:
        """Whether a finished task ended in a system failure (rather than with a result)."""
        try:
            self.ray.get(ref, timeout=0)
        except self.ray.exceptions.RayError:
            return True
        return False

    def cancel(self) -> None:
        """Stop every task not finished, and leave the cluster if this run joined it.

        Leaving ends this run's Ray job, and Ray stops the job's workers, tasks running or not.
        Cancelling task by task (``ray.cancel(force=True)``) races with a task finishing at that
        moment, which crashes the driver inside Ray ("Tried to complete task that was not
        pending", ray-project/ray#54846; here about one interrupt in six): that is left for a
        process that joined the cluster itself, whose connection is not this run's to close.
        """
        refs, self.refs = self.refs, []
        if self.joined:
            self.ray.shutdown()
            self.joined = self.started = False
            return
        for ref in refs:
            with contextlib.suppress(self.ray.exceptions.RayError):  # finished meanwhile
                self.ray.cancel(ref, force=True)

    def close(self) -> None:
        """Leave the cluster (and stop it if this run started it)."""
        if self.started:
            self.ray.shutdown()
            self.joined = self.started = False
