"""The theory models sample exactly the tempered distributions they claim to."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.models.gaussian import GaussianModel
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError
from collapse_bench.testing import protocol_with


def _fit(model, data, vocab_size=None):
    model.fit(data, FitContext(seed=0, generation=0, rng=np.random.default_rng(0), training={}, vocab_size=vocab_size))
    return model


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_categorical_samples_probs_to_the_power_one_over_t(temperature):
    model = _fit(CategoricalModel(), np.array([[0, 0, 0, 0, 0, 0, 1, 1, 2, 2]]), vocab_size=4)
    draws = model.sample(
        20_000, SampleContext(np.random.default_rng(1), length=10, decoding=Decoding(temperature=temperature))
    )
    expected = np.array([0.6, 0.2, 0.2, 0.0]) ** (1 / temperature)
    expected /= expected.sum()
    assert np.allclose(np.bincount(draws.ravel(), minlength=4) / draws.size, expected, atol=0.005)


def test_categorical_nll_is_infinite_for_unseen_tokens_unless_smoothed():
    data = np.array([[0, 1, 1]])
    assert np.isinf(_fit(CategoricalModel(), data, vocab_size=3).nll(np.array([[2]]))).all()
    assert np.isfinite(_fit(CategoricalModel(alpha=1.0), data, vocab_size=3).nll(np.array([[2]]))).all()


@pytest.mark.parametrize("temperature", [1.0, 0.25])
def test_gaussian_samples_with_covariance_scaled_by_t(temperature):
    rng = np.random.default_rng(0)
    model = _fit(GaussianModel(), rng.normal([1.0, -2.0], [2.0, 0.5], size=(5000, 2)))
    mean, cov = model.moments()
    draws = model.sample(50_000, SampleContext(np.random.default_rng(1), decoding=Decoding(temperature=temperature)))
    assert np.allclose(draws.mean(axis=0), mean, atol=0.03)
    assert np.allclose(np.cov(draws, rowvar=False), temperature * cov, rtol=0.03, atol=0.01)


def test_gaussian_nll_is_the_normal_density():
    model = _fit(GaussianModel(), np.array([[-1.0], [1.0]]))  # mean 0, MLE variance 1
    assert np.allclose(model.nll(np.array([[0.0], [2.0]])), 0.5 * np.log(2 * np.pi) + np.array([0.0, 2.0]))


@pytest.mark.parametrize("model", [CategoricalModel(), GaussianModel()])
@pytest.mark.parametrize("decoding", [{"top_k": 40}, {"strategy": "beam"}, {"temperature": 0}])
def test_unimplemented_decoding_is_refused(model, decoding):
    with pytest.raises(ConfigError):
        model.check(protocol_with("smoke", decoding=decoding))


def test_categorical_additive_smoothing_by_hand():
    import math

    import numpy as np

    from collapse_bench.builtin.models.categorical import CategoricalModel
    from collapse_bench.contexts import FitContext

    data = np.array([[0, 0, 1]], dtype=np.int32)
    ctx = FitContext(seed=0, generation=0, rng=np.random.default_rng(0), training={}, vocab_size=4)
    smoothed = CategoricalModel(alpha=0.5)
    smoothed.fit(data, ctx)
    # counts (2, 1, 0, 0) + 0.5 each = (2.5, 1.5, 0.5, 0.5) over 3 + 4 * 0.5 = 5
    expected = [-math.log(2.5 / 5), -math.log(1.5 / 5), -math.log(0.5 / 5)]
    assert np.allclose(smoothed.nll(np.array([[0, 1, 3]])), [expected])
    ml = CategoricalModel()
    ml.fit(data, ctx)
    assert ml.nll(np.array([[2]]))[0, 0] == math.inf  # alpha = 0: an unseen token is impossible
