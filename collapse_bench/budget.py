"""What a run will need at least, in memory and disk, checked before anything is trained.

A protocol with ``samples = 1000000000000`` would otherwise be accepted and every cell would fail
with ``MemoryError``, one after the other. Only lower bounds are estimated (the synthetic rows
every step keeps, which a run cannot avoid); models' own files come on top, so a run refused
here could never have finished, and a run accepted may still need more. Over-generation counts:
a mixer drawing N / alpha candidates to keep N is sized by what it draws.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from collapse_bench.data import RealData
from collapse_bench.errors import ConfigError


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def memory_bytes() -> int | None:
    """Physical memory of this machine, or ``None`` where it cannot be read."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check(plan, real: RealData, cache_root: Path) -> None:
    """Refuse a run whose synthetic rows alone cannot fit in memory or on the cache's disk.

    A mixer that over-generates (``Mixer.candidates``) has each generation's model draw more rows
    than ``samples``: its chains keep those, and its generation-0 candidates are stored once beside
    the shared generation 0.
    """
    protocol = plan.protocol
    width = real.train.shape[1]
    per_row = width * min(real.train.dtype.itemsize, 4)  # 4 bytes: int32, float32
    drawn = {m.label: plan.candidates(m) for m in plan.mixers}
    chains = len(plan.models) * len(plan.seeds)
    steps = chains * (1 + len(plan.mixers) * (protocol.generations - 1))
    # A chain keeps every generation's rows (mixers such as accumulate read them all).
    widest = max(drawn, key=drawn.get) if drawn else None
    most = drawn[widest] if widest is not None else protocol.samples
    memory = most * per_row * protocol.generations
    extra = sum(n for n in set(drawn.values()) if n != protocol.samples)  # generation 0's candidates
    disk = chains * per_row * (protocol.samples + extra + sum(drawn.values()) * (protocol.generations - 1))
    what = (
        f"{protocol.samples:,} samples of {width} values per step, {steps:,} steps ({protocol.generations} generations)"
    )
    fix = "lower `samples`, generations, seeds or the grid (see docs/protocol.md)"
    if most > protocol.samples:
        what += f", mixer {widest!r} drawing {most:,} candidates per generation"
        fix = "keep a larger share of the candidates, or " + fix
    ram = memory_bytes()
    if ram is not None and memory > ram:
        raise ConfigError(f"{what} need at least {_gib(memory)} of memory; this machine has {_gib(ram)}", fix)
    existing = cache_root
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if disk > free:
        raise ConfigError(
            f"{what} need at least {_gib(disk)} in the cache {str(cache_root)!r}; its disk has {_gib(free)} free",
            fix + ", or free space / choose another --cache",
        )
