"""Leaderboards: runs aggregated with pandas into one ranked markdown table per protocol.

Rows of different protocols (name, major version) or of protocol variants (a changed field, seen
in the fingerprint) are never pooled: each gets its own table. Minor versions of one protocol
that change no result-shaping field share a fingerprint, and so a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from collapse_bench import views
from collapse_bench.protocol import label_of, variant_of
from collapse_bench.results import find_runs, results_of

ARROW = {"higher": "↑", "lower": "↓"}


@dataclass
class Board:
    """One protocol's leaderboard: its heading facts and the ranked table."""

    protocol: str  # name@version, or name@1.0+1.1 when minor versions pool
    fingerprint: str
    description: str
    metric: str  # the ranking value
    by: str
    last_generation: int
    runs: list[str]
    table: pd.DataFrame  # one row per entry, ranked
    #: Mean and std per value, entry and generation, for the ranking value and every column.
    curves: pd.DataFrame
    #: The values shown beside the ranking value (see :mod:`collapse_bench.views`), in order.
    columns: list[str]
    directions: dict[str, str]
    incomplete: int  # cells that did not reach the last generation
    notes: list[str] = field(default_factory=list)  # what inf/nan mean here, where rankings disagree


#: Why a value can be ``inf``: metrics may report it (never NaN), and for likelihood values it
#: has one cause.
INF_MEANS = (
    "`inf`: infinite for at least one seed: the model gives probability 0 to some token it is scored on "
    "(a model without smoothing that never saw the token; see docs/metrics.md and docs/models.md)"
)
#: Why a value can be ``nan``: metrics never report it, so it comes from aggregating.
NAN_MEANS = "`nan`: undefined: a drift of inf / inf, or a mean over seeds of +inf and -inf"


def explain_nonfinite(values: np.ndarray) -> list[str]:
    """One line per kind of non-finite value among ``values`` saying what it means (none if all are finite)."""
    values = np.asarray(values, dtype=np.float64)
    return [text for kind, text in ((np.isinf, INF_MEANS), (np.isnan, NAN_MEANS)) if kind(values).any()]


def _rank_note(key: pd.Series, name: str, ascending: bool) -> list[str]:
    """How entries whose ranking value is not finite are ranked (``ascending``: lower is better)."""
    v = key.to_numpy(dtype=np.float64)
    first, later = ("before", "after") if ascending else ("after", "before")
    parts = [
        text
        for present, text in (
            (np.isposinf(v).any(), f"`inf` ranks {later} every finite value"),
            (np.isneginf(v).any(), f"`-inf` ranks {first} every finite value"),
            (np.isnan(v).any(), "`nan` (undefined) ranks last"),
        )
        if present
    ]
    return [f"Ranked by {name}: " + "; ".join(parts) + "."] if parts else []


def disagreements(mean: pd.DataFrame, order: pd.Index, directions: dict[str, str], names: dict[str, str]) -> list[str]:
    """Where ranking by another shown value would order the entries differently than the table does.

    One line per such value, giving the table's ranks in that value's order (best first), so a
    collapse that the ranking value hides is seen beside it. Values without a direction are skipped.
    """
    if len(order) < 2:
        return []
    rank = {idx: i for i, idx in enumerate(order, 1)}
    lines = []
    for col, label in names.items():
        direction = directions.get(col)
        if col not in mean.columns or direction not in ARROW:
            continue
        values = mean.loc[list(order), col]
        ranked = values.sort_values(ascending=direction == "lower", kind="stable", na_position="last").index
        if list(ranked) != list(order):
            lines.append(f"by {label}: " + ", ".join(str(rank[idx]) for idx in ranked))
    if not lines:
        return []
    return ["Rankings disagree (this table's ranks, in the order each other value would give): " + "; ".join(lines)]


def _fmt(mean: float, std: float, seeds: int) -> str:
    if not np.isfinite(mean):
        return str(mean)
    text = f"{mean:.4g}"
    return f"{text} ± {std:.2g}" if seeds > 1 and np.isfinite(std) else text


