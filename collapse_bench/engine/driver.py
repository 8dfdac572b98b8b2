"""The one run sequence: plan, prepare data, lock the run directory, write the manifest, execute, finish.

The command line, the pytest fixtures for plugin authors and the tests all run through
:func:`run`, so a run directory looks the same whichever way it was made.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collapse_bench.cache import Cache
from collapse_bench.contexts import RealData
from collapse_bench.engine.executors import (
    ExecutorOptions,
    LocalExecutor,
    ProcessExecutor,
    check_options,
    threads_per_worker,
)
from collapse_bench.engine.graph import Cell, StepGraph, StepSpec
from collapse_bench.engine.manifest import finish, manifest
from collapse_bench.engine.prepared import data_key, load_data
from collapse_bench.engine.worker import WorkerSetup
from collapse_bench.engine.workspace import StepResult, Workspace
from collapse_bench.errors import DiskFullError, writing
from collapse_bench.interrupts import stop_signals_interrupt
from collapse_bench.plan import Plan, RunConfig
from collapse_bench.plugins import Registry
from collapse_bench.store import RunDir


@dataclass
class Failure:
    """A cell that could not finish: where it stopped and what went wrong."""

    model: str
    mixer: str
    seed: int
    generation: int
    error: str
    traceback: str


@dataclass
class RunResult:
    """How a run ended: its directory, the cells that failed, and how much came from the cache."""

    rundir: RunDir
    plan: Plan
    #: The run's real data: its split and, for text, its tokenizer.
    real: RealData
    failures: list[Failure] = field(default_factory=list)
    reused: int = 0
    computed: int = 0
    resumed: bool = False


class Progress:
    """What the driver tells the user as a run goes; the command line shows it, the library stays silent."""

    def preparing(self, plan: Plan, step: str) -> None:
        """The dataset is being loaded and split (or read back from the cache); ``step`` says what happens now."""

    def start(self, plan: Plan, rundir: RunDir, real: RealData, steps: int, resumed: bool) -> None:
        """The run is about to execute ``steps`` steps."""

    def step(self, text: str, failed: bool = False) -> None:
        """A step finished (or failed); ``text`` names it."""

    def stop(self) -> None:
        """The run stopped executing (finished, failed or interrupted)."""

    def interrupted(self, rundir: RunDir) -> None:
        """The run was interrupted (Ctrl-C, SIGTERM, SIGHUP): the same command resumes it."""


def _executor(
    options: ExecutorOptions, plan: Plan, setup: WorkerSetup, workspace: Callable[[], Workspace], log: Callable
):
    """The executor the user chose, connected (and its cache checked) before anything is written."""
    if options.name == "local":
        return LocalExecutor(workspace)
    if options.name == "processes":
        return ProcessExecutor(setup, options.jobs, log)
    from collapse_bench.engine.ray_executor import RayExecutor

    models = {m.label: m.make() for m in plan.models}

    def resources(step: StepSpec) -> dict:
        need = models[step.model].resources()
        if options.gpus_per_task is not None:
            need = {**need, "gpus": options.gpus_per_task}
        return need

    executor = RayExecutor(setup, options, resources)
    executor.connect()
    executor.check_shared_cache()
    return executor


def run(
    config: RunConfig,
    out: Path | str = "runs",
    *,
    run_id: str | None = None,
    rundir: Path | str | None = None,
    cache: Cache | Path | str | None = None,
    executor: ExecutorOptions | str = "local",
    registry: Registry | None = None,
    retry: bool = False,
    argv: Sequence[str] = (),
    progress: Progress | None = None,
) -> RunResult:
    """Run ``config`` into ``out/run_id`` (a fresh name when not given) or into ``rundir``.

    An unfinished run of the same configuration in that directory is resumed; ``retry`` reruns
    the failed cells of a finished one. ``executor`` is ``"local"``, ``"processes"``,
    ``"ray"`` or :class:`ExecutorOptions`; workers load the installed plugins and those of
    ``--plugins-dir``, so ``registry`` (a registry of your own) needs the local executor.
    Raises :class:`~collapse_bench.errors.UserError` for anything the user can fix, before
    anything is written.
    """
    from collapse_bench import plugins

    options = ExecutorOptions(executor) if isinstance(executor, str) else executor
    check_options(options)
    if registry is not None and options.name != "local":
        raise ValueError("a registry of your own works with the local executor only: workers load installed plugins")
    registry = registry or plugins.get_registry()
    plan = config.make_plan(registry)
    cache = cache if isinstance(cache, Cache) else Cache(Path(cache) if cache else None)
    if rundir is None:
        stamp = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
        rundir = Path(out) / (run_id or f"{plan.protocol.name}-{stamp}")
    run_dir = RunDir(rundir)
    setup = WorkerSetup(
        config.to_dict(),
        tuple(str(Path(p).resolve()) for p in plugins.PLUGIN_DIRS),
        str(cache.root.resolve()),
        data_key(plan),
        threads=threads_per_worker(options.jobs) if options.name == "processes" else None,
    )
    real: RealData | None = None
    chosen = _executor(options, plan, setup, lambda: Workspace(plan, real, cache), cache.log)
    progress = progress or Progress()
    try:
        real = load_data(plan, cache, lambda step: progress.preparing(plan, step))
    finally:
        progress.stop()
    result = RunResult(run_dir, plan, real)
    try:
        with run_dir.lock():
            result.resumed = run_dir.begin_attempt(config.to_dict(), retry=retry, normalise=RunConfig.normalised)
            graph = StepGraph(plan, real.hashes, _finished_cells(plan, run_dir))
            run_dir.write_manifest(manifest(plan, config, real, run_dir.path.name, argv))
            if real.tokenizer is not None:
                with writing("run directory", run_dir.path):
                    real.tokenizer.save(str(run_dir.path / RunDir.TOKENIZER))
            progress.start(plan, run_dir, real, len(graph.steps), result.resumed)
            done = _Recorder(run_dir, graph, result, progress, cache.log)
            _execute(chosen, graph, done, run_dir, progress)
            run_dir.commit()
            finish(run_dir, "failed" if result.failures else "complete")
    finally:
        close = getattr(chosen, "close", None)
        if close:
            close()
    return result


def _finished_cells(plan: Plan, run_dir: RunDir) -> set[Cell]:
    """Cells an earlier attempt finished (every generation recorded): kept as they are, not run again."""
    generations = range(plan.protocol.generations)
    return {
        Cell(model.label, mixer.label, seed)
        for model in plan.models
        for mixer in plan.mixers
        for seed in plan.seeds
        if all((model.label, mixer.label, seed, g) in run_dir.kept for g in generations)
    }


def _execute(executor: Any, graph: StepGraph, done: _Recorder, run_dir: RunDir, progress: Progress) -> None:
    """Run the graph; a run stopped by Ctrl-C, SIGTERM, SIGHUP or a full disk is stamped ``interrupted``.

    Outstanding work is cancelled on every executor, what an earlier attempt recorded is merged
    back (:meth:`RunDir.commit`), and the same command resumes the run.
    """
    try:
        # Holding some disk space while the run writes leaves room to stamp the manifest on a full disk.
        with stop_signals_interrupt(), run_dir.reserve():
            executor.execute(graph, done)
    except DiskFullError as exc:  # no commit: merging needs room; the earlier records stay as they were
        executor.cancel()
        finish(run_dir, "interrupted", error=exc.cause)
        raise
    except KeyboardInterrupt as exc:
        executor.cancel()
        run_dir.commit()
        finish(run_dir, "interrupted", error=f"stopped by {exc.args[0] if exc.args else 'SIGINT'}")
        progress.interrupted(run_dir)
        raise
    finally:
        progress.stop()


class _Recorder:
    """What a finished step means for each cell it belongs to: records and excerpts, or failures.

    Only the driver writes the run directory, as steps finish, whichever executor ran them.
    """

    def __init__(self, run_dir: RunDir, graph: StepGraph, result: RunResult, progress: Progress, log: Callable) -> None:
        self.run_dir, self.graph, self.result, self.progress, self.log = run_dir, graph, result, progress, log

    def __call__(self, step: StepSpec, outcome: StepResult) -> None:
        for cell in self.graph.cells[step.key]:
            key = {"model": cell.model, "mixer": cell.mixer, "seed": cell.seed, "generation": step.generation}
            if outcome.error is None:
                self._record(cell, key, step, outcome)
                continue
            failure = Failure(**key, error=outcome.error, traceback=outcome.traceback or "")
            self.result.failures.append(failure)
            self.run_dir.append(RunDir.FAILURES, asdict(failure))
            where = f"{cell.model} | {cell.mixer} | seed {cell.seed} | generation {step.generation}"
            self.progress.step(f"FAILED {where}: {outcome.error}", failed=True)
        if outcome.error is None:
            if outcome.cached:
                self.result.reused += 1
            else:
                self.result.computed += 1
            self.progress.step(f"{step.label}{' (cached)' if outcome.cached else ''}")

    def _record(self, cell: Cell, key: dict[str, Any], step: StepSpec, outcome: StepResult) -> None:
        record = {**key, "scores": outcome.scores, "timings": outcome.timings, "train_rows": outcome.train_rows}
        record.update(threads=outcome.threads, shared=step.generation == 0, cached=outcome.cached, step=step.key)
        kept = self.run_dir.kept.get(tuple(key.values()))
        if kept is not None and kept.get("step") == step.key and not outcome.cached:
            # The cache no longer had this step, so it was recomputed to go on; the record of the
            # earlier attempt stays, and a difference is said, never hidden.
            if kept.get("scores") != outcome.scores:
                self.log(
                    f"{cell.model} | {cell.mixer} | seed {cell.seed} | generation {step.generation}: recomputed (the "
                    "cache no longer had it) with other values than the earlier attempt recorded; the earlier record "
                    "is kept"
                )
            record = kept
        self.run_dir.append(RunDir.RECORDS, record)
        self.run_dir.append(RunDir.SAMPLES, {**key, "rows": outcome.excerpt})
