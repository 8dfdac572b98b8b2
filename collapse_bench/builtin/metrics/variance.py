"""Variance loss and Wasserstein drift of a Gaussian model: the paper's continuous theory case."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import HIGHER, LOWER, MOMENTS, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import DataError


class VarianceMetric(Metric):
    """Total variance relative to generation 0, and 2-Wasserstein distance to the real data's Gaussian.

    With ``(mu_g, Sigma_g)`` the mean and covariance of M_g (``Model.moments``), ``Sigma_0`` the
    covariance of M_0 of the same chain and ``(mu_r, Sigma_r)`` the maximum-likelihood mean and
    covariance (divided by the number of rows) of the real training split:

    * ``ratio = tr(Sigma_g) / tr(Sigma_0)``: 1 while variance is kept; collapse drives it to 0,
      and for the MLE-refitted Gaussian of Shumailov et al. (2024) with M samples per generation
      ``E[ratio_t] = (1 - 1/M)^t``.
    * ``w2 = sqrt(|mu_g - mu_r|^2 + tr(Sigma_g + Sigma_r - 2 (Sigma_r^1/2 Sigma_g Sigma_r^1/2)^1/2))``:
      the 2-Wasserstein distance between N(mu_g, Sigma_g) and N(mu_r, Sigma_r), in data units.
      Matrix square roots come from symmetric eigendecompositions with tiny negative eigenvalues
      (rounding) clipped to 0.

    A model of generation ``g >= 1`` that collapsed to a point has ``ratio = 0``. A generation-0
    model with ``tr(Sigma_0) = 0`` leaves the ratio without a value at every generation (0/0 or
    x/0): that degenerate fit is refused with a :class:`DataError` naming the model, as is an
    empty real training split.
    """

    name = "variance"
    modalities = frozenset({"vector"})
    requires = frozenset({MOMENTS})
    outputs = {"ratio": HIGHER, "w2": LOWER}
    headline = ("ratio", "w2")

    def __init__(self) -> None:
        self._real: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        if self._real is None:
            require_rows(ctx.real.train, self.name, "the real training split")
            train = np.asarray(ctx.real.train, dtype=np.float64)
            cov = np.atleast_2d(np.cov(train, rowvar=False, ddof=0))
            self._real = (train.mean(axis=0), cov, _sqrtm(cov))
        real_mean, real_cov, real_root = self._real
        mean, cov = ctx.model.moments()
        mean, cov = np.atleast_1d(mean), np.atleast_2d(cov)
        base_trace = float(np.trace(np.atleast_2d(ctx.base.moments()[1])))
        if base_trace == 0:
            raise DataError(
                f"model {ctx.base.name!r} fitted a covariance of trace 0 at generation 0 (all its training rows "
                "equal?), so variance.ratio = tr(Sigma_g) / tr(Sigma_0) has no value",
                "train generation 0 on rows that differ (a larger [data] train_size), or fix the model's fit()",
            )
        cross, _ = _psd_eigh(real_root @ cov @ real_root)
        squared = np.sum((mean - real_mean) ** 2) + np.trace(cov) + np.trace(real_cov) - 2 * np.sum(np.sqrt(cross))
        return {
            "ratio": float(np.trace(cov) / base_trace),
            "w2": float(np.sqrt(max(squared, 0.0))),
        }


def _psd_eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors of a symmetric PSD matrix, negative rounding clipped to 0."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return np.clip(values, 0.0, None), vectors


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix."""
    values, vectors = _psd_eigh(matrix)
    return (vectors * np.sqrt(values)) @ vectors.T
