"""Progress of a run: a live bar on a terminal, sparse lines in a pipe or a log file.

On a terminal the run shows a live bar (rich) that rewrites one line (:class:`ConsoleProgress`).
Anywhere else every line stays, so a run of thousands of steps (``theory``: 5,000) would bury
its own summary: :class:`PipedProgress` prints at most one line every :data:`INTERVAL` seconds,
plus one for every finished cell and every failure.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

#: Least seconds between two progress lines that report no finished cell.
INTERVAL = 5.0

_GENERATION = re.compile(r"\| generation (\d+)")


class PipedProgress:
    """Receives the runner's step messages; passes on the few worth a line of a log."""

    def __init__(
        self,
        total: int,
        generations: int,
        write: Callable[[str], None],
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``total`` steps in the run, of which a cell has ``generations``; ``write`` prints one line."""
        self.total, self.last_generation, self.write = total, generations - 1, write
        self.interval, self.clock = interval, clock
        self.done = 0
        self.last_line = clock()

    def step(self, text: str) -> None:
        """One finished step (``model | mixer | seed S | generation G``) or a failure (``FAILED ...``)."""
        failed = text.startswith("FAILED")
        self.done += not failed
        found = _GENERATION.search(text)
        cell_done = not failed and found is not None and int(found.group(1)) == self.last_generation
        now = self.clock()
        if failed or cell_done or now - self.last_line >= self.interval:
            self.write(f"[{self.done}/{self.total}] {text}" + (" (cell finished)" if cell_done else ""))
            self.last_line = now


class ConsoleProgress:
    """The run's progress: a bar counting finished steps (across workers) on a terminal, else sparse lines."""

    def __init__(self, console, notes) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console, self.notes = console, notes
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not console.is_terminal,
        )  # fmt: skip
        self.task = None
        self.piped: PipedProgress | None = None  # sparse lines for a pipe or log, made when the run starts
        self.status = None  # the spinner while the data is loaded and split

    def preparing(self, plan, step: str) -> None:
        if self.status is None:
            self.status = self.console.status(f"loading {plan.dataset.label}")
            self.status.start()
        self.status.update(f"{step} ({plan.dataset.label})")

    def start(self, plan, rundir, real, steps: int, resumed: bool) -> None:
        self._stop_status()
        for note in real.notes:
            self.notes.print(note, highlight=False, markup=False)
        (self.notes if resumed else self.console).print(
            f"[bold]{plan.protocol.label}[/] on {plan.dataset.label}: {len(real.train)} train rows, "
            f"{len(real.test)} test rows; {len(plan.models)} model(s) x {len(plan.mixers)} mixer(s) x "
            f"{len(plan.seeds)} seed(s), {plan.protocol.generations} generations -> {rundir.path}"
            + (" (resumed)" if resumed else "")
        )
        self.task = self.bar.add_task("training", total=steps)
        self.piped = PipedProgress(
            steps, plan.protocol.generations, lambda line: self.console.print(line, highlight=False)
        )
        self.bar.start()

    def step(self, text: str, failed: bool = False) -> None:
        if self.console.is_terminal:
            self.bar.update(self.task, advance=0 if failed else 1, description=text)
        else:
            self.piped.step(text)

    def stop(self) -> None:
        self._stop_status()
        self.bar.stop()

    def interrupted(self, rundir) -> None:
        self.notes.print(
            f"interrupted: the same command resumes {rundir.path}; finished steps are kept", highlight=False
        )

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None
