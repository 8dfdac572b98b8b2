"""Each component of the example plugin on hand-made data, called the way the harness calls it."""

from __future__ import annotations

import numpy as np
import pytest
from collapse_bench_example import BigramMLE, DistinctTokens, KeepLast, TypeTokenRatio

from collapse_bench import Decoding, FitContext, MetricContext, MixContext, SampleContext
from collapse_bench.contract import check_metric, check_mixer, check_model, check_verifier
from collapse_bench.errors import ConfigError
from collapse_bench.testing import protocol_with


def fitted(data: list[list[int]], vocab_size: int = 5) -> BigramMLE:
    model = BigramMLE()
    ctx = FitContext(seed=0, generation=0, rng=np.random.default_rng(0), training={}, vocab_size=vocab_size)
    model.fit(np.array(data, dtype=np.int32), ctx)
    return model


def draw(model: BigramMLE, n: int, length: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    ctx = SampleContext(rng=np.random.default_rng(seed), length=length, decoding=Decoding(temperature=temperature))
    return model.sample(n, ctx)


def test_bigram_samples_follow_the_counted_transition_frequencies():
    model = fitted([[0, 1, 2], [0, 1, 2], [0, 1, 2], [0, 2, 1]])
    rows = draw(model, 20_000, 3)
    assert rows.shape == (20_000, 3) and np.issubdtype(rows.dtype, np.integer)
    assert (rows[:, 0] == 0).all()
    assert np.mean(rows[:, 1] == 1) == pytest.approx(0.75, abs=0.015)  # 0 -> 1 three times, 0 -> 2 once
    assert set(zip(rows[:, 1], rows[:, 2], strict=True)) == {(1, 2), (2, 1)}  # never an unseen pair


def test_bigram_temperature_sharpens_the_transitions():
    model = fitted([[0, 1], [0, 1], [0, 1], [0, 2]])
    assert np.mean(draw(model, 20_000, 2, temperature=0.5)[:, 1] == 1) == pytest.approx(0.9, abs=0.015)  # 9 : 1


def test_a_token_never_followed_restarts_from_the_first_tokens():
    assert draw(fitted([[0, 1]]), 4, 5).tolist() == [[0, 1, 0, 1, 0]] * 4


def test_bigram_sampling_depends_only_on_the_rng():
    model = fitted([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2]])
    assert np.array_equal(draw(model, 50, 8, seed=7), draw(model, 50, 8, seed=7))
    assert not np.array_equal(draw(model, 50, 8, seed=7), draw(model, 50, 8, seed=8))


@pytest.mark.parametrize("decoding", [{"strategy": "greedy"}, {"repetition_penalty": 1.2}, {"top_k": 40}])
def test_bigram_refuses_decoding_it_does_not_implement(decoding):
    protocol = protocol_with("smoke", decoding=decoding)
    with pytest.raises(ConfigError, match="bigram-mle"):
        BigramMLE().check(protocol)


def test_keep_last_trains_on_the_last_k_synthetic_sets():
    history = [np.full((2, 3), g) for g in range(4)]
    ctx = MixContext(None, history, generation=4, rng=np.random.default_rng(0), sample_size=2, generations=5)
    assert KeepLast(k=2).mix(ctx)[:, 0].tolist() == [2, 2, 3, 3]
    assert KeepLast(k=9).mix(ctx)[:, 0].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ConfigError, match="k >= 1"):
        KeepLast(k=0)


def test_distinct_tokens_scores_the_share_of_distinct_tokens_per_row():
    rows = np.array([[1, 1, 1, 1], [1, 2, 1, 2], [4, 3, 2, 1]])
    assert DistinctTokens().score(rows, None).tolist() == [0.25, 0.5, 1.0]


def test_type_token_ratio_is_distinct_tokens_over_tokens():
    ctx = MetricContext(model=None, base=None, real=None, samples=np.array([[1, 1, 2], [2, 3, 3]]), generation=0)
    assert TypeTokenRatio().compute(ctx) == {"type-token-ratio": 0.5}


def test_the_components_obey_the_collapse_bench_contract():
    # collapse-bench's own checks: shapes, dtypes, determinism under ctx.rng, save/load, outputs
    model = check_model(BigramMLE)
    check_mixer(KeepLast, k=3)
    check_metric(TypeTokenRatio, model=model)
    check_verifier(DistinctTokens, model=model)
