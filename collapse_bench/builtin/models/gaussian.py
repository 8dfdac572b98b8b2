"""A multivariate normal refitted by maximum likelihood: the continuous case of Shumailov et al. 2024."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench.components import LOGLIK, MOMENTS, Model
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


class GaussianModel(Model):
    """Normal distribution with fitted mean and covariance; its variance shrinks as (1 - 1/M)^t."""

    name = "gaussian"
    modality = "vector"
    capabilities = frozenset({LOGLIK, MOMENTS})

    def __init__(self, *, ddof: int = 0, ridge: float = 0.0) -> None:
        """``ddof``: 0 divides the covariance by M (MLE, the paper's theory), 1 by M - 1 (unbiased);
        ``ridge``: added to the covariance's diagonal (Qiao et al. add 1e-6)."""
        if ddof not in (0, 1):
            raise ConfigError(f"gaussian ddof is {ddof}", "use ddof=0 (maximum likelihood) or ddof=1 (unbiased)")
        if ridge < 0:
            raise ConfigError(f"gaussian ridge is {ridge}", "give ridge >= 0")
        self.ddof, self.ridge = ddof, ridge
        self.mean: np.ndarray | None = None
        self.cov: np.ndarray | None = None

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        if len(data) <= self.ddof:
            raise ConfigError(f"gaussian got {len(data)} rows", "give the model at least two rows per generation")
        self.mean = data.mean(axis=0)
        cov = np.atleast_2d(np.cov(data, rowvar=False, ddof=self.ddof))
        self.cov = cov + self.ridge * np.eye(len(cov)) if self.ridge else cov

    def check(self, protocol: Protocol) -> None:
        protocol.decoding.ancestral(self.name)

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """Draws from the density raised to 1/T, normalized, which is N(mean, T * cov)."""
        cov = self.cov * ctx.decoding.ancestral(self.name)
        return ctx.rng.multivariate_normal(self.mean, cov, size=n, method="eigh")

    def nll(self, data: np.ndarray) -> np.ndarray:
        dim = len(self.mean)
        sign, logdet = np.linalg.slogdet(self.cov)
        if sign <= 0:
            return np.full(len(data), np.inf)
        centred = data - self.mean
        maha = np.einsum("ij,ij->i", centred, np.linalg.solve(self.cov, centred.T).T)
        return 0.5 * (maha + logdet + dim * np.log(2 * np.pi))

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, self.cov
