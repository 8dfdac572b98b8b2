"""Provenance for a run's manifest and records: package versions, source commit, hardware, threads."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: Distributions whose versions decide numbers or their reading.
PACKAGES = ("collapse-bench", "numpy", "pandas", "tokenizers", "datasets", "pluggy", "torch", "transformers")


def package_versions() -> dict[str, str | None]:
    """Installed version of each package in :data:`PACKAGES` (``None`` if absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the collapse-bench source tree, with ``-dirty`` if it has changes; ``None`` outside git."""
    src = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "")


def hardware() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "memory_bytes": memory,
    }


def threads() -> int:
    """Intra-op threads of this process now: torch's count once torch is loaded, else ``OMP_NUM_THREADS`` or the CPUs.

    Recorded with every step, since a step's seconds mean little without it on a shared machine.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        return int(torch.get_num_threads())
    variable = os.environ.get("OMP_NUM_THREADS", "")
    return int(variable) if variable.isdigit() and int(variable) > 0 else os.cpu_count() or 1
