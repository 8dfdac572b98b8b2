"""Plots for leaderboards: the ranking metric across generations, one line per entry."""

from __future__ import annotations

from pathlib import Path

from collapse_bench.leaderboard import Board


def plot_board(board: Board, path: Path) -> Path:
    """Draw mean ± std of the board's metric by generation for every entry, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    finite = board.curves[np.isfinite(board.curves["mean"])]
    for (model, mixer), curve in finite.groupby(["model", "mixer"], sort=False):
        ax.plot(curve.generation, curve["mean"], marker="o", markersize=3, label=f"{model} / {mixer}")
        std = curve["std"].fillna(0)
        ax.fill_between(curve.generation, curve["mean"] - std, curve["mean"] + std, alpha=0.15)
    values = finite["mean"][finite["mean"] > 0]
    if len(values) and values.max() / values.min() > 20:
        ax.set_yscale("log")
    left_out = len(board.curves.groupby(["model", "mixer"])) - len(finite.groupby(["model", "mixer"]))
    if left_out:
        ax.annotate(
            f"{left_out} entries with no finite value not drawn", (0.01, 0.01), xycoords="axes fraction", fontsize=7
        )
    ax.set_xlabel("generation")
    ax.set_ylabel(board.metric)
    ax.set_title(f"{board.metric} by generation — {board.protocol}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
