"""Distance between the real and the synthetic unigram (token frequency) distributions."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.metrics.counting import unigram_counts
from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError


class UnigramDivergenceMetric(Metric):
    """KL and Jensen-Shannon divergence (bits) between real-train and synthetic unigram distributions.

    With ``c_i`` the count of token id ``i`` in the real training split (``N`` tokens), ``s_i`` its
    count in the synthetic set S_g (``S`` tokens) and ``V`` the vocabulary size (the tokenizer's;
    without one, the largest id seen in either plus one), ``p_i = c_i / N`` and ``q_i = s_i / S``:

    * ``kl = sum_{i : p_i > 0} p_i log2(p_i / q'_i)`` with ``q'_i = (s_i + epsilon) / (S + epsilon V)``
    * ``js = 1/2 sum_i p_i log2(p_i / m_i) + 1/2 sum_i q_i log2(q_i / m_i)`` with
      ``m_i = (p_i + q_i) / 2`` (terms with a zero factor are 0); in [0, 1], 1 for disjoint supports

    KL(P_real || P_syn) is the one to watch for collapse: it punishes the synthetic side for
    tokens the real data uses and the model has lost, which is infinite without smoothing, hence
    the pseudo-count ``epsilon``. Its default 1/2 is the Krichevsky-Trofimov (Jeffreys prior)
    estimator: at V = 4096 and 256k synthetic tokens it adds under 1% of pseudo-mass, barely
    moving well-estimated types, while a lost type of real probability ``p`` costs
    ``p log2(p (S + epsilon V) / epsilon)``, finite and growing only logarithmically with ``S``.
    The value depends on ``epsilon`` and ``S``, so compare it at one protocol's sample size.
    Jensen-Shannon needs no smoothing and is bounded, which makes it the better value to rank by.
    Both are finite for any non-empty real and synthetic sets; an empty one (``N = 0`` or
    ``S = 0``) leaves ``p`` or ``q`` undefined and is refused with a :class:`DataError`.
    """

    name = "unigram-divergence"
    modalities = frozenset({"text"})
    outputs = {"kl": LOWER, "js": LOWER}
    headline = ("js",)

    def __init__(self, *, epsilon: float = 0.5) -> None:
        """``epsilon``: pseudo-count added to every synthetic type before KL (see the class docs)."""
        if not epsilon > 0:
            raise ConfigError(f"unigram-divergence epsilon is {epsilon}", "give a positive pseudo-count, e.g. 0.5")
        self.epsilon = epsilon
        self._real: np.ndarray | None = None

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.samples, self.name, "synthetic rows S_g")
        if self._real is None:
            require_rows(ctx.real.train, self.name, "the real training split")
            self._real = unigram_counts(ctx.real.train, ctx.real.vocab_size)
        synthetic = unigram_counts(ctx.samples, len(self._real)).astype(np.float64)
        real = np.pad(self._real, (0, len(synthetic) - len(self._real))).astype(np.float64)
        p = real / real.sum()
        q = synthetic / synthetic.sum()
        smoothed = (synthetic + self.epsilon) / (synthetic.sum() + self.epsilon * len(synthetic))
        seen = p > 0
        kl = float(np.sum(p[seen] * np.log2(p[seen] / smoothed[seen])))
        m = (p + q) / 2
        js = 0.5 * _relative_entropy(p, m) + 0.5 * _relative_entropy(q, m)
        return {"kl": kl, "js": float(np.clip(js, 0.0, 1.0))}


def _relative_entropy(a: np.ndarray, m: np.ndarray) -> float:
    """``sum_i a_i log2(a_i / m_i)`` over ``a_i > 0``, for ``m`` positive wherever ``a`` is."""
    nz = a > 0
    return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))
