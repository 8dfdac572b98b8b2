"""Whether the synthetic data still contains the real data's rare tokens: the first thing collapse loses."""

from __future__ import annotations

import numpy as np

from collapse_bench.builtin.metrics.counting import unigram_counts
from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import HIGHER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError, DataError


class TailMetric(Metric):
    """Share and coverage of the real training data's rarest token types in the synthetic data.

    The tail is fixed once per run from the real training split: order the token types that occur
    in it by count, ascending (ties by token id), and take the longest prefix whose counts sum to
    at most ``mass`` (default 0.1) of all its tokens. With ``T`` that set of types, ``r`` the share
    of real training tokens whose type is in ``T``, and ``s`` the same share among the synthetic
    tokens of S_g:

    * ``share_ratio = s / r``: 1 means the tail is as frequent as in real data, 0 that it is gone
    * ``type_coverage = |{t in T : t occurs in S_g}| / |T|``

    Coverage is measured on the synthetic set as drawn, so it depends on its size: a set smaller
    than the real training split misses rare types even from a perfect model, and even one of
    equal size misses a type seen once with probability about 1/e. Compare it across generations at
    one sample size (the protocol fixes it), not with 1.

    Both values exist for any non-empty synthetic set (rows of one repeated token included). An
    empty real or synthetic set, or a real training split whose rarest type alone exceeds ``mass``
    (the tail would be empty and ``r = 0``), is refused with a :class:`DataError`.
    """

    name = "tail"
    modalities = frozenset({"text"})
    outputs = {"share_ratio": HIGHER, "type_coverage": HIGHER}
    headline = ("type_coverage", "share_ratio")

    def __init__(self, *, mass: float = 0.1) -> None:
        """``mass``: fraction of the real training tokens that the tail types make up at most."""
        if not 0 < mass <= 1:
            raise ConfigError(f"tail mass is {mass}", "give a fraction of the real tokens, 0 < mass <= 1")
        self.mass = mass
        self._tail: np.ndarray | None = None
        self._real_share = 0.0

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.samples, self.name, "synthetic rows S_g")
        if self._tail is None:
            require_rows(ctx.real.train, self.name, "the real training split")
            self._tail, self._real_share = tail_types(ctx.real.train, self.mass)
        in_tail = unigram_counts(ctx.samples, int(self._tail.max()) + 1)[self._tail]
        return {
            "share_ratio": float(in_tail.sum() / ctx.samples.size / self._real_share),
            "type_coverage": float(np.count_nonzero(in_tail) / len(self._tail)),
        }


def tail_types(train: np.ndarray, mass: float) -> tuple[np.ndarray, float]:
    """The tail types of ``train`` (as defined in :class:`TailMetric`) and their share of its tokens."""
    counts = unigram_counts(train)
    present = np.flatnonzero(counts)
    order = present[np.argsort(counts[present], kind="stable")]
    cumulative = np.cumsum(counts[order])
    # Compare fractions, not mass * total, so that a tail of exactly `mass` is kept whole.
    size = int(np.searchsorted(cumulative / cumulative[-1], mass, side="right"))
    if size == 0:
        raise DataError(
            f"the rarest token type alone makes up more than tail mass {mass} of the real training tokens",
            "use a larger tail mass (tail:mass=...) or more training data",
        )
    return order[:size], float(cumulative[size - 1] / cumulative[-1])
