"""The n-gram model is a normalized modified Kneser-Ney language model that samples what it scores."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from collapse_bench.builtin.models.ngram import FALLBACK_DISCOUNTS, NgramModel, discounts
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError
from collapse_bench.testing import protocol_with


def _fit(data: np.ndarray, vocab_size: int, order: int) -> NgramModel:
    model = NgramModel(order=order)
    ctx = FitContext(seed=0, generation=0, rng=np.random.default_rng(0), training={}, vocab_size=vocab_size)
    model.fit(np.asarray(data), ctx)
    return model


def _sample(model: NgramModel, n: int, length: int, seed: int) -> np.ndarray:
    return model.sample(n, SampleContext(rng=np.random.default_rng(seed), length=length))


def _next_token_probs(model: NgramModel, history: tuple[int, ...], vocab_size: int) -> np.ndarray:
    """P(w | history) for every w, read off ``nll`` of rows ``history + (w,)``."""
    rows = np.array([[*history, w] for w in range(vocab_size)])
    return np.exp(-model.nll(rows)[:, -1])


def _markov_corpus(rng: np.random.Generator, vocab_size: int, rows: int, length: int) -> np.ndarray:
    """Rows from a random first-order Markov chain, so that contexts matter but are not deterministic."""
    transition = rng.dirichlet(np.full(vocab_size, 0.5), size=vocab_size)
    cdf = np.cumsum(transition, axis=1)
    out = np.empty((rows, length), dtype=np.int64)
    out[:, 0] = rng.integers(vocab_size, size=rows)
    for t in range(1, length):
        u = rng.random(rows)[:, None]
        out[:, t] = np.minimum((u > cdf[out[:, t - 1]]).sum(axis=1), vocab_size - 1)
    return out


def _reference_nll(train: np.ndarray, test: np.ndarray, vocab_size: int, order: int) -> np.ndarray:
    """Interpolated modified Kneser-Ney written out n-gram by n-gram, as an independent check."""
    bos = vocab_size

    def grams(rows: np.ndarray, k: int) -> list[tuple[int, ...]]:
        out = []
        for row in rows:
            padded = [bos] * (order - 1) + [int(w) for w in row]
            out += [tuple(padded[t + order - k : t + order]) for t in range(len(row))]
        return out

    counts = {order: Counter(grams(train, order))}
    for k in range(order - 1, 0, -1):
        raw = Counter(grams(train, k))
        continuation = Counter(g[1:] for g in counts[k + 1])
        counts[k] = Counter({g: raw[g] if g[0] == bos else continuation[g] for g in raw})
    disc = {k: discounts(np.array(list(c.values()))) for k, c in counts.items()}

    def prob(gram: tuple[int, ...]) -> float:
        k = len(gram)
        if k == 0:
            return 1 / vocab_size
        context = [(g, c) for g, c in counts[k].items() if g[:-1] == gram[:-1]]
        lower = prob(gram[1:])
        if not context:
            return lower
        total = sum(c for _, c in context)
        left = sum(disc[k][min(c, 3) - 1] for _, c in context)
        c = counts[k][gram]
        direct = (c - disc[k][min(c, 3) - 1]) / total if c else 0.0
        return direct + left / total * lower

    return -np.log([[prob(g) for g in grams(row[None], order)] for row in test])


def test_discounts_follow_chen_and_goodman():
    # n1=4, n2=2, n3=1, n4=1: Y = 4/8, D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.
    counts = np.array([1, 1, 1, 1, 2, 2, 3, 4, 9])
    assert np.allclose(discounts(counts), [0.5, 1.25, 1.0])


def test_discounts_fall_back_when_count_of_counts_are_missing():
    assert np.array_equal(discounts(np.array([7, 9, 50])), FALLBACK_DISCOUNTS)
    assert np.all((FALLBACK_DISCOUNTS > 0) & (FALLBACK_DISCOUNTS < [1, 2, 3]))


@pytest.mark.parametrize("order", [1, 2, 3])
def test_nll_matches_a_direct_implementation(order):
    rng = np.random.default_rng(1)
    train = rng.integers(0, 5, size=(30, 8))
    test = rng.integers(0, 7, size=(6, 8))  # tokens 5 and 6 never occur in training
    model = _fit(train, vocab_size=7, order=order)
    assert np.allclose(model.nll(test), _reference_nll(train, test, vocab_size=7, order=order), rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_next_token_distribution_sums_to_one(order):
    vocab = 6
    train = np.random.default_rng(2).integers(0, 4, size=(40, 12))  # tokens 4 and 5 are never seen
    model = _fit(train, vocab, order)
    histories = [(), (0,), (3,), (0, 1), (1, 1), (2, 3, 0), (5, 5), (4, 2), (1, 5, 2, 2)]
    for history in histories:
        probs = _next_token_probs(model, history, vocab)
        assert np.all(probs > 0)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12), history


def test_higher_order_wins_on_structured_text():
    # Each token is the sum of the two before it (mod V) 90% of the time: only a trigram model sees it.
    rng = np.random.default_rng(3)
    vocab, rows, length = 20, 600, 32
    data = np.empty((rows, length), dtype=np.int64)
    data[:, :2] = rng.integers(vocab, size=(rows, 2))
    for t in range(2, length):
        noise = rng.random(rows) < 0.1
        data[:, t] = np.where(noise, rng.integers(vocab, size=rows), (data[:, t - 1] + data[:, t - 2]) % vocab)
    train, test = data[:500], data[500:]
    perplexity = {order: np.exp(_fit(train, vocab, order).nll(test).mean()) for order in (1, 3)}
    assert perplexity[1] > 15  # tokens are near uniform over 20
    assert perplexity[3] < 3


def test_unseen_tokens_get_finite_but_higher_nll():
    train = np.tile(np.arange(5), (20, 2))
    model = _fit(train, vocab_size=10, order=3)
    test = np.array([[0, 1, 2, 7, 8, 9], [9, 9, 9, 9, 9, 9]])
    nll = model.nll(test)
    assert nll.dtype == np.float64 and nll.shape == test.shape
    assert np.all(np.isfinite(nll))
    assert nll[0, 3:].min() > nll[0, :3].max()


def test_sampling_is_deterministic_per_seed():
    model = _fit(np.random.default_rng(4).integers(0, 50, size=(100, 16)), vocab_size=50, order=3)
    first = _sample(model, 64, 16, seed=7)
    assert first.dtype == np.int32 and first.shape == (64, 16)
    assert np.array_equal(first, _sample(model, 64, 16, seed=7))
    assert not np.array_equal(first, _sample(model, 64, 16, seed=8))
    assert first.min() >= 0 and first.max() < 50


def test_samples_reproduce_a_deterministic_pattern():
    period = 7
    train = np.tile(np.arange(period), (200, 5))
    samples = _sample(_fit(train, vocab_size=12, order=3), 200, 35, seed=0)
    assert np.mean(samples[:, 0] == 0) > 0.99
    assert np.mean(samples[:, 1:] == (samples[:, :-1] + 1) % period) > 0.99
    assert np.mean(np.all(samples == train[0], axis=1)) > 0.9


@pytest.mark.parametrize(("order", "temperature"), [(2, 1.0), (3, 1.0), (2, 0.5), (3, 0.8)])
def test_sample_frequencies_match_model_probabilities(order, temperature):
    # Small training set, so that smoothing and backoff carry real mass in the sampled mixture.
    vocab = 5
    rng = np.random.default_rng(5)
    model = _fit(_markov_corpus(rng, vocab, rows=40, length=12), vocab, order)
    decoding = Decoding(temperature=temperature)
    samples = model.sample(6000, SampleContext(rng=np.random.default_rng(6), length=24, decoding=decoding))
    checked = 0
    for history in itertools.product(range(vocab), repeat=order - 1):
        windows = np.lib.stride_tricks.sliding_window_view(samples, order, axis=1).reshape(-1, order)
        nexts = windows[np.all(windows[:, :-1] == history, axis=1), -1]
        if len(nexts) < 500:
            continue
        checked += 1
        expected = _next_token_probs(model, history, vocab) ** (1 / temperature)
        expected /= expected.sum()
        observed = np.bincount(nexts, minlength=vocab) / len(nexts)
        tolerance = 4.5 * np.sqrt(expected * (1 - expected) / len(nexts)) + 1e-3
        assert np.all(np.abs(observed - expected) <= tolerance), history
    assert checked >= vocab ** (order - 1) // 2
    first = np.bincount(samples[:, 0], minlength=vocab) / len(samples)
    expected_first = np.exp(-model.nll(np.arange(vocab)[:, None])[:, 0]) ** (1 / temperature)
    assert np.allclose(first, expected_first / expected_first.sum(), atol=0.02)


def test_order_must_be_positive():
    with pytest.raises(ConfigError):
        NgramModel(order=0)


def test_order_must_fit_the_key_for_the_vocabulary():
    data = np.zeros((2, 4), dtype=np.int64)
    _fit(data, vocab_size=4096, order=4)
    with pytest.raises(ConfigError, match="order <= 4"):
        _fit(data, vocab_size=4096, order=5)
    protocol = protocol_with("smoke", data={"train_size": 256, "test_size": 64, "vocab_size": 4096})
    NgramModel(order=4).check(protocol)
    with pytest.raises(ConfigError, match="order <= 4"):
        NgramModel(order=5).check(protocol)


@pytest.mark.parametrize(
    "decoding",
    [{}, {"strategy": "sample"}, {"strategy": "sample", "temperature": 0.7}, {"top_k": 0, "top_p": 1.0}],
)
def test_plain_sampling_is_accepted(decoding):
    NgramModel().check(protocol_with("smoke", decoding=decoding))


@pytest.mark.parametrize(
    "decoding",
    [
        {"strategy": "greedy"},
        {"temperature": 1.5},
        {"temperature": 0},
        {"top_k": 40},
        {"top_p": 0.9},
        {"beam_width": 4},
    ],
)
def test_other_decoding_is_refused(decoding):
    model = NgramModel(order=2)
    with pytest.raises(ConfigError):
        model.check(protocol_with("smoke", decoding=decoding))


def test_save_and_load_restore_the_same_model(tmp_path):
    rng = np.random.default_rng(3)
    data = _markov_corpus(rng, 6, rows=30, length=10)
    model = _fit(data, vocab_size=6, order=3)
    model.save(tmp_path)
    restored = NgramModel(order=3)
    restored.load(tmp_path)
    assert np.array_equal(restored.nll(data), model.nll(data))
    assert np.array_equal(_sample(restored, 50, 12, seed=1), _sample(model, 50, 12, seed=1))
    with pytest.raises(ValueError, match="order 3"):
        NgramModel(order=2).load(tmp_path)
