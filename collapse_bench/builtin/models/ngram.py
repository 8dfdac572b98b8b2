"""An n-gram language model with interpolated modified Kneser-Ney smoothing (Chen & Goodman 1998).

Each row is an independent sequence, left-padded with ``order - 1`` beginning-of-sequence symbols
(id ``vocab_size``) and without an end symbol, since rows have a fixed length. An n-gram is packed
into one ``int64`` key, ``ceil(log2(vocab_size + 1))`` bits per token with the last token in the
lowest bits, so that the n-grams sharing a context form one contiguous run of a sorted table and
every lookup is a vectorized ``searchsorted``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from collapse_bench.components import LOGLIK, Model
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol

#: Discounts (D1, D2, D3+) used where count-of-counts cannot give a valid estimate (tiny or
#: degenerate data): typical values of Chen & Goodman's estimates on real text.
FALLBACK_DISCOUNTS = np.array([0.5, 1.0, 1.5])
_KEY_BITS = 63


def discounts(counts: np.ndarray) -> np.ndarray:
    """The modified Kneser-Ney discounts ``(D1, D2, D3+)`` for one order's n-gram counts.

    Chen & Goodman's estimates from the count-of-counts n1..n4; an estimate that is undefined or
    outside ``(0, r)`` for count ``r`` (which would leave an n-gram with no mass, or with negative
    mass) is replaced by its :data:`FALLBACK_DISCOUNTS` entry.
    """
    n1, n2, n3, n4 = np.bincount(np.minimum(counts, 5), minlength=6)[1:5].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n1 / (n1 + 2 * n2)
        estimate = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    valid = (estimate > 0) & (estimate < np.arange(1, 4))
    return np.where(valid, estimate, FALLBACK_DISCOUNTS)


@dataclass(frozen=True)
class _Order:
    """The smoothed statistics of one order: n-grams, and the contexts they continue.

    ``mass`` is an n-gram's discounted count, its share of its context's probability before
    interpolation; ``gamma`` is the weight a context leaves to the next lower order.
    """

    keys: np.ndarray  # sorted n-gram keys
    mass: np.ndarray  # count minus discount, float64
    cum_mass: np.ndarray  # [0, cumsum(mass)]: draws within a context's run
    ctx_keys: np.ndarray  # sorted context keys (the n-gram keys without their last token)
    ctx_bounds: np.ndarray  # the n-grams of context i are keys[ctx_bounds[i]:ctx_bounds[i + 1]]
    ctx_total: np.ndarray  # sum of counts, float64
    ctx_gamma: np.ndarray
    ctx_peak: np.ndarray  # largest mass / total of a context: bounds its direct probability

    @classmethod
    def build(cls, keys: np.ndarray, counts: np.ndarray, bits: int) -> _Order:
        """Statistics from sorted, unique ``keys`` and their (raw or continuation) ``counts``."""
        discount = discounts(counts)[np.minimum(counts, 3) - 1]
        contexts = keys >> bits
        starts = np.flatnonzero(np.r_[True, contexts[1:] != contexts[:-1]])
        total = np.add.reduceat(counts, starts).astype(np.float64)
        mass = counts - discount
        return cls(
            keys=keys,
            mass=mass,
            cum_mass=np.r_[0.0, np.cumsum(mass)],
            ctx_keys=contexts[starts],
            ctx_bounds=np.r_[starts, len(keys)],
            ctx_total=total,
            ctx_gamma=np.add.reduceat(discount, starts) / total,
            ctx_peak=np.maximum.reduceat(mass, starts) / total,
        )


def _find(table: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each query in the sorted ``table`` (clipped to a valid index) and whether it is there."""
    index = np.minimum(np.searchsorted(table, queries), len(table) - 1)
    return index, table[index] == queries


