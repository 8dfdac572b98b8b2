"""Least-squares linear regression on a fixed design: the third theory case (Gerstgrasser et al. 2024)."""

from __future__ import annotations

import numpy as np

from collapse_bench.components import LOGLIK, Model
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.errors import ConfigError

#: Capability of a model that exposes fitted regression coefficients (``coefficients()``).
COEFFICIENTS = "coefficients"


class LinearRegressionModel(Model):
    """Least squares on rows (x, y); its samples relabel the fixed design with its own w plus fresh noise.

    Rows are ``dim`` features followed by the label (the ``linear`` dataset). ``fit`` solves for
    ``w`` and keeps the distinct feature rows of its training data, in order, as the design X;
    ``sample(n)`` returns ``n`` design rows (cycling through X) labelled ``x . w + sigma * eps``
    with fresh ``eps ~ N(0, 1)``: the setting of Dohmatob et al. 2024 and Gerstgrasser et al. 2024,
    where E||w_t - w*||^2 = (t + 1) sigma^2 tr((X^T X)^-1) under replace.
    """

    name = "linear-regression"
    modality = "vector"
    capabilities = frozenset({LOGLIK, COEFFICIENTS})

    def __init__(self, *, sigma: float = 1.0) -> None:
        """``sigma``: the label noise of the data, known to the model (the ``linear`` dataset's ``sigma``)."""
        if sigma <= 0:
            raise ConfigError(f"linear-regression sigma is {sigma}", "give the data's noise level, sigma > 0")
        self.sigma = sigma
        self.w: np.ndarray | None = None
        self.design: np.ndarray | None = None

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        if data.shape[1] < 2:
            raise ConfigError(
                f"linear-regression got rows of width {data.shape[1]}", "give rows of features followed by a label"
            )
        x, y = data[:, :-1], data[:, -1]
        self.w = np.linalg.lstsq(x, y, rcond=None)[0]
        _, first = np.unique(x, axis=0, return_index=True)
        self.design = x[np.sort(first)]

    def coefficients(self) -> np.ndarray:
        """The fitted w."""
        return self.w

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        x = self.design[np.arange(n) % len(self.design)]
        return np.column_stack([x, x @ self.w + self.sigma * ctx.rng.standard_normal(n)])

    def nll(self, data: np.ndarray) -> np.ndarray:
        """Negative log-likelihood of each label given its features, N(x . w, sigma^2)."""
        residual = data[:, -1] - data[:, :-1] @ self.w
        return 0.5 * (residual**2 / self.sigma**2 + np.log(2 * np.pi * self.sigma**2))
