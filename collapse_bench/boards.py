"""One protocol's standings, computed from tidy results with :mod:`collapse_bench.stats`, and their tables.

A :class:`Standing` is what every view of a leaderboard shows (the local ``leaderboard`` command,
published pages, the web page, figures): per entry the ranking value with its interval and rank
band, the paired difference to the reference mixer, and per shown value its last-generation mean,
drift, area under the curve and generations until the protocol's threshold; per entry, value and
generation the curve with its interval. Only cells that reached the last generation count.
:func:`headline_table`, :func:`detail_tables` and :func:`ranking_note` render it as markdown, the
same for a local leaderboard and a published page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from collapse_bench import stats
from collapse_bench.protocol import label_of
from collapse_bench.stats import Estimate

CELL = ["model", "mixer", "seed"]
#: Quantile outputs of the protocol's ``distribution`` metric whose curves are kept, lowest first.
QUANTILES = ("p05", "p50", "p95")
#: Headline values shown beside the ranking value in a protocol's first table (8 columns in all).
HEADLINE_VALUES = 2
ARROW = {"higher": "↑", "lower": "↓"}
#: How the summaries of the detail tables are defined, said under them.
SUMMARY_NOTE = (
    "Drift: value at the last generation over generation 0. Area: mean over generations 0..N of ln(value / "
    "generation-0 value). Generations until xt: first generation whose ratio to generation 0 reaches t "
    "(median over seeds; > N: not reached). inf and nan: a value that is not finite (a model that gives "
    "real text zero probability has infinite perplexity); such entries are not ranked."
)


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
        """``name@version`` (``quick@1.0+1.1`` for pooled minor versions), and for a variant what changed."""
        return label_of(self.protocol["name"], "+".join(self.versions), self.protocol.get("overrides") or {})

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


# ---------------------------------------------------------------- markdown


def arrow(s: Standing, value: str) -> str:
    """`` ↑`` or `` ↓``: which way ``value`` is better (nothing when it has no direction)."""
    return f" {ARROW[s.directions[value]]}" if s.directions.get(value) in ARROW else ""


def ranking_title(s: Standing) -> str:
    last = s.last_generation
    return f"{s.ranking} drift g{last}/g0" if s.by == "drift" else f"{s.ranking} g{last}"


def ranking_note(s: Standing) -> str:
    """What ranks the entries, how the intervals were made, what a band and Δ are."""
    methods = "; ".join(stats.METHODS[m] for m in s.methods)
    return (
        f"Ranked by {ranking_title(s)}{arrow(s, s.ranking)}; intervals: {methods}. Entries whose intervals "
        f"overlap share a rank band (1-2). Δ: paired difference to the `{s.reference}` mixer of the same model "
        "(seeds pair: they share generation 0 and random streams)."
    )


def headline_table(s: Standing) -> str:
    """Rank band, model, mixer, seeds, ranking value, Δ and :data:`HEADLINE_VALUES` values: at most 8 columns."""
    from tabulate import tabulate

    last = s.last_generation
    head = ["rank", "model", "mixer", "seeds", ranking_title(s) + arrow(s, s.ranking), f"Δ vs {s.reference}"]
    shown = s.columns[:HEADLINE_VALUES]
    head += [f"{v} g{last}{arrow(s, v)}" for v in shown]
    rows = []
    for e in s.entries:
        diff = stats.fmt(e.difference) if e.difference is not None else "—"
        row = [stats.band_label(e.band), e.model, e.mixer, len(e.seeds), stats.fmt(e.ranking), diff]
        row += [stats.fmt(e.values[v].last) if v in e.values else "—" for v in shown]
        rows.append(row)
    return tabulate(rows, headers=head, tablefmt="pipe", disable_numparse=True)


def _until(u: float | None, last: int) -> str:
    if u is None:
        return "—"
    return f"> {last}" if math.isinf(u) else f"{u:g}"


def detail_tables(s: Standing, heading: str = "##") -> list[str]:
    """One table per value (the ranking value, then the columns): g0, last, drift, area, generations until.

    Markdown lines, each table under a ``heading`` (``##`` on a page of its own, deeper inside a section).
    """
    from tabulate import tabulate

    last = s.last_generation
    thresholds = (s.protocol.get("leaderboard") or {}).get("thresholds") or {}
    lines: list[str] = []
    for value in [s.ranking, *s.columns]:
        entries = [e for e in s.entries if value in e.values]
        if not entries:
            continue
        until = f"generations until x{thresholds[value]:g}" if value in thresholds else None
        head = ["model", "mixer", "g0", f"g{last}", f"drift g{last}/g0", "area (mean ln ratio)"]
        head += [until] if until else []
        rows = []
        for e in entries:
            v = e.values[value]
            row = [e.model, e.mixer, stats.fmt(e.curves[value][0]), stats.fmt(v.last), stats.fmt(v.drift)]
            row += [stats.fmt(v.area)] + ([_until(v.until, last)] if until else [])
            rows.append(row)
        lines += ["", f"{heading} {value}{arrow(s, value)}", ""]
        lines.append(tabulate(rows, headers=head, tablefmt="pipe", disable_numparse=True))
    return lines
