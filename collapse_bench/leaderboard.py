"""Local leaderboards: run directories made into the standings a published page shows, as markdown.

The statistics and tables are those of published pages (:mod:`collapse_bench.boards`, from
:mod:`collapse_bench.stats`): per entry the ranking value with its 95% interval and rank band,
the paired difference to the reference mixer, and one detail table per value. What only the local
command does: it reads run directories (a damaged one is skipped with a warning), pools the minor
versions of a protocol that share a fingerprint, gives every protocol variant a table of its own,
counts the cells that did not reach the last generation, and notes what ``inf``/``nan`` mean and
where another value would rank the entries differently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from collapse_bench import stats, views
from collapse_bench.boards import (
    ARROW,
    SUMMARY_NOTE,
    Standing,
    arrow,
    detail_tables,
    headline_table,
    ranking_note,
    ranking_title,
    standing,
)
from collapse_bench.protocol import variant_of
from collapse_bench.results import find_runs, results_of


@dataclass
class Board:
    """One protocol's (one fingerprint's) local leaderboard: its standing and what the runs add to it."""

    standing: Standing
    description: str
    runs: list[str]
    notes: list[str] = field(default_factory=list)  # what inf/nan mean here, unranked entries, disagreements

    @property
    def label(self) -> str:
        return self.standing.label

    @property
    def fingerprint(self) -> str:
        return self.standing.fingerprint


#: Why a value can be ``inf``: metrics may report it (never NaN), and for likelihood values it
#: has one cause.
INF_MEANS = (
    "`inf`: infinite for at least one seed: the model gives probability 0 to some token it is scored on "
    "(a model without smoothing that never saw the token; see docs/metrics.md and docs/models.md)"
)
#: Why a value can be ``nan``: metrics never report it, so it comes from aggregating.
NAN_MEANS = "`nan`: undefined: a drift of inf / inf, or a mean over seeds of +inf and -inf"
#: Why a drift or area can be infinite or undefined although the values it comes from are finite.
ZERO_START = (
    "A drift or area that is `inf` or `nan` beside finite generation-0 and last values: the value is 0 at "
    "generation 0 for some seed, and a ratio to 0 is not a number"
)


def explain_nonfinite(values: np.ndarray) -> list[str]:
    """One line per kind of non-finite value among ``values`` saying what it means (none if all are finite)."""
    values = np.asarray(values, dtype=np.float64)
    return [text for kind, text in ((np.isinf, INF_MEANS), (np.isnan, NAN_MEANS)) if kind(values).any()]


def disagreements(
    mean: pd.DataFrame,
    order: pd.Index,
    directions: dict[str, str],
    names: dict[str, str],
    ranks: dict | None = None,
) -> list[str]:
    """Where ranking by another shown value would order the entries differently than the table does.

    One line per such value, giving the table's ranks (``ranks``, by index; default the position
    in ``order``) in that value's order (best first), so a collapse that the ranking value hides is
    seen beside it. Values without a direction are skipped.
    """
    if len(order) < 2:
        return []
    rank = ranks or {idx: str(i) for i, idx in enumerate(order, 1)}
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


def notes_of(s: Standing) -> list[str]:
    """The notes under a local table: non-finite values explained, unranked entries, disagreeing rankings."""
    numbers = [e.ranking.mean for e in s.entries] + [e.difference.mean for e in s.entries if e.difference]
    zero_start = False
    for e in s.entries:
        for value, v in e.values.items():
            measured = [e.curves[value][0].mean, v.last.mean]
            numbers += measured
            summaries = np.array([v.drift.mean, v.area.mean])
            zero_start |= bool(np.isfinite(measured).all() and not np.isfinite(summaries).all())
    notes = explain_nonfinite(np.array(numbers, dtype=np.float64)) + ([ZERO_START] if zero_start else [])
    unranked = [e.name for e in s.entries if e.band == (0, 0)]
    if unranked:
        notes.append(f"Not ranked (—): {', '.join(unranked)}: their {ranking_title(s)} is not a finite number.")
    ranked = [e for e in s.entries if e.band != (0, 0)]
    mean = pd.DataFrame(
        {v: [e.values[v].last.mean if v in e.values else np.nan for e in ranked] for v in s.columns},
        index=pd.Index([e.name for e in ranked]),
    )
    names = {v: f"{v} g{s.last_generation}{arrow(s, v)}" for v in s.columns}
    ranks = {e.name: stats.band_label(e.band) for e in ranked}
    return notes + disagreements(mean, mean.index, s.directions, names, ranks)


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
    A cell run twice (a rerun after a crash, say) counts once: the newest run's records are kept.
    """
    runs = find_runs(paths, strict)  # oldest first, so the newest record of a cell comes last
    df = results_of(runs)
    manifests = {m["run_id"]: m for m in (r.manifest() for r in runs)}
    out = []
    for (_, fingerprint), group in df.groupby(["protocol", "fingerprint"], sort=True):
        manifest = views.merge([manifests[r] for r in group.run.unique()])
        s = standing(
            group,
            manifest["protocol"],
            fingerprint,
            manifest["directions"],
            views.columns(manifest),
            views.ranking(manifest),
        )
        description = _description(manifest["protocol"], "+".join(s.versions))
        out.append(Board(s, description, sorted(group.run.unique()), notes_of(s)))
    return out


def to_markdown(boards: list[Board], plots: dict[str, str] | None = None) -> str:
    """The leaderboards as markdown: per board the published page's headline and detail tables."""
    parts = []
    for b in boards:
        s = b.standing
        lines = [
            f"## {b.label}",
            "",
            b.description.strip(),
            "",
            f"Protocol fingerprint `{b.fingerprint}`; runs: {', '.join(f'`{r}`' for r in b.runs)}.",
            ranking_note(s),
        ]
        if s.incomplete:
            lines.append(f"{s.incomplete} cell(s) that did not reach generation {s.last_generation} are left out.")
        lines += ["", headline_table(s)]
        if b.notes:
            lines += [""] + [f"- {note}" for note in b.notes]
        if plots and b.fingerprint in plots:
            lines += ["", f"![{b.label}: by generation]({plots[b.fingerprint]})"]
        lines += detail_tables(s, "###")
        lines += ["", SUMMARY_NOTE]
        parts.append("\n".join(lines))
    return "# collapse-bench leaderboard\n\n" + "\n\n".join(parts) + "\n"
