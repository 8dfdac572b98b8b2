"""Distance of fitted regression coefficients to the true ones: the linear theory case."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.models.linear import COEFFICIENTS
from collapse_bench.components import LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import DataError


class RegressionMetric(Metric):
    """Squared distance ||w_g - w*||^2 of the fitted coefficients to the data's true ones.

    ``w*`` comes from the dataset (``Dataset.truth()['w']``, as the ``linear`` dataset gives it).
    Under replace on a fixed design X with label noise sigma its expectation is
    ``(g + 1) sigma^2 tr((X^T X)^-1)``; under accumulate it stays below pi^2/6 times generation 0's
    (Gerstgrasser et al. 2024).
    """

    name = "regression"
    modalities = frozenset({"vector"})
    requires = frozenset({COEFFICIENTS})
    outputs = {"error": LOWER}
    headline = ("error",)

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        if "w" not in ctx.real.truth:
            raise DataError(
                "regression.error needs the true coefficients w, and this dataset does not know them",
                "use a dataset that gives them in truth(), such as linear",
            )
        w = np.asarray(ctx.model.coefficients(), dtype=np.float64)
        return {"error": float(np.sum((w - ctx.real.truth["w"]) ** 2))}