def _board(df: pd.DataFrame, manifest: dict) -> Board:
    proto = manifest["protocol"]
    spec = proto["leaderboard"]
    last = proto["generations"] - 1
    directions = df.groupby("metric")["direction"].first().to_dict()
    cell = ["model", "mixer", "seed"]
    reached = df[df.generation == last][cell].drop_duplicates()
    all_cells = df[cell].drop_duplicates()
    done = df.merge(reached, on=cell)
    metric = views.ranking(manifest)
    wide = done[done.generation.isin([0, last])].pivot_table(
        index=cell, columns=["metric", "generation"], values="value", aggfunc="first"
    )
    per_seed = pd.DataFrame(index=wide.index)
    if metric in wide.columns.get_level_values(0):
        with np.errstate(divide="ignore", invalid="ignore"):
            per_seed["first"] = wide[(metric, 0)]
            per_seed["last"] = wide[(metric, last)]
            if spec["by"] == "drift":
                per_seed["drift"] = per_seed["last"] / per_seed["first"]
    shown = [c for c in views.columns(manifest) if c != metric and c in wide.columns.get_level_values(0)]
    for c in shown:
        per_seed[c] = wide[(c, last)]
    grouped = per_seed.groupby(level=["model", "mixer"])
    mean, std, seeds = grouped.mean(), grouped.std(), grouped.size()
    key = spec["by"] if spec["by"] in mean.columns else "last"
    ascending = directions.get(metric, "lower") == "lower"
    if key in mean.columns:
        order = mean[key].sort_values(ascending=ascending, kind="stable", na_position="last").index
        order = order.append(mean.index.difference(order))
    else:
        order = mean.index
    rows = []
    for rank, idx in enumerate(order, 1):
        row = {"rank": rank, "model": idx[0], "mixer": idx[1], "seeds": int(seeds[idx])}
        for col in mean.columns:
            row[col] = _fmt(mean.loc[idx, col], std.loc[idx, col], int(seeds[idx]))
        rows.append(row)
    arrow = ARROW.get(directions.get(metric, ""), "")
    names = {
        "first": f"{metric} g0",
        "last": f"{metric} g{last}",
        "drift": f"{metric} drift (g{last}/g0) {arrow}",
        **{c: f"{c} g{last} {ARROW.get(directions.get(c, ''), '')}" for c in shown},
    }
    table = pd.DataFrame(rows).rename(columns=names)
    notes = explain_nonfinite(mean.to_numpy(dtype=np.float64))
    if key in mean.columns:
        notes += _rank_note(mean[key], names.get(key, key), ascending)
    notes += disagreements(mean, order, directions, {c: names[c] for c in shown})
    curve_rows = done[done.metric.isin([metric, *shown])]
    curves = curve_rows.groupby(["metric", "model", "mixer", "generation"])["value"].agg(["mean", "std"]).reset_index()
    versions = "+".join(sorted(df.protocol_version.unique()))
    return Board(
        protocol=label_of(proto["name"], versions, proto.get("overrides", {})),
        fingerprint=manifest["fingerprint"],
        description=_description(proto, versions),
        metric=metric,
        by=key,
        last_generation=last,
        runs=sorted(df.run.unique()),
        table=table,
        curves=curves,
        incomplete=len(all_cells) - len(reached),
        columns=shown,
        directions=directions,
        notes=notes,
    )


def _description(proto: dict, versions: str) -> str:
    """The protocol's description; for a variant, first what ran (the base description would say otherwise)."""
    text = proto.get("description", "")
    if not variant_of(proto.get("overrides", {})):
        return text
    ran = f"dataset {proto['dataset']}, {proto['generations']} generations of {proto['samples']} samples"
    return f"A variant of {proto['name']}@{versions}: {ran}. The base protocol: {text}"


def build(paths: list[Path | str], strict: bool = False) -> list[Board]:
    """One board per (protocol name, fingerprint) found among the runs under ``paths``.

    Damaged runs are skipped with a warning (an error with ``strict=True``), see :func:`find_runs`.
    """
    runs = find_runs(paths, strict)
    df = results_of(runs)
    # A cell run twice (a rerun after a crash, say) counts once: its newest records are kept.
    key = ["fingerprint", "model", "mixer", "seed", "generation", "metric"]
    df = df.drop_duplicates(subset=key, keep="last")
    manifests = {m["run_id"]: m for m in (r.manifest() for r in runs)}
    boards = []
    for (_, _), group in df.groupby(["protocol", "fingerprint"], sort=True):
        boards.append(_board(group, views.merge([manifests[r] for r in group.run.unique()])))
    return boards


def to_markdown(boards: list[Board], plots: dict[str, str] | None = None) -> str:
    """The leaderboards as markdown (pipe tables, via tabulate)."""
    parts = []
    for b in boards:
        by = "drift (last generation / generation 0)" if b.by == "drift" else f"value at generation {b.last_generation}"
        lines = [
            f"## {b.protocol}",
            "",
            f"{b.description}".strip(),
            "",
            f"Ranked by {b.metric} {by}; mean ± standard deviation over seeds. "
            f"Protocol fingerprint `{b.fingerprint}`; runs: {', '.join(f'`{r}`' for r in b.runs)}.",
        ]
        if b.incomplete:
            lines.append(f"{b.incomplete} cell(s) that did not reach generation {b.last_generation} are left out.")
        lines += ["", tabulate(b.table, headers="keys", tablefmt="pipe", showindex=False, disable_numparse=True)]
        if b.notes:
            lines += [""] + [f"- {note}" for note in b.notes]
        if plots and b.fingerprint in plots:
            lines += ["", f"![{b.metric} by generation, {b.protocol}]({plots[b.fingerprint]})"]
        parts.append("\n".join(lines))
    return "# collapse-bench leaderboard\n\n" + "\n\n".join(parts) + "\n"
