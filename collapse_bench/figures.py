"""Figures of a published leaderboard, as PNG bytes.

Each PNG carries in its ``Description`` text chunk a hash of the numbers it draws and of this
module's code, so ``publish --check`` can tell a stale figure from a fresh one without comparing
pixels (which differ between font and library builds).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path

from collapse_bench.boards import QUANTILES, Standing


def _png(fig, data: object) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None, "Description": data_hash(data)})
    plt.close(fig)
    return buf.getvalue()


def data_hash(data: object) -> str:
    """The hash a figure of ``data`` carries: the numbers drawn and the code that draws them."""
    code = Path(__file__).read_bytes()
    return hashlib.sha256(code + json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def figure_hash(png: bytes) -> str | None:
    """The data hash a PNG made here carries (``None`` for any other file)."""
    from PIL import Image

    try:
        return Image.open(io.BytesIO(png)).text.get("Description")
    except Exception:  # not a PNG at all: stale as far as the check goes
        return None


def values_data(s: Standing) -> dict:
    """What the values panel draws: per value and entry, mean and interval by generation."""
    return {
        value: {e.name: [(c.mean, c.low, c.high) for c in e.curves[value]] for e in s.entries if value in e.curves}
        for value in [s.ranking, *s.columns]
    }


def values_panel(s: Standing) -> tuple[bytes, str]:
    """A panel per shown value: every entry's mean by generation with its confidence band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    data = values_data(s)
    n = len(data)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=100, squeeze=False)
    for ax, (value, curves) in zip(axes.flat, data.items(), strict=False):
        for name, points in curves.items():
            g = [i for i, (m, _, _) in enumerate(points) if math.isfinite(m)]
            if not g:
                continue
            ax.plot(g, [points[i][0] for i in g], marker="o", markersize=2, label=name)
            banded = [i for i in g if points[i][1] is not None and math.isfinite(points[i][1])]
            if banded:
                ax.fill_between(banded, [points[i][1] for i in banded], [points[i][2] for i in banded], alpha=0.15)
        better = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(s.directions.get(value, ""), "")
        ax.set_title(value + better, fontsize=9)
        ax.set_xlabel("generation", fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, max(1, len(labels))), fontsize=7, frameon=False)
    fig.suptitle(f"{s.label}\nmean over seeds by generation, 95% interval shaded", fontsize=9)
    fig.tight_layout(rect=(0, 0.04 + 0.03 * math.ceil(len(labels) / 4), 1, 0.92))
    return _png(fig, data), data_hash(data)


def distribution_data(s: Standing) -> dict | None:
    """What the distribution figure draws: per entry the metric's quantiles by generation (seed means)."""
    metric = (s.protocol.get("leaderboard") or {}).get("distribution")
    if not metric:
        return None
    out = {}
    for e in s.entries:
        curves = [e.curves.get(f"{metric}.{q}") for q in QUANTILES]
        if all(curves):
            out[e.name] = [[c.mean for c in curve] for curve in curves]
    return {"metric": metric, "entries": out} if out else None


def distribution_figure(s: Standing) -> tuple[bytes, str] | None:
    """Per entry, the metric's 5-95% range and median by generation (the paper's histogram, as quantiles)."""
    data = distribution_data(s)
    if data is None:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    entries = data["entries"]
    cols = min(3, len(entries))
    rows = math.ceil(len(entries) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), dpi=100, squeeze=False, sharey=True)
    for ax, (name, (low, mid, high)) in zip(axes.flat, entries.items(), strict=False):
        g = range(len(mid))
        ax.fill_between(g, low, high, alpha=0.25, label="5%-95% of sequences")
        ax.plot(g, mid, marker="o", markersize=2, label="median")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("generation", fontsize=8)
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(entries) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"{s.label}: {data['metric']} of each generation's synthetic sequences\n(mean over seeds of the quantiles)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _png(fig, data), data_hash(data)
