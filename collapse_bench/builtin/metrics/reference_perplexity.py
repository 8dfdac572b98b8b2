"""How plausible each generation's synthetic sequences look to the generation-0 model."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import HIGHER, LOGLIK, LOWER, Metric
from collapse_bench.contexts import MetricContext


class ReferencePerplexityMetric(Metric):
    """Per-sequence perplexity of the synthetic data under the generation-0 model: mean and percentiles.

    With ``l_{r,t}`` the negative log-likelihood in nats that M_0 gives token ``t`` of synthetic
    row ``r`` (``L`` tokens per row, ``R`` rows), each row's perplexity is
    ``ppl_r = exp(sum_t l_{r,t} / L)`` (with ``skip_first``, the mean over tokens ``1..L-1``: the
    per-block perplexity of Shumailov et al.). Reported: ``mean = sum_r ppl_r / R`` and the percentiles
    ``p05``, ``p50``, ``p95`` by numpy's default definition (``method="linear"``, Hyndman & Fan
    type 7; see :func:`percentile`), so ``p50`` is the median, the mean of the two middle rows
    when ``R`` is even. A row of infinite perplexity (one M_0 gives probability 0) is kept: a
    percentile interpolated towards it is ``inf``, never ``nan``. With one row, all three are its
    perplexity.

    Shumailov et al. (2024) find that over the generations this distribution piles up at
    *low* perplexity (the models emit what M_0 finds most likely, losing diversity) while a long
    tail of *high*-perplexity sequences grows (errors M_0 would never make). Drift either way from
    generation 0 is a symptom, but the harness ranks by a direction, so each value gets the one
    that flags its side of that picture: ``p05`` and ``p50`` are higher-is-better (their fall is the
    mass piling up at low perplexity); ``p95`` and ``mean`` are lower-is-better (their rise is the
    growing tail, which dominates the mean of a right-skewed quantity).
    """

    name = "reference-perplexity"
    modalities = frozenset({"text"})
    requires = frozenset({LOGLIK})
    outputs = {"mean": LOWER, "p05": HIGHER, "p50": HIGHER, "p95": LOWER}
    headline = ("mean",)

    def __init__(self, *, skip_first: bool = False) -> None:
        """``skip_first``: leave each row's first token out (``L - 1`` tokens per row), as the loss of
        Shumailov et al. on a block predicts its tokens after the first."""
        self.skip_first = skip_first

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.samples, self.name, "synthetic rows S_g")
        nll = np.asarray(ctx.base.nll(ctx.samples), dtype=np.float64)
        if self.skip_first:
            require_rows(nll[:, 1:], self.name, "synthetic rows S_g without their first token")
            nll = nll[:, 1:]
        with np.errstate(over="ignore"):  # rows M_0 finds (near) impossible have infinite perplexity
            row_ppl = np.sort(np.exp(nll.mean(axis=1)))
        return {"mean": float(row_ppl.mean())} | {f"p{q:02d}": percentile(row_ppl, q) for q in (5, 50, 95)}


def percentile(ascending: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of sorted ``ascending`` values, as ``np.percentile`` defines it by default.

    Linear interpolation between the order statistics around rank ``h = (n - 1) q / 100``
    (0-based): ``x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h])``. Written out because
    numpy's interpolation turns ``inf`` neighbours into ``nan`` (even when the weight on them is
    0); here a percentile at an infinite value, or interpolated towards one, is ``inf``.
    """
    h = (len(ascending) - 1) * (q / 100)
    lo = int(np.floor(h))
    weight = h - lo
    below, above = ascending[lo], ascending[min(lo + 1, len(ascending) - 1)]
    if weight == 0 or below == above:
        return float(below)
    return float(below + weight * (above - below))
