"""MAUVE against the real test text, and semantic diversity of the synthetic text, in embedding space."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench import HIGHER, Metric, MetricContext
from collapse_bench.errors import ConfigError
from collapse_bench_mauve.embedding import embed_rows

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


def _positive(value: float, what: str, metric: str) -> None:
    if not value > 0:
        raise ConfigError(f"{metric} {what} is {value}", f"give a positive {what}")


class MauveMetric(Metric):
    """MAUVE (Pillutla et al. 2021) of synthetic text S_g against the real test text; 1 = indistinguishable.

    Both sides are embedded with all-MiniLM-L6-v2 (unit-length mean-pooled sentence embeddings):
    P from up to ``rows`` rows of S_g, Q from up to ``rows`` rows of the real test split, each
    picked evenly spaced and decoded to text with the run's tokenizer. Then, as in ``mauve-text``'s
    ``compute_mauve``:

    1. PCA is fitted on P and Q together and keeps the leading components that explain 90% of the variance.
    2. k-means (faiss, 5 restarts of at most 500 iterations, seeded with ``seed``) quantizes all
       points into ``k`` clusters: ``k = clusters``, or ``max(2, round(min(|P|, |Q|) / 10))`` when
       ``clusters`` is 0. ``p`` and ``q`` are the histograms of P's and Q's points over them.
    3. For 25 weights ``λ`` evenly spaced in (0, 1), ``R_λ = λ p + (1 - λ) q`` gives the point
       ``(exp(-c KL(q ‖ R_λ)), exp(-c KL(p ‖ R_λ)))`` with ``c = scaling``; with the end points
       (0, 1) and (1, 0) these trace the divergence frontier.
    4. ``mauve`` is the area under that frontier, in [0, 1]; 1 exactly when ``p = q``.

    Lower MAUVE means the synthetic text occupies different regions of embedding space than real
    text, in too few of them (mode collapse) or in ones real text never visits (degenerate text).
    The value depends on ``rows``, ``k`` and ``c``: compare it only at equal settings and protocol.
    The k-means seed makes it deterministic for given inputs.
    """

    name = "mauve"
    modalities = frozenset({"text"})
    outputs = {"mauve": HIGHER}

    def __init__(
        self, *, rows: int = 512, clusters: int = 0, scaling: float = 5.0, seed: int = 25, batch_size: int = 64
    ) -> None:
        """Parameters.

        ``rows``: most synthetic rows and most real test rows embedded (embedding dominates the cost,
        about 170 rows/s of 64 tokens on 2 CPU cores). ``clusters``: k-means clusters, 0 for one per
        10 rows (mauve-text's default). ``scaling``: the constant ``c`` (mauve-text's default 5).
        ``seed``: k-means seed (mauve-text's default 25). ``batch_size``: rows per embedding batch.
        """
        if rows < 2:
            raise ConfigError(f"mauve rows is {rows}", "embed at least 2 rows (hundreds for a stable value)")
        if clusters < 0 or clusters == 1:
            raise ConfigError(f"mauve clusters is {clusters}", "give 2 or more clusters, or 0 for one per 10 rows")
        _positive(scaling, "scaling", self.name)
        _positive(batch_size, "batch_size", self.name)
        self.rows = rows
        self.clusters = clusters
        self.scaling = scaling
        self.seed = seed
        self.batch_size = batch_size
        self._real: np.ndarray | None = None

    def check(self, protocol: Protocol) -> None:
        points = min(self.rows, protocol.samples, protocol.data.test_size)
        if self.clusters > points:
            raise ConfigError(
                f"mauve clusters={self.clusters} exceeds the {points} rows embedded per side under {protocol.label}",
                "lower clusters or use 0 for one cluster per 10 rows",
            )

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        import mauve

        if self._real is None:
            self._real = embed_rows(ctx.real, ctx.real.test, self.rows, self.batch_size)
        synthetic = embed_rows(ctx.real, ctx.samples, self.rows, self.batch_size)
        result = mauve.compute_mauve(
            p_features=synthetic,
            q_features=self._real,
            num_buckets=self.clusters or "auto",
            mauve_scaling_factor=self.scaling,
            seed=self.seed,
        )
        return {"mauve": float(result.mauve)}


class SemanticDiversityMetric(Metric):
    """Mean pairwise cosine distance between sentence embeddings of the synthetic rows; 0 = all alike.

    With ``e_1 … e_n`` the unit-length all-MiniLM-L6-v2 embeddings of up to ``rows`` rows of S_g
    (picked evenly spaced, decoded with the run's tokenizer):

    ``semantic-diversity = 1 / (n (n - 1)) · Σ_{i ≠ j} (1 - e_i · e_j)``

    computed exactly in O(n) as ``1 - (‖Σ_i e_i‖² - Σ_i ‖e_i‖²) / (n (n - 1))``. It is 0 when
    every row says the same thing and grows as rows spread over meaning space; collapse drives it
    down as a model's output narrows. Compare it with the real text's own value (0.75 on the quick
    protocol's test split) and only at equal ``rows``.
    """

    name = "semantic-diversity"
    modalities = frozenset({"text"})
    outputs = {"semantic-diversity": HIGHER}

    def __init__(self, *, rows: int = 512, batch_size: int = 64) -> None:
        """``rows``: most synthetic rows embedded; ``batch_size``: rows per embedding batch."""
        if rows < 2:
            raise ConfigError(f"semantic-diversity rows is {rows}", "embed at least 2 rows")
        _positive(batch_size, "batch_size", self.name)
        self.rows = rows
        self.batch_size = batch_size

    def check(self, protocol: Protocol) -> None:
        if protocol.samples < 2:
            raise ConfigError(
                f"semantic-diversity compares pairs of rows; {protocol.label} draws {protocol.samples} per generation",
                "use a protocol with samples >= 2",
            )

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        vectors = embed_rows(ctx.real, ctx.samples, self.rows, self.batch_size).astype(np.float64)
        n = len(vectors)
        total = vectors.sum(axis=0)
        similarity = (total @ total - np.einsum("ij,ij->", vectors, vectors)) / (n * (n - 1))
        return {"semantic-diversity": float(1 - similarity)}
