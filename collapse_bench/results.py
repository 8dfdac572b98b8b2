"""Reading finished (or partly finished) runs back as tidy pandas data."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


class DamagedRunWarning(UserWarning):
    """A run directory that cannot be read whole was left out of the results."""


#: Manifest fields that reading results relies on, as paths into the manifest.
MANIFEST_FIELDS = (
    ("run_id",),
    ("fingerprint",),
    ("protocol", "name"),
    ("protocol", "version"),
    ("protocol", "generations"),
    ("protocol", "leaderboard", "metric"),
    ("protocol", "leaderboard", "by"),
)
#: Fields every record must have, with their types.
RECORD_FIELDS = {"model": str, "mixer": str, "seed": int, "generation": int, "scores": dict, "timings": dict}


def damage(run: RunDir) -> str | None:
    """What makes ``run`` unreadable (a truncated manifest, a bad record, ...), or ``None`` when it is whole."""
    path = run.path / RunDir.MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"{RunDir.MANIFEST} cannot be read ({exc})"
    for fields in MANIFEST_FIELDS:
        value: Any = manifest
        for f in fields:
            value = value.get(f) if isinstance(value, dict) else None
        if value is None:
            return f"{RunDir.MANIFEST} has no {'.'.join(fields)!r}"
    try:
        for number, rec in enumerate(run.records(), 1):
            bad = [
                k
                for k, kind in RECORD_FIELDS.items()
                if not isinstance(rec.get(k) if isinstance(rec, dict) else None, kind)
            ]
            if bad:
                return f"{RunDir.RECORDS} record {number} has no valid {bad[0]!r}"
            if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rec["scores"].values()):
                return f"{RunDir.RECORDS} record {number} has a score that is not a number"
    except UserError as exc:  # a line of records.jsonl that is not JSON
        return exc.cause.replace(str(run.path / RunDir.RECORDS), RunDir.RECORDS)
    except (OSError, UnicodeDecodeError) as exc:
        return f"{RunDir.RECORDS} cannot be read ({exc})"
    return None


def damaged(run: RunDir, problem: str) -> UserError:
    """The error (or, with ``strict=False``, the warning text) for a damaged run."""
    return UserError(
        f"run {str(run.path)!r} is damaged: {problem}",
        "rerun its command with a new --run-id (finished steps come back from the cache), or remove the run",
    )


def find_runs(paths: Path | str | list[Path | str], strict: bool = False) -> list[RunDir]:
    """Every readable run directory at or below ``paths``, oldest first.

    A damaged run is left out with a :class:`DamagedRunWarning` naming it and the damage, so one
    bad run does not hide the good ones; with ``strict=True`` it is an error instead.
    """
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
    runs = []
    for run in found.values():
        problem = damage(run)
        if problem is None:
            runs.append(run)
        elif strict:
            raise damaged(run, problem)
        else:
            warnings.warn(f"skipped: {damaged(run, problem)}", DamagedRunWarning, stacklevel=2)
    if not runs:
        raise UserError(
            f"every run found under {', '.join(map(str, [paths] if isinstance(paths, str | Path) else paths))} "
            "is damaged (see the warnings above)",
            "rerun those runs' commands with new --run-ids",
        )
    return sorted(runs, key=lambda r: r.manifest().get("started", ""))


def load_results(path: Path | str | list[Path | str], strict: bool = False) -> pd.DataFrame:
    """All scores of the runs at or below ``path`` as a tidy DataFrame.

    One row per (run, model, mixer, seed, generation, metric) with its ``value`` and the metric's
    ``direction`` ("higher" or "lower" is better); ``protocol``, ``protocol_version`` and
    ``fingerprint`` say which results are comparable. Runs still in progress contribute the
    generations finished so far. A damaged run is skipped with a :class:`DamagedRunWarning`
    (an error with ``strict=True``).
    """
    return results_of(find_runs(path, strict))


def results_of(runs: list[RunDir]) -> pd.DataFrame:
    """The tidy scores of runs already found (see :func:`load_results`)."""
    import pandas as pd

    rows = []
    for run in runs:
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