class NgramModel(Model):
    """N-gram language model with interpolated modified Kneser-Ney smoothing."""

    name = "ngram"
    modality = "text"
    capabilities = frozenset({LOGLIK})

    def __init__(self, *, order: int = 3) -> None:
        """``order``: tokens per n-gram, context included (1 = unigram); at most 4 for a 4096-token vocabulary."""
        if not 1 <= order <= _KEY_BITS:
            raise ConfigError(f"ngram order is {order}", f"give an order from 1 to {_KEY_BITS} (3 is a trigram model)")
        self.order = order
        self.vocab_size = 0
        self.bits = 0
        self.orders: list[_Order] = []
        self.counts: tuple[np.ndarray, np.ndarray] | None = None  # highest-order keys and counts

    def _key_bits(self, vocab_size: int) -> int:
        """Bits per token in a key (the vocabulary plus the BOS symbol); refuse orders that overflow."""
        bits = vocab_size.bit_length()
        if bits * self.order > _KEY_BITS:
            raise ConfigError(
                f"ngram order {self.order} does not fit a vocabulary of {vocab_size} tokens",
                f"use order <= {_KEY_BITS // bits} with this vocabulary",
            )
        return bits

    def check(self, protocol: Protocol) -> None:
        protocol.decoding.ancestral(self.name, at_most_one=True)
        self._key_bits(protocol.data.vocab_size)

    def _keys(self, data: np.ndarray) -> np.ndarray:
        """Key of the highest-order n-gram ending at every token of ``data``, shape ``data.shape``.

        The key of the lower-order n-gram ending there is its low ``k * bits`` bits.
        """
        n, length = data.shape
        bos = np.full((n, self.order - 1), self.vocab_size, dtype=np.int64)
        padded = np.concatenate([bos, data.astype(np.int64)], axis=1)
        keys = np.zeros((n, length), dtype=np.int64)
        for j in range(self.order):
            keys = (keys << self.bits) | padded[:, j : j + length]
        return keys

    def _mask(self, k: int) -> int:
        """Selects the last ``k`` tokens of a key."""
        return (1 << (self.bits * k)) - 1

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        if data.size == 0:
            raise DataError("ngram got no training tokens", "give the model at least one non-empty row")
        self.vocab_size = int(ctx.vocab_size)
        self.bits = self._key_bits(self.vocab_size)
        self._build(*np.unique(self._keys(data), return_counts=True))

    def _build(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Every order's smoothed tables from the highest order's n-gram keys and counts."""
        self.counts = (keys, counts)
        orders = [_Order.build(keys, counts, self.bits)]
        for k in range(self.order - 1, 0, -1):
            # Lower orders count distinct left extensions (continuation counts), except n-grams
            # that start with BOS: they cannot be extended left, so they keep their raw counts.
            keys, inverse, extensions = np.unique(keys & self._mask(k), return_inverse=True, return_counts=True)
            raw = np.bincount(inverse, weights=counts).astype(np.int64)
            counts = np.where(keys >> (self.bits * (k - 1)) == self.vocab_size, raw, extensions)
            orders.append(_Order.build(keys, counts, self.bits))
        self.orders = orders[::-1]

    def save(self, path: Path) -> None:
        """Only the highest order's counts: every other table is rebuilt from them on load (a tenth of the size)."""
        keys, counts = self.counts
        np.savez(path / "counts.npz", keys=keys, counts=counts, vocab_size=self.vocab_size, order=self.order)

    def load(self, path: Path) -> None:
        with np.load(path / "counts.npz", allow_pickle=False) as saved:
            if int(saved["order"]) != self.order:
                raise ValueError(f"saved model has order {int(saved['order'])}, not {self.order}")
            self.vocab_size = int(saved["vocab_size"])
            self.bits = self._key_bits(self.vocab_size)
            self._build(saved["keys"], saved["counts"])

    def _prob(self, keys: np.ndarray) -> np.ndarray:
        """P(last token | its context) for packed highest-order n-gram keys of any shape."""
        prob = np.full(keys.shape, 1.0 / self.vocab_size)
        for k, table in enumerate(self.orders, start=1):
            grams = keys & self._mask(k)
            ctx, seen_ctx = _find(table.ctx_keys, grams >> self.bits)
            gram, seen_gram = _find(table.keys, grams)
            direct = np.where(seen_gram, table.mass[gram], 0.0) / table.ctx_total[ctx]
            prob = np.where(seen_ctx, direct + table.ctx_gamma[ctx] * prob, prob)
        return prob

    def nll(self, data: np.ndarray) -> np.ndarray:
        return -np.log(self._prob(self._keys(data)))

    def _propose(self, history: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One token per row from the interpolated distribution, drawn as a mixture, with a bound on it.

        Starting at the highest order, a row stays at an order with probability ``1 - gamma`` of
        its context there and draws a continuation in proportion to its discounted count; else it
        backs off, down to the uniform distribution. Unseen contexts back off with certainty.
        The bound is the largest probability any token can have after that row's context.
        """
        n = len(history)
        u = rng.random((n, self.order + 1))
        token = (u[:, 0] * self.vocab_size).astype(np.int64)  # the uniform draw, unless overridden
        undecided = np.ones(n, dtype=bool)
        reach = np.ones(n)  # probability of backing off down to the current order
        bound = np.zeros(n)
        for k in range(self.order, 0, -1):
            table = self.orders[k - 1]
            ctx_index, seen = _find(table.ctx_keys, history & self._mask(k - 1))
            bound += reach * np.where(seen, table.ctx_peak[ctx_index], 0.0)
            reach *= np.where(seen, table.ctx_gamma[ctx_index], 1.0)
            rows = np.flatnonzero(undecided & seen & (u[:, k] >= table.ctx_gamma[ctx_index]))
            undecided[rows] = False
            first, stop = table.ctx_bounds[ctx_index[rows]], table.ctx_bounds[ctx_index[rows] + 1]
            lo, hi = table.cum_mass[first], table.cum_mass[stop]
            pick = np.searchsorted(table.cum_mass, lo + u[rows, 0] * (hi - lo), side="right") - 1
            token[rows] = table.keys[np.clip(pick, first, stop - 1)] & self._mask(1)
        return token, bound + reach / self.vocab_size

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """Ancestral sampling from P(w | h)^(1/T), normalized, for the decoding temperature T.

        At T = 1 every proposal from :meth:`_propose` is kept. At T < 1 a proposal w is kept with
        probability (P(w | h) / bound)^(1/T - 1), which is exact rejection sampling of the
        tempered distribution; rejected rows draw again.
        """
        sharpen = 1.0 / ctx.decoding.ancestral(self.name, at_most_one=True) - 1.0
        history = np.zeros(n, dtype=np.int64)  # the last order - 1 tokens, packed like a key
        for _ in range(self.order - 1):
            history = (history << self.bits) | self.vocab_size
        out = np.empty((n, ctx.length), dtype=np.int32)
        for t in range(ctx.length):
            pending = np.arange(n)
            while pending.size:
                token, bound = self._propose(history[pending], ctx.rng)
                if sharpen:
                    prob = self._prob((history[pending] << self.bits) | token)
                    keep = ctx.rng.random(len(pending)) < (prob / bound) ** sharpen
                else:
                    keep = np.ones(len(pending), dtype=bool)
                out[pending[keep], t] = token[keep]
                pending = pending[~keep]
            history = ((history << self.bits) | out[:, t]) & self._mask(self.order - 1)
        return out
