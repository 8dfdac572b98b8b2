"""Checks of the folders a command will write to, made before anything is written."""

from __future__ import annotations

from pathlib import Path

from collapse_bench.errors import UserError

#: Free space below which a run is refused before it starts.
MIN_FREE_BYTES = 200 * 2**20


def writable(folder: Path, what: str) -> None:
    """Refuse a folder that could not be created or written, or a disk that is nearly full.

    Nothing is created: a refused run leaves no trace.
    """
    import os
    import shutil

    existing = folder.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a folder" if not existing.is_dir() else "is not writable"
        raise UserError(
            f"cannot write the {what} {str(folder)!r}: {str(existing)!r} {problem}", f"choose a writable {what}"
        )
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise UserError(
            f"only {free // 2**20} MiB free on the disk of {str(folder)!r}",
            "free some space (`collapse-bench cache prune` removes cached steps) or choose another folder",
        )


def plain_name(run_id: str | None) -> None:
    """Refuse a ``--run-id`` that is not a plain name: the run must land inside ``--out``."""
    if run_id is None:
        return
    if not run_id.strip() or run_id in (".", "..") or any(c in run_id for c in "/\\\0") or run_id.startswith("."):
        raise UserError(
            f"--run-id {run_id!r} is not a plain name",
            "give a name without slashes or a leading dot (e.g. --run-id trial-1); choose the folder with --out",
        )
