"""How plausible each generation's synthetic sequences look to the generation-0 model."""

from __future__ import annotations

import numpy as np

from collapse_bench.components import HIGHER, LOGLIK, LOWER, Metric, MetricContext


class ReferencePerplexityMetric(Metric):
    """Per-sequence perplexity of the synthetic data under the generation-0 model: mean and percentiles.

    With ``l_{r,t}`` the negative log-likelihood in nats that M_0 gives token ``t`` of synthetic
    row ``r`` (``L`` tokens per row, ``R`` rows), each row's perplexity is
    ``ppl_r = exp(sum_t l_{r,t} / L)``. Reported: ``mean = sum_r ppl_r / R`` and the percentiles
    ``p05``, ``p50``, ``p95``, each the smallest ``ppl_r`` whose empirical CDF reaches 5%, 50%, 95%
    (an order statistic, no interpolation, so a row of infinite perplexity stays ``inf`` instead of
    turning a percentile into ``nan``).

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

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        nll = np.asarray(ctx.base.nll(ctx.samples), dtype=np.float64)
        with np.errstate(over="ignore"):  # rows M_0 finds (near) impossible have infinite perplexity
            row_ppl = np.exp(nll.mean(axis=1))
        p05, p50, p95 = np.percentile(row_ppl, [5, 50, 95], method="inverted_cdf")
        return {"mean": float(row_ppl.mean()), "p05": float(p05), "p50": float(p50), "p95": float(p95)}
