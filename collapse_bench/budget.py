"""What a run will need at least, in memory and disk, checked before anything is trained.

A protocol with ``samples = 1000000000000`` would otherwise be accepted and every cell would fail
with ``MemoryError``, one after the other. Only lower bounds are estimated (the synthetic rows
every step keeps, which a run cannot avoid); models' own files come on top, so a run refused
here could never have finished, and a run accepted may still need more.
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
    """Refuse a run whose synthetic rows alone cannot fit in memory or on the cache's disk."""
    protocol = plan.protocol
    per_step = protocol.samples * real.train.shape[1] * min(real.train.dtype.itemsize, 4)  # 4 bytes: int32, float32
    steps = len(plan.models) * len(plan.seeds) * (1 + len(plan.mixers) * (protocol.generations - 1))
    # A chain keeps every generation's rows (mixers such as accumulate read them all).
    memory, disk = per_step * protocol.generations, per_step * steps
    what = (
        f"{protocol.samples:,} samples of {real.train.shape[1]} values per step, {steps:,} steps "
        f"({protocol.generations} generations)"
    )
    fix = "lower `samples`, generations, seeds or the grid (see docs/protocol.md)"
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
