"""One protocol's standings, computed from tidy results with :mod:`collapse_bench.stats`.

A :class:`Standing` is what every view of a leaderboard shows (markdown page, web page, figures):
per entry the ranking value with its interval and rank band, the paired difference to the
reference mixer, and per shown value its last-generation mean, drift, area under the curve and
generations until the protocol's threshold; per entry, value and generation the curve with its
interval. Only cells that reached the last generation count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from collapse_bench import stats
from collapse_bench.stats import Estimate

CELL = ["model", "mixer", "seed"]
#: Quantile outputs of the protocol's ``distribution`` metric whose curves are kept, lowest first.
QUANTILES = ("p05", "p50", "p95")


@dataclass
class ValueSummary:
    """One value of one entry: where it ended and how it got there, over seeds."""

    last: Estimate
    drift: Estimate
    area: Estimate
    until: float | None  # median generations until the threshold (inf: most seeds never crossed); None: no threshold


@dataclass
class EntryStanding:
    """One leaderboard row."""

    model: str
    mixer: str
    seeds: list[int]
    ranking: Estimate
    band: tuple[int, int] = (0, 0)  # best and worst rank; (0, 0): unranked (no finite ranking value)
    difference: Estimate | None = None  # ranking value minus the reference mixer's, paired by seed
    per_seed: dict[int, float] = field(default_factory=dict)  # the ranking value of each seed
    values: dict[str, ValueSummary] = field(default_factory=dict)
    curves: dict[str, list[Estimate]] = field(default_factory=dict)  # value -> one estimate per generation

    @property
    def name(self) -> str:
        return f"{self.model} / {self.mixer}"


@dataclass
class Standing:
    """A protocol's leaderboard: its heading facts and ranked entries."""

    protocol: dict[str, Any]  # the protocol as recorded in the manifest
    fingerprint: str
    versions: list[str]
    ranking: str  # the ranked value
    by: str  # "drift" or "last"
    reference: str
    columns: list[str]  # values shown beside the ranking value
    directions: dict[str, str]
    entries: list[EntryStanding]
    incomplete: int  # cells that did not reach the last generation

    @property
    def last_generation(self) -> int:
        return int(self.protocol["generations"]) - 1

    @property
    def label(self) -> str:
        return f"{self.protocol['name']}@{'+'.join(self.versions)}"

    @property
    def methods(self) -> list[str]:
        """The interval methods the table uses, for its note."""
        return sorted({e.ranking.method for e in self.entries})

    def higher_is_better(self, value: str) -> bool:
        return self.directions.get(value) == "higher"


def standing(
    df: pd.DataFrame,
    protocol: dict[str, Any],
    fingerprint: str,
    directions: dict[str, str],
    columns: Sequence[str],
    ranking: str,
) -> Standing:
    """The standing of one protocol (one fingerprint) from tidy results (the columns of ``load_results``).

    ``ranking`` is the value that ranks, ``columns`` those shown beside it.
    """
    spec = protocol.get("leaderboard") or {}
    metric, by = ranking, spec.get("by", "drift")
    reference = spec.get("reference", "replace")
    thresholds: dict[str, float] = dict(spec.get("thresholds") or {})
    last = int(protocol["generations"]) - 1
    df = df.drop_duplicates(subset=[*CELL, "generation", "metric"], keep="last")
    cells = df[CELL].drop_duplicates()
    reached = df[df.generation == last][CELL].drop_duplicates()
    done = df.merge(reached, on=CELL)
    shown = [c for c in columns if c != metric and c in set(done.metric)]
    dist = spec.get("distribution")
    quantiles = [f"{dist}.{q}" for q in QUANTILES] if dist else []
    wide = done.pivot_table(index=CELL, columns=["metric", "generation"], values="value", aggfunc="first")
    entries = []
    for (model, mixer), group in wide.groupby(level=["model", "mixer"], sort=True):
        seeds = [int(s) for s in group.index.get_level_values("seed")]
        entry = EntryStanding(model, mixer, seeds, Estimate(math.nan, None, None, 0, "single"))
        for value in quantiles:
            if value in group.columns.get_level_values(0):
                curves = group[value].reindex(columns=range(last + 1)).to_numpy(dtype=float)
                entry.curves[value] = [stats.interval(curves[:, g]) for g in range(last + 1)]
        for value in [metric, *shown]:
            if value not in group.columns.get_level_values(0):
                continue
            curves = group[value].reindex(columns=range(last + 1)).to_numpy(dtype=float)  # seeds x generations
            up = directions.get(value) == "higher"
            per_seed_drift = [stats.drift(c) for c in curves]
            until = None
            if value in thresholds:
                crossings = [stats.generations_until(c, thresholds[value], up) for c in curves]
                until = float(np.median(crossings))
            entry.values[value] = ValueSummary(
                stats.interval(curves[:, -1]),
                stats.interval(per_seed_drift),
                stats.interval([stats.area(c) for c in curves]),
                until,
            )
            entry.curves[value] = [stats.interval(curves[:, g]) for g in range(last + 1)]
            if value == metric:
                per_seed = per_seed_drift if by == "drift" else list(curves[:, -1])
                entry.ranking = stats.interval(per_seed)
                entry.per_seed = dict(zip(seeds, map(float, per_seed), strict=True))
        entries.append(entry)
    up = directions.get(metric) == "higher"
    ranked = [e for e in entries if math.isfinite(e.ranking.mean)]  # the others stay unranked, band (0, 0)
    for e, band in zip(ranked, stats.rank_bands([e.ranking for e in ranked], up), strict=True):
        e.band = band
    refs = {e.model: e for e in entries if e.mixer == reference}
    for e in entries:
        ref = refs.get(e.model)
        if ref is not None and ref is not e:
            e.difference = stats.paired_difference(e.per_seed, ref.per_seed)
    key = (lambda e: -e.ranking.mean) if up else (lambda e: e.ranking.mean)
    entries.sort(key=lambda e: (e.band == (0, 0), e.band, key(e) if e.band != (0, 0) else 0, e.name))
    return Standing(
        protocol=protocol,
        fingerprint=fingerprint,
        versions=sorted(df.protocol_version.unique()) if "protocol_version" in df else [protocol["version"]],
        ranking=metric,
        by=by,
        reference=reference,
        columns=shown,
        directions=directions,
        entries=entries,
        incomplete=len(cells) - len(reached),
    )
