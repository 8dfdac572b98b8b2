"""Plots for leaderboards: every value a board shows across generations, one line per entry."""

from __future__ import annotations

import math
from pathlib import Path

from collapse_bench.leaderboard import ARROW, Board

#: Panels per row of the figure.
WIDTH = 3


def plot_board(board: Board, path: Path) -> Path:
    """Draw mean ± std by generation for every entry, one panel per value, saved as PNG.

    The ranking value comes first, then the board's columns (the metrics' headline values or
    the protocol's choice), so a plugin metric is drawn like a built-in one.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    values = [board.metric, *board.columns]
    cols = min(WIDTH, len(values))
    rows = math.ceil(len(values) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=110, squeeze=False)
    for ax, value in zip(axes.flat, values, strict=False):
        curves = board.curves[board.curves.metric == value]
        finite = curves[np.isfinite(curves["mean"])]
        for (model, mixer), curve in finite.groupby(["model", "mixer"], sort=False):
            ax.plot(curve.generation, curve["mean"], marker="o", markersize=3, label=f"{model} / {mixer}")
            std = curve["std"].fillna(0)
            ax.fill_between(curve.generation, curve["mean"] - std, curve["mean"] + std, alpha=0.15)
        positive = finite["mean"][finite["mean"] > 0]
        if len(positive) and positive.max() / positive.min() > 20:
            ax.set_yscale("log")
        left_out = len(curves.groupby(["model", "mixer"])) - len(finite.groupby(["model", "mixer"]))
        if left_out:
            ax.annotate(f"{left_out} entries with no finite value", (0.01, 0.01), xycoords="axes fraction", fontsize=7)
        ax.set_title(f"{value} {ARROW.get(board.directions.get(value, ''), '')}".strip(), fontsize=9)
        ax.set_xlabel("generation", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(values) :]:
        ax.set_visible(False)
    legend = {}  # every entry once, also those drawn in some panels only
    for ax in axes.flat:
        legend.update(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(list(legend.values()), list(legend), fontsize=7, loc="lower center", ncol=min(4, max(1, len(legend))))
    fig.suptitle(f"{board.protocol}, ranked by {board.metric}", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    drawn = [ax.get_title() for ax in axes.flat if ax.get_visible()]
    fig.savefig(path, metadata={"Description": "panels: " + "; ".join(drawn)})  # what was drawn, for readers and tests
    plt.close(fig)
    return path
