"""How steeply token frequency falls with rank: Zipf's law, which degenerate text bends (Holtzman et al. 2020)."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.metrics.counting import unigram_counts
from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError


class ZipfMetric(Metric):
    """Zipf coefficient of the synthetic tokens, and its distance from the real training data's.

    Sort the counts of the token types that occur in S_g in decreasing order, ``c_1 >= c_2 >= ...``,
    and keep the first ``R = min(types, number of types that occur)``. The coefficient is minus the
    least-squares slope of ``log c_r`` against ``log r`` over ``r = 1..R`` (Holtzman et al. 2020):

    * ``zipf = -slope``: about 1 for natural text; it grows as mass piles onto the frequent types
    * ``gap = |zipf(S_g) - zipf(real train)|``: 0 when the synthetic text falls off like the real one

    With fewer than two types in S_g the slope is undefined and both values are ``inf``: everything
    is one token, the steepest fall there is. ``zipf`` is ranked lower-is-better because collapse
    steepens it; text flatter than real text also drifts away, which ``gap`` shows.
    """

    name = "zipf"
    modalities = frozenset({"text"})
    outputs = {"zipf": LOWER, "gap": LOWER}
    headline = ("zipf",)

    def __init__(self, *, types: int = 1000) -> None:
        """``types``: how many of the most frequent token types the line is fitted over."""
        if types < 2:
            raise ConfigError(f"zipf types is {types}", "fit over at least 2 token types, e.g. zipf:types=1000")
        self.types = types
        self._real: float | None = None

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.samples, self.name, "synthetic rows S_g")
        if self._real is None:
            require_rows(ctx.real.train, self.name, "the real training split")
            self._real = zipf_coefficient(ctx.real.train, self.types)
        value = zipf_coefficient(ctx.samples, self.types)
        return {"zipf": value, "gap": abs(value - self._real) if np.isfinite(value) else float("inf")}


def zipf_coefficient(rows: np.ndarray, types: int) -> float:
    """Minus the least-squares slope of log count against log rank over the ``types`` most frequent types."""
    counts = unigram_counts(rows)
    top = np.sort(counts[counts > 0])[::-1][:types]
    if len(top) < 2:
        return float("inf")
    slope, _ = np.polyfit(np.log(np.arange(1, len(top) + 1)), np.log(top), 1)
    return float(-slope)
