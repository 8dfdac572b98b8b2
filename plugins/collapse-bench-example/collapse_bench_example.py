"""A complete collapse-bench plugin in one file: a model, a mixer, a verifier and a metric.

collapse-bench finds this module through the ``collapse_bench`` entry point in ``pyproject.toml``
and calls the ``register_*`` hooks at the bottom. Each component is a subclass of a base class
from :mod:`collapse_bench`; the keyword-only parameters of its ``__init__`` are what users set in
a SPEC such as ``keep-last:k=3``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench import (
    HIGHER,
    FitContext,
    Metric,
    MetricContext,
    MixContext,
    Mixer,
    Model,
    SampleContext,
    Verifier,
    VerifyContext,
    hookimpl,
)
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


class BigramMLE(Model):
    """Bigram token model estimated by counting; a transition that is never sampled is lost for good.

    ``fit`` counts the first token of every row and every pair of adjacent tokens within a row.
    ``sample`` draws a row's first token from the first-token counts and each next token from the
    counts of pairs that start with the previous one, both raised to the power 1/T for the
    protocol's decoding temperature T. A token never followed by another in the training rows
    restarts from the first-token counts. Without smoothing, the model forgets every pair that
    S_g happens not to contain: the discrete collapse of Shumailov et al. (2024), one order up.
    """

    name = "bigram-mle"
    modality = "text"

    def check(self, protocol: Protocol) -> None:
        protocol.decoding.ancestral(self.name)  # refuses every setting but a temperature

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        vocab = ctx.vocab_size
        self.first = np.bincount(data[:, 0], minlength=vocab)
        pairs, self.counts = np.unique(data[:, :-1].astype(np.int64) * vocab + data[:, 1:], return_counts=True)
        self.previous, self.next = np.divmod(pairs, vocab)  # sorted by previous token
        self.start = np.searchsorted(self.previous, np.arange(vocab))
        self.end = np.searchsorted(self.previous, np.arange(vocab), side="right")

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        power = 1.0 / ctx.decoding.ancestral(self.name)
        first = np.cumsum(self.first**power)
        bounds = np.concatenate([[0.0], np.cumsum(self.counts**power)])  # pair i owns [bounds[i], bounds[i + 1])
        rows = np.empty((n, ctx.length), dtype=np.int32)
        rows[:, 0] = np.searchsorted(first, ctx.rng.random(n) * first[-1], side="right")
        for t in range(1, ctx.length):
            start, end = self.start[rows[:, t - 1]], self.end[rows[:, t - 1]]  # the pairs after each row's last token
            target = bounds[start] + ctx.rng.random(n) * (bounds[end] - bounds[start])
            pick = np.clip(np.searchsorted(bounds, target, side="right") - 1, start, end - 1)
            restart = np.searchsorted(first, ctx.rng.random(n) * first[-1], side="right")
            rows[:, t] = np.where(end > start, self.next[pick], restart)
        return rows


class KeepLast(Mixer):
    """Train on the last k synthetic sets together: D_{g+1} = S_{g-k+1} + ... + S_g (a sliding window)."""

    name = "keep-last"

    def __init__(self, *, k: int = 2) -> None:
        """``k``: how many of the most recent synthetic sets to train on (fewer while there are fewer)."""
        if k < 1:
            raise ConfigError(f"keep-last k is {k}", "keep at least the last synthetic set: k >= 1")
        self.k = k

    def mix(self, ctx: MixContext) -> np.ndarray:
        return np.concatenate(ctx.history[-self.k :])


class DistinctTokens(Verifier):
    """Share of distinct tokens in each row: selecting by it keeps varied text and drops loops.

    ``select:verifier=distinct-tokens,keep=0.5`` draws twice the rows and trains on the half that
    repeats itself least. It needs no model, so it applies to every text model.
    """

    name = "distinct-tokens"
    modalities = frozenset({"text"})

    def score(self, rows: np.ndarray, ctx: VerifyContext) -> np.ndarray:
        ordered = np.sort(rows, axis=1)
        distinct = 1 + (np.diff(ordered, axis=1) != 0).sum(axis=1)
        return distinct / rows.shape[1]


class TypeTokenRatio(Metric):
    """Distinct token types in the synthetic set S_g divided by its number of tokens.

    It falls as a collapsing model narrows its vocabulary. It depends on how many tokens S_g has,
    so compare it only at one protocol's ``samples`` and ``block_tokens``.
    """

    name = "type-token-ratio"
    modalities = frozenset({"text"})
    outputs = {"type-token-ratio": HIGHER}

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        return {"type-token-ratio": len(np.unique(ctx.samples)) / ctx.samples.size}


@hookimpl
def register_models(register):
    register(BigramMLE)


@hookimpl
def register_mixers(register):
    register(KeepLast)


@hookimpl
def register_verifiers(register):
    register(DistinctTokens)


@hookimpl
def register_metrics(register):
    register(TypeTokenRatio)
