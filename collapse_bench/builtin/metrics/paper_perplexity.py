"""Test perplexity as Shumailov et al. (2024) compute it, next to the harness's own."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import LOGLIK, LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError, DataError


class PaperPerplexityMetric(Metric):
    """Test perplexity as the test step of Shumailov et al. (2024): exp of the mean of per-batch mean losses.

    The real test rows are taken in order in batches of ``batch_size`` (the last one smaller);
    each batch's loss is the mean cross-entropy over the tokens it predicts, tokens ``1..L-1``
    of each row (a causal LM's loss on a row of ``L`` tokens, its labels the row itself); and
    ``perplexity = exp(sum_b loss_b / B)`` over the ``B`` batches, so a smaller last batch
    weighs as much as a full one. The harness's ``perplexity`` is ``exp`` of the mean over
    *every* token, the first of each row included; the two agree only in the limit.

    It equals their value exactly when the model scores each row alone, as it was trained
    (``hf`` in its own token space with ``[training] row_bos = false``); for a model that reads
    each row after a BOS token, tokens ``1..L-1`` are scored with that BOS in context.
    """

    name = "paper-perplexity"
    modalities = frozenset({"text"})
    requires = frozenset({LOGLIK})
    outputs = {"paper-perplexity": LOWER}

    def __init__(self, *, batch_size: int = 128) -> None:
        """``batch_size``: rows per test batch (their ``-b``: 128 by default, 16 in their runner)."""
        if batch_size < 1:
            raise ConfigError(f"paper-perplexity batch_size={batch_size}", "give batch_size of 1 or more")
        self.batch_size = batch_size

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.real.test, self.name, "the real test split")
        if ctx.real.test.shape[1] < 2:
            raise DataError(
                f"metric {self.name!r} needs rows of at least 2 tokens (a row predicts its tokens after the first)",
                "raise [data] block_tokens",
            )
        predicted = np.asarray(ctx.model.nll(ctx.real.test), dtype=np.float64)[:, 1:]
        losses = [predicted[i : i + self.batch_size].mean() for i in range(0, len(predicted), self.batch_size)]
        with np.errstate(over="ignore"):
            return {"paper-perplexity": float(np.exp(np.mean(losses)))}
