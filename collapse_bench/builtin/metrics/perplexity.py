"""Perplexity of each generation's model on the real test split: the paper's headline measure."""

from __future__ import annotations

import math

import numpy as np

from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import LOGLIK, LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import DataError


class PerplexityMetric(Metric):
    """Perplexity, bits per character and zero-probability rate of M_g on the real test split.

    With ``l_j`` the negative log-likelihood in nats that M_g gives test token ``j``, ``T`` the
    number of test tokens and ``C`` the number of characters of the decoded test text:

    * ``perplexity = exp(sum_j l_j / T)``
    * ``bits_per_char = sum_j l_j / (C ln 2)``: comparable across tokenizers, unlike perplexity
    * ``zero_prob_rate = |{j : l_j = inf}| / T``: test tokens the model gives probability 0

    A single zero-probability token makes perplexity and bits per character infinite: the model
    says real text is impossible, and no smoothing by the metric hides that. An empty test split
    (``T = 0``) or an unknown or zero character count ``C`` leaves a value undefined and is
    refused with a :class:`DataError`.
    """

    name = "perplexity"
    modalities = frozenset({"text"})
    requires = frozenset({LOGLIK})
    outputs = {"perplexity": LOWER, "bits_per_char": LOWER, "zero_prob_rate": LOWER}
    headline = ("perplexity", "bits_per_char")

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.real.test, self.name, "the real test split")
        if not ctx.real.test_chars:
            raise DataError(
                f"metric {self.name!r} needs the real test split's character count for bits per character, "
                f"but it is {ctx.real.test_chars!r}",
                "set RealData.test_chars to the length of the decoded test text (the harness does)",
            )
        nll = np.asarray(ctx.model.nll(ctx.real.test), dtype=np.float64)
        total = float(nll.sum())
        with np.errstate(over="ignore"):  # a huge mean NLL is an infinite perplexity, honestly
            perplexity = float(np.exp(total / nll.size))
        return {
            "perplexity": perplexity,
            "bits_per_char": total / math.log(2) / ctx.real.test_chars,
            "zero_prob_rate": float(np.isinf(nll).mean()),
        }
