"""Progress of a run written to a pipe or a log file: sparse lines, never one per step.

On a terminal the run shows a live bar (rich) that rewrites one line. Anywhere else every line
stays, so a run of thousands of steps (``theory``: 5,000) would bury its own summary: this
prints at most one line every :data:`INTERVAL` seconds, plus one for every finished cell and
every failure.
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
