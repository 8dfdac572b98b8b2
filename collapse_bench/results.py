"""Reading finished (or partly finished) runs back as tidy pandas data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from collapse_bench.errors import UserError
from collapse_bench.store import RunDir

if TYPE_CHECKING:
    import pandas as pd

#: Columns of :func:`load_results`, in order.
COLUMNS = [
    "run",
    "protocol",
    "protocol_version",
    "fingerprint",
    "model",
    "mixer",
    "seed",
    "generation",
    "metric",
    "value",
    "direction",
]


def find_runs(paths: Path | str | list[Path | str]) -> list[RunDir]:
    """Every run directory at or below ``paths``, oldest first."""
    found: dict[Path, RunDir] = {}
    for p in [paths] if isinstance(paths, str | Path) else paths:
        root = Path(p)
        if not root.exists():
            raise UserError(f"{str(root)!r} does not exist", "give a run directory or a folder of runs, e.g. runs/")
        manifests = [root / RunDir.MANIFEST] if (root / RunDir.MANIFEST).is_file() else root.rglob(RunDir.MANIFEST)
        for m in manifests:
            found[m.parent.resolve()] = RunDir(m.parent)
    if not found:
        raise UserError(
            f"no run found under {', '.join(map(str, [paths] if isinstance(paths, str | Path) else paths))}",
            "run `collapse-bench run` first, or point at the folder it wrote (runs/ by default)",
        )
    return sorted(found.values(), key=lambda r: r.manifest().get("started", ""))


def load_results(path: Path | str | list[Path | str]) -> pd.DataFrame:
    """All scores of the runs at or below ``path`` as a tidy DataFrame.

    One row per (run, model, mixer, seed, generation, metric) with its ``value`` and the metric's
    ``direction`` ("higher" or "lower" is better); ``protocol``, ``protocol_version`` and
    ``fingerprint`` say which results are comparable. Runs still in progress contribute the
    generations finished so far.
    """
    import pandas as pd

    rows = []
    for run in find_runs(path):
        manifest = run.manifest()
        protocol = manifest["protocol"]
        directions = manifest.get("directions", {})
        for rec in run.records():
            for metric, value in rec["scores"].items():
                rows.append(
                    (
                        manifest["run_id"],
                        protocol["name"],
                        protocol["version"],
                        manifest["fingerprint"],
                        rec["model"],
                        rec["mixer"],
                        rec["seed"],
                        rec["generation"],
                        metric,
                        float(value),
                        directions.get(metric, ""),
                    )
                )
    return pd.DataFrame(rows, columns=COLUMNS)
