"""Statistics over seeds: intervals, paired differences, rank bands and collapse summaries, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import ndtr, ndtri

from collapse_bench import stats
from collapse_bench.stats import Estimate


def test_student_t_interval_by_hand():
    # mean 2, s = 1, t(0.975, 2) = 4.302652729911275 (tables), half = 4.3027 / sqrt(3) = 2.484138
    e = stats.interval([1.0, 2.0, 3.0])
    assert e.method == "t" and e.n == 3
    assert e.mean == pytest.approx(2.0)
    assert e.low == pytest.approx(2.0 - 2.484138, abs=1e-6)
    assert e.high == pytest.approx(2.0 + 2.484138, abs=1e-6)


def test_one_seed_has_no_interval():
    e = stats.interval([5.0])
    assert (e.mean, e.low, e.high, e.method) == (5.0, None, None, "single")
    assert stats.fmt(e) == "5.000"
    assert "no interval" in stats.METHODS[e.method]


def test_bca_bootstrap_from_ten_seeds_matches_a_hand_bca():
    x = np.array([0.8, 0.9, 1.1, 1.0, 1.4, 0.7, 1.2, 0.95, 1.05, 2.0])
    e = stats.interval(x)
    assert e.method == "bca" and e.n == 10
    # BCa by hand (Efron 1987): bias correction z0 from the bootstrap distribution, acceleration from the jackknife
    rng = np.random.default_rng(1)
    boots = x[rng.integers(0, len(x), size=(40000, len(x)))].mean(axis=1)
    z0 = ndtri(np.mean(boots < x.mean()))
    jack = np.array([np.delete(x, i).mean() for i in range(len(x))])
    d = jack.mean() - jack
    a = (d**3).sum() / (6 * (d**2).sum() ** 1.5)
    q = [ndtr(z0 + (z0 + z) / (1 - a * (z0 + z))) for z in (ndtri(0.025), ndtri(0.975))]
    low, high = np.quantile(boots, q)
    width = high - low
    assert e.low == pytest.approx(low, abs=0.05 * width)
    assert e.high == pytest.approx(high, abs=0.05 * width)
    assert e.high - e.mean > e.mean - e.low  # the outlier skews the interval upward, as BCa should


def test_paired_difference_uses_common_seeds():
    # differences 0.5, 0.5, 1.5: mean 5/6, s = sqrt(1/3), half = 4.302653 * s / sqrt(3) = 1.434218
    d = stats.paired_difference({0: 1.0, 1: 2.0, 2: 4.0, 7: 9.0}, {0: 0.5, 1: 1.5, 2: 2.5})
    assert d.n == 3
    assert d.mean == pytest.approx(5 / 6)
    assert d.high - d.mean == pytest.approx(1.434218, abs=1e-6)
    assert stats.paired_difference({0: 1.0}, {1: 1.0}) is None


def test_rank_bands_share_ranks_when_intervals_overlap():
    a = Estimate(10.0, 9.0, 11.0, 3, "t")
    b = Estimate(10.5, 9.5, 11.5, 3, "t")
    c = Estimate(20.0, 19.0, 21.0, 3, "t")
    assert stats.rank_bands([a, b, c], higher_is_better=False) == [(1, 2), (1, 2), (3, 3)]
    assert stats.rank_bands([a, b, c], higher_is_better=True) == [(2, 3), (2, 3), (1, 1)]
    assert [stats.band_label(x) for x in [(1, 2), (3, 3)]] == ["1-2", "3"]


def test_collapse_summaries_by_hand():
    curve = [2.0, 3.0, 4.0, 8.0]
    assert stats.drift(curve) == pytest.approx(4.0)
    # (ln 1 + ln 1.5 + ln 2 + ln 4) / 4
    assert stats.area(curve) == pytest.approx((0 + 0.4054651 + 0.6931472 + 1.3862944) / 4)
    assert stats.generations_until(curve, 2.0, higher_is_better=False) == 2
    assert stats.generations_until([1.0, 0.8, 0.6, 0.4], 0.5, higher_is_better=True) == 3
    assert stats.generations_until([1.0, 0.9], 0.5, higher_is_better=True) == math.inf


def test_numbers_are_rounded_to_what_the_interval_supports():
    assert stats.fmt(Estimate(1.23456, 1.2, 1.27, 3, "t")) == "1.23 [1.20, 1.27]"  # half-width 0.035
    assert stats.fmt(Estimate(133.3396, 120.0, 146.0, 3, "t")) == "133 [120, 146]"  # half-width 13
    assert stats.fmt(Estimate(133.3396, 133.3396, 133.3396, 5, "t")) == "133.3"  # seeds agree: 4 digits


def test_a_standing_ranks_pairs_and_says_when_one_seed_has_no_interval():
    import pandas as pd

    from collapse_bench.boards import standing
    from collapse_bench.pages import page
    from collapse_bench.published import Published
    from collapse_bench.results import COLUMNS

    # perplexity chains g0..g2 per (mixer, seed); "keep-real" has a single seed
    chains = {
        ("replace", 0): [10, 20, 40],
        ("replace", 1): [12, 24, 36],
        ("accumulate", 0): [10, 11, 12],
        ("accumulate", 1): [12, 12, 13.2],
        ("keep-real", 0): [10, 12, 15],
    }
    rows = [
        ("r", "p", "1.0", "f" * 12, "m", mixer, seed, g, "perplexity", float(v), "lower")
        for (mixer, seed), curve in chains.items()
        for g, v in enumerate(curve)
    ]
    protocol = {"name": "p", "version": "1.0", "generations": 3, "samples": 8, "dataset": "d", "metrics": ["x"]}
    protocol["leaderboard"] = {"metric": "perplexity", "by": "drift", "thresholds": {"perplexity": 2.0}}
    s = standing(pd.DataFrame(rows, columns=COLUMNS), protocol, "f" * 12, {"perplexity": "lower"}, [], "perplexity")
    by = {e.mixer: e for e in s.entries}
    # drifts: replace 4, 3 (mean 3.5); accumulate 1.2, 1.1 (mean 1.15); keep-real 1.5 (one seed)
    assert by["replace"].ranking.mean == pytest.approx(3.5)
    assert by["accumulate"].ranking.mean == pytest.approx(1.15)
    assert by["keep-real"].ranking.method == "single" and not by["keep-real"].ranking.has_interval
    # paired: accumulate - replace per seed = -2.8, -1.9; keep-real pairs on seed 0 only: 1.5 - 4 = -2.5
    assert by["accumulate"].difference.mean == pytest.approx(-2.35)
    assert by["keep-real"].difference.mean == pytest.approx(-2.5) and by["keep-real"].difference.n == 1
    # replace's interval is 3.5 ± 12.706 * 0.5: it overlaps both others, which are points or narrow
    assert by["replace"].band == (1, 3)
    # area of replace seed 0: (0 + ln 2 + ln 4) / 3; generations until doubled: 1 (seed 0) and 1 (seed 1)
    assert by["replace"].values["perplexity"].until == 1
    assert by["accumulate"].values["perplexity"].until == math.inf
    text = page(Published("p", [], s), {})
    assert "one seed: no interval" in text and "95% Student t interval over seeds" in text
    assert "| 1-3 " in text and "> 2" in text
