"""Each mixer builds the training set its paper describes."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_bench import RealData
from collapse_bench.builtin.mixers import Accumulate, AccumulateSubsample, FreshReal, KeepReal, Replace
from collapse_bench.contexts import MixContext
from collapse_bench.errors import ConfigError


def _ctx(generation: int = 2, n: int = 100) -> MixContext:
    # Real rows hold values 0..999 (train) and 1000..1999 (pool); synthetic rows are negative.
    real = RealData(
        modality="vector",
        train=np.arange(1000, dtype=float)[:, None],
        test=np.zeros((10, 1)),
        pool=np.arange(1000, 2000, dtype=float)[:, None],
    )
    history = [-(np.arange(n, dtype=float)[:, None] + 1 + 1000 * g) for g in range(generation)]
    return MixContext(real, history, generation, np.random.default_rng(0), sample_size=n, generations=5)


def test_replace_is_the_last_synthetic_set():
    ctx = _ctx()
    assert np.array_equal(Replace().mix(ctx), ctx.history[-1])


def test_keep_real_mixes_the_fraction_at_constant_size():
    out = KeepReal(fraction=0.25).mix(_ctx())
    assert len(out) == 100
    real = out[out >= 0]
    assert len(real) == 25 and np.all(real < 1000)
    assert np.all(out[out < 0] <= -1001)  # synthetic rows come from the last generation
    assert len(np.unique(out)) == 100


def test_accumulate_keeps_everything():
    ctx = _ctx(generation=3)
    out = Accumulate().mix(ctx)
    assert len(out) == 1000 + 3 * 100


def test_accumulate_subsample_has_fixed_size_and_draws_from_all():
    ctx = _ctx(generation=3)
    out = AccumulateSubsample().mix(ctx)
    assert len(out) == 100 and len(np.unique(out)) == 100
    assert AccumulateSubsample(size=250).mix(ctx).shape == (250, 1)


def test_fresh_real_uses_new_pool_rows_each_generation():
    seen = []
    for g in (1, 2, 3):
        out = FreshReal(fraction=0.1).mix(_ctx(generation=g))
        fresh = out[out >= 0]
        assert len(out) == 100 and len(fresh) == 10
        assert np.all(fresh >= 1000)  # from the pool, never from D_0
        seen.append(set(fresh.ravel()))
    assert not (seen[0] & seen[1]) and not (seen[1] & seen[2])


@pytest.mark.parametrize("cls", [KeepReal, FreshReal])
def test_fraction_must_be_a_fraction(cls):
    with pytest.raises(ConfigError):
        cls(fraction=1.5)
