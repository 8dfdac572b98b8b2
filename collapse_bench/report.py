"""Console summaries of one run: headline metrics generation by generation, and samples."""

from __future__ import annotations

import pandas as pd
from tabulate import tabulate

from collapse_bench import views
from collapse_bench.leaderboard import explain_nonfinite
from collapse_bench.results import load_results
from collapse_bench.store import RunDir

MAX_COLUMNS = 12


def _generations(gens: list[int]) -> list[int]:
    """At most :data:`MAX_COLUMNS` generations, always with the first and the last."""
    if len(gens) <= MAX_COLUMNS:
        return gens
    picks = {gens[round(i * (len(gens) - 1) / (MAX_COLUMNS - 1))] for i in range(MAX_COLUMNS)}
    return sorted(picks)


def summary(run: RunDir) -> str:
    """One small table per value the run's metrics lead with (or the protocol's ``[leaderboard]``
    columns): entries as rows, generations as columns, mean over seeds."""
    df = load_results(run.path)
    if df.empty:
        return "no generation finished yet"
    parts = []
    for metric in views.lead(run.manifest()):
        rows = df[df.metric == metric]
        if rows.empty:
            continue
        direction = rows.direction.iloc[0]
        table = rows.pivot_table(index=["model", "mixer"], columns="generation", values="value", aggfunc="mean")
        table = table[_generations(list(table.columns))]
        table.columns = [f"g{g}" for g in table.columns]
        table.index = [f"{m} / {x}" for m, x in table.index]
        better = {"higher": "higher is better", "lower": "lower is better"}.get(direction, "")
        notes = "".join(f"\n  {note}" for note in explain_nonfinite(table.to_numpy(dtype=float))).replace("`", "")
        parts.append(f"{metric} ({better})\n" + tabulate(table, headers="keys", floatfmt=".4g") + notes)
    return "\n\n".join(parts)


def samples(run: RunDir, generation: int | None = None, limit: int = 3) -> str:
    """Decoded synthetic rows of each cell at ``generation`` (default: every generation)."""
    out = []
    for rec in run.samples():
        if generation is not None and rec["generation"] != generation:
            continue
        head = f"--- {rec['model']} / {rec['mixer']} / seed {rec['seed']} / generation {rec['generation']}"
        out.append(head + "\n" + "\n…\n".join(r.strip() for r in rec["rows"][:limit]))
    return "\n\n".join(out) if out else "no samples for that generation"


def threads(run: RunDir) -> str:
    """How many threads the run's computed steps used, for reading :func:`timings`."""
    counts = sorted({rec["threads"] for rec in run.records() if rec.get("threads")})
    if not counts:
        return "threads: not recorded (steps read from the cache, or a run from before threads were kept)"
    return f"threads per process: {' or '.join(map(str, counts))}"


def timings(run: RunDir) -> pd.Series:
    """Total seconds spent per activity (fit, sample, each metric) over the run."""
    totals: dict[str, float] = {}
    seen: set[tuple[str, int]] = set()
    for rec in run.records():
        if rec["generation"] == 0:
            if (rec["model"], rec["seed"]) in seen:
                continue  # generation 0 is shared by all mixers: count it once
            seen.add((rec["model"], rec["seed"]))
        for k, v in rec["timings"].items():
            totals[k] = totals.get(k, 0.0) + v
    return pd.Series(totals).sort_values(ascending=False)
