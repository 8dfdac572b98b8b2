"""Executors run the ready steps of a :class:`StepGraph` and hand each result to the driver.

* ``local``: one step after another in this process (the default).
* ``processes``: ``--jobs N`` worker processes on this machine, each with its share of the cores.
* ``ray``: tasks on a Ray cluster (see :mod:`collapse_bench.engine.ray_executor`).

Every executor reports through the same ``done(step, result)`` callback, which is where the
driver writes the run directory; workers only ever write cache entries.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from collapse_bench.engine.graph import StepGraph, StepSpec
from collapse_bench.engine.worker import WorkerSetup, init_process, run_step
from collapse_bench.engine.workspace import StepResult, Workspace
from collapse_bench.errors import UserError
from collapse_bench.interrupts import deferred

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

Done = Callable[[StepSpec, StepResult], None]

#: Times a step is started again after the worker computing it died (killed, out of memory).
RETRIES = 2


@dataclass(frozen=True)
class ExecutorOptions:
    """How the user asked the grid to be run."""

    name: str = "local"
    jobs: int = 1
    ray_address: str | None = None
    gpus_per_task: float | None = None


class Executor(Protocol):
    """Runs every step of a graph whose ancestors succeeded; calls ``done`` as each one finishes."""

    def execute(self, graph: StepGraph, done: Done) -> None: ...

    def cancel(self) -> None:
        """Stop outstanding work now (an interrupt); what finished stays in the cache."""


class Ready:
    """The bookkeeping of a graph under execution: which steps may start, which never will."""

    def __init__(self, graph: StepGraph) -> None:
        self.graph = graph
        self.waiting = {s.key for s in graph.steps if s.parent is not None}
        self.ready = [s for s in graph.steps if s.parent is None]
        self.skipped: set[str] = set()

    def take(self) -> list[StepSpec]:
        """The steps that may start now, in graph order."""
        out, self.ready = self.ready, []
        return out

    def finished(self, step: StepSpec, result: StepResult) -> None:
        """Release the dependents of a step that succeeded; drop those of one that failed."""
        if result.error is not None:
            self.skipped |= self.graph.descendants(step.key)
            self.waiting -= self.skipped
            return
        for key in self.graph.dependents[step.key]:
            self.waiting.discard(key)
            self.ready.append(self.graph.by_key[key])


class LocalExecutor:
    """Every step in this process, in graph order (a chain's generations one after another)."""

    def __init__(self, workspace: Callable[[], Workspace]) -> None:
        self.workspace = workspace

    def execute(self, graph: StepGraph, done: Done) -> None:
        ready, workspace = Ready(graph), self.workspace()
        for step in graph.steps:
            if step.key not in ready.skipped:
                result = workspace.run(step)
                ready.finished(step, result)
                done(step, result)

    def cancel(self) -> None:
        """Nothing runs outside this process; the interrupt itself stops it."""


class ProcessExecutor:
    """``jobs`` worker processes on this machine; a step whose worker died is started again."""

    def __init__(self, setup: WorkerSetup, jobs: int, log: Callable[[str], None] = lambda _: None) -> None:
        self.setup, self.jobs, self.log = setup, jobs, log
        self.pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: forking a process that has started torch's or BLAS's threads can deadlock.
        context = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(self.jobs, mp_context=context, initializer=init_process, initargs=(self.setup,))
        return self.pool

    def execute(self, graph: StepGraph, done: Done) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        ready, pool = Ready(graph), self._start()
        running: dict[Future, StepSpec] = {}
        attempts: dict[str, int] = {}
        try:
            while True:
                for step in ready.take():
                    with deferred():  # submit may start a worker, which must get all of its start-up data
                        running[pool.submit(run_step, self.setup, step)] = step
                if not running:
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                lost: list[StepSpec] = []
                for future in finished:
                    step = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        lost.append(step)
                        continue
                    ready.finished(step, result)
                    done(step, result)
                if lost:  # a worker died: every step in flight was lost with the pool
                    lost += list(running.values())
                    running.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._start()
                    self.log(
                        f"a worker process died (killed, or out of memory); {len(lost)} step(s) it shared the pool "
                        "with start again"
                    )
                    for step in lost:
                        attempts[step.key] = attempts.get(step.key, 0) + 1
                        if attempts[step.key] > RETRIES:
                            result = StepResult(step.key, error="its worker process died", traceback="")
                            ready.finished(step, result)
                            done(step, result)
                        else:
                            ready.ready.append(step)
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the workers now: outstanding steps are dropped (their partial entries never land)."""
        if self.pool is None:
            return
        pool, self.pool = self.pool, None
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()  # the standard library has no public way to stop busy workers before 3.14
        pool.shutdown(wait=True, cancel_futures=True)


EXECUTORS = ("local", "processes", "ray")


def check_options(options: ExecutorOptions) -> None:
    """Refuse impossible executor settings before anything is written."""
    if options.name not in EXECUTORS:
        close = difflib.get_close_matches(options.name, EXECUTORS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"unknown executor {options.name!r}", f"{hint}choose one of: {', '.join(EXECUTORS)}")
    if options.jobs < 1:
        raise UserError(f"--jobs is {options.jobs}", "give 1 or more worker processes")
    if options.gpus_per_task is not None and options.gpus_per_task < 0:
        raise UserError(f"--gpus-per-task is {options.gpus_per_task}", "give 0 or more")
    # An option another executor would use is refused rather than silently ignored.
    if options.jobs != 1 and options.name != "processes":
        raise UserError(
            f"--jobs {options.jobs} is for --executor processes, not {options.name}",
            "drop --executor (--jobs alone means processes), or drop --jobs: Ray sizes itself by its cluster"
            if options.name == "ray"
            else "drop --executor local, or drop --jobs",
        )
    for flag, value in (("--ray-address", options.ray_address), ("--gpus-per-task", options.gpus_per_task)):
        if value is not None and options.name != "ray":
            raise UserError(f"{flag} is for --executor ray, not {options.name}", f"add --executor ray, or drop {flag}")


def threads_per_worker(jobs: int) -> int:
    """Each worker's share of this machine's cores (at least one)."""
    return max(1, (os.cpu_count() or 1) // jobs)
