"""A unigram (categorical) distribution over tokens: the discrete case of Shumailov et al. 2024."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench.components import LOGLIK, Model
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


class CategoricalModel(Model):
    """Unigram token distribution re-estimated by counting; lost tokens never return at alpha=0."""

    name = "categorical"
    modality = "text"
    capabilities = frozenset({LOGLIK})

    def __init__(self, *, alpha: float = 0.0) -> None:
        """``alpha``: additive pseudo-count per token (0 = maximum likelihood, the theory case)."""
        if alpha < 0:
            raise ConfigError(f"categorical alpha is {alpha}", "give alpha >= 0")
        self.alpha = alpha
        self.probs: np.ndarray | None = None

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        counts = np.bincount(data.ravel(), minlength=ctx.vocab_size).astype(np.float64)
        counts += self.alpha
        self.probs = counts / counts.sum()

    def check(self, protocol: Protocol) -> None:
        protocol.decoding.ancestral(self.name)

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """Draws from probs^(1/T), normalized, for the decoding temperature T (1: the fitted distribution)."""
        cdf = np.cumsum(self.probs ** (1.0 / ctx.decoding.ancestral(self.name)))
        u = ctx.rng.random((n, ctx.length)) * cdf[-1]
        return np.searchsorted(cdf, u, side="right").astype(np.int32)

    def nll(self, data: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return -np.log(self.probs[data])
