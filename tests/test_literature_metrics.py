"""`zipf` and `self-bleu`: hand-computed values on small inputs, and the reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import linregress

from collapse_bench.builtin.metrics.self_bleu import SelfBleuMetric, self_bleu
from collapse_bench.builtin.metrics.zipf import ZipfMetric, zipf_coefficient
from collapse_bench.contexts import MetricContext
from collapse_bench.contract import check_metric
from collapse_bench.data import RealData
from collapse_bench.errors import ConfigError, DataError


def counts_to_rows(counts: list[int], width: int = 4) -> np.ndarray:
    """Rows holding token id i exactly counts[i] times (padding-free: the total is a multiple of width)."""
    tokens = np.repeat(np.arange(len(counts)), counts)
    return tokens.reshape(-1, width)


def score(metric, real: RealData, samples: np.ndarray) -> dict[str, float]:
    return metric.compute(MetricContext(model=None, base=None, real=real, samples=samples, generation=1))


def test_zipf_of_counts_falling_as_one_over_rank_is_one():
    # c_r = 60 / r exactly: log c = log 60 - log r, a slope of exactly -1
    rows = counts_to_rows([60, 30, 20, 15, 12, 10, 5, 4, 3, 1], width=4)
    assert zipf_coefficient(rows, types=6) == pytest.approx(1.0, abs=1e-12)


def test_zipf_matches_scipy_linregress_over_the_most_frequent_types():
    rng = np.random.default_rng(0)
    rows = rng.zipf(1.3, size=(200, 32)) % 500
    counts = np.sort(np.bincount(rows.ravel()))[::-1]
    top = counts[counts > 0][:100]
    expected = -linregress(np.log(np.arange(1, 101)), np.log(top)).slope
    assert zipf_coefficient(rows, types=100) == pytest.approx(expected, rel=1e-10)


def test_zipf_gap_is_the_distance_to_the_real_coefficient_and_one_type_is_infinite():
    real_rows = counts_to_rows([60, 30, 20, 15, 12, 10, 5, 4, 3, 1])
    real = RealData(modality="text", train=real_rows, test=real_rows, pool=real_rows[:0], tokenizer=None)
    flat = counts_to_rows([10, 10, 10, 10])  # every type as frequent: slope 0
    out = score(ZipfMetric(types=6), real, flat)
    assert out["zipf"] == pytest.approx(0.0, abs=1e-12) and out["gap"] == pytest.approx(1.0, abs=1e-12)
    assert score(ZipfMetric(), real, np.zeros((3, 4), dtype=np.int64)) == {"zipf": math.inf, "gap": math.inf}
    with pytest.raises(DataError, match="synthetic rows S_g of shape"):
        score(ZipfMetric(), real, np.zeros((0, 4), dtype=np.int64))
    with pytest.raises(ConfigError, match="at least 2"):
        ZipfMetric(types=1)


def test_self_bleu_of_two_texts_by_hand():
    # h = "a b c d" against r = "a b c e": precisions 3/4, 2/3, 1/2 and 0/1 (exp smoothing: 1/2), same lengths
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx((3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25, rel=1e-6)
    assert self_bleu(["the same line here", "the same line here", "the same line here"]) == pytest.approx(1.0)


def test_self_bleu_equals_sacrebleu_sentence_scores(tiny_corpus):
    from sacrebleu.metrics import BLEU

    texts = tiny_corpus.decode(tiny_corpus.train[:40])
    texts[5] = texts[6]  # a duplicate: the runner-up count matters
    bleu = BLEU(effective_order=True)
    expected = np.mean([bleu.sentence_score(h, texts[:i] + texts[i + 1 :]).score for i, h in enumerate(texts)]) / 100
    assert self_bleu(texts) == pytest.approx(expected, rel=1e-12)


def test_self_bleu_metric_scores_an_evenly_spaced_sample_of_decoded_rows(tiny_corpus):
    rows = tiny_corpus.train
    n = len(rows)
    out = score(SelfBleuMetric(rows=16), tiny_corpus, rows)
    assert out == {"self-bleu": self_bleu(tiny_corpus.decode(rows[[i * n // 16 for i in range(16)]]))}
    assert 0 < out["self-bleu"] < 1
    assert check_metric(SelfBleuMetric, rows=8) and check_metric(ZipfMetric)
    with pytest.raises(ConfigError, match="at least 2"):
        SelfBleuMetric(rows=1)
    with pytest.raises(DataError, match="1 synthetic row"):
        score(SelfBleuMetric(), tiny_corpus, rows[:1])
