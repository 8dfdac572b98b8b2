"""Repetition inside synthetic sequences and n-gram diversity across them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench.builtin.metrics.counting import ngram_ids
from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import HIGHER, LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol

#: The n-gram orders reported. Fixed rather than a parameter, so ``outputs`` always names exactly
#: the values ``compute`` returns and every run of the metric reports comparable columns.
ORDERS = (1, 2, 3, 4)


class RepetitionMetric(Metric):
    """Repetition within synthetic sequences (seq-rep-n) and diversity across them (distinct-n), n = 1..4.

    For a synthetic row ``x`` of ``L`` tokens, let ``G_n(x)`` be the list of its ``L - n + 1``
    n-grams (overlapping, in order) and ``U_n(x)`` the set of distinct ones; S_g has ``R`` rows.

    * ``seq_rep_n = mean over rows x of (1 - |U_n(x)| / |G_n(x)|)`` (Welleck et al. 2019): the
      share of a sequence's n-grams that repeat an earlier one; 0 when nothing repeats.
    * ``distinct_n = |union over rows of U_n(x)| / (R L)`` (Li et al. 2016: distinct n-grams
      divided by the total number of generated tokens); n-grams never span rows. For n > 1 it is
      at most ``(L - n + 1) / L``, not 1. Dividing by the number of n-grams instead would only
      multiply every value of a protocol by the constant ``L / (L - n + 1)`` (all rows have
      ``L`` tokens), so that variant is not reported.

    Both depend on sequence length and, for distinct-n, on the number of rows, so compare them
    at one protocol's sizes. Rows shorter than 4 tokens have no 4-grams, which leaves seq-rep-4
    without a value: such sequences are refused (:meth:`check` refuses the protocol up front).
    """

    name = "repetition"
    modalities = frozenset({"text"})
    outputs = {f"seq_rep_{n}": LOWER for n in ORDERS} | {f"distinct_{n}": HIGHER for n in ORDERS}
    headline = ("seq_rep_4", "distinct_4")
    reads_real = False

    def check(self, protocol: Protocol) -> None:
        _require_length(protocol.data.block_tokens)

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.samples, self.name, "synthetic rows S_g")
        _require_length(ctx.samples.shape[1])
        out: dict[str, float] = {}
        for n, (ids, distinct) in zip(ORDERS, ngram_ids(ctx.samples, max(ORDERS)), strict=True):
            per_row = 1 + np.count_nonzero(np.diff(np.sort(ids, axis=1), axis=1), axis=1)
            out[f"seq_rep_{n}"] = float(np.mean(1 - per_row / ids.shape[1]))
            out[f"distinct_{n}"] = distinct / ctx.samples.size
        return out


def _require_length(tokens: int) -> None:
    """Refuse sequences too short to hold an n-gram of every reported order."""
    if tokens < max(ORDERS):
        raise ConfigError(
            f"repetition counts n-grams up to n = {max(ORDERS)}, but sequences have {tokens} tokens",
            f"set [data] block_tokens to {max(ORDERS)} or more, or drop the repetition metric",
        )
