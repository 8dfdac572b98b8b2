"""The harness reproduces what theory says must happen (Shumailov et al. 2024; Gerstgrasser et al. 2024)."""

from __future__ import annotations

import itertools

import numpy as np

from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.contexts import FitContext, SampleContext


def _curve(df, mixer: str, metric: str):
    rows = df[(df.mixer == mixer) & (df.metric == metric)]
    return rows.pivot_table(index="seed", columns="generation", values="value")


def test_gaussian_variance_shrinks_as_one_minus_one_over_m_to_the_t(run):
    m, seeds, generations = 20, 400, 21
    df = run("theory", ["gaussian"], ["replace"], seeds=seeds, generations=generations, samples=m)
    ratio = _curve(df, "replace", "variance.ratio")
    assert ratio.shape == (seeds, generations)
    for t in (5, 10, 20):
        expected = (1 - 1 / m) ** t
        # Exact variance of the ratio: E[X^2]^t - E[X]^(2t), with X = chi2_{M-1} / M per generation.
        ex2 = ((m - 1) / m) ** 2 + 2 * (m - 1) / m**2
        se = np.sqrt((ex2**t - expected**2) / seeds)
        assert abs(ratio[t].mean() - expected) < 4.5 * se, (t, ratio[t].mean(), expected, se)
    for t in (10, 20):  # and it really shrinks: far below 1
        assert ratio[t].mean() < 1 - 4.5 * np.sqrt(ratio[t].var() / seeds)


def test_gaussian_collapses_to_zero_variance_under_replace_but_not_accumulate(run):
    df = run("theory", ["gaussian"], ["replace", "accumulate"], seeds=20, generations=100)
    replace = _curve(df, "replace", "variance.ratio")[99]
    accumulate = _curve(df, "accumulate", "variance.ratio")[99]
    assert replace.median() < 0.05
    assert accumulate.min() > 0.25
    w2 = _curve(df, "replace", "variance.w2")
    assert (w2[99] > w2[0]).all()


def test_categorical_loses_rare_tokens_and_never_regains_them(run):
    df = run("smoke", ["categorical"], ["replace"], ["tail"], generations=8)
    coverage = _curve(df, "replace", "tail.type_coverage").iloc[0].to_numpy()
    assert (np.diff(coverage) <= 0).all(), coverage
    assert coverage[-1] < coverage[0]


def test_categorical_support_only_shrinks_at_the_model_level():
    rng = np.random.default_rng(0)
    vocab = 200
    probs = 1.0 / np.arange(1, vocab + 1)
    data = rng.choice(vocab, size=(50, 20), p=probs / probs.sum())
    supports = []
    for g in range(15):
        model = CategoricalModel()
        model.fit(data, FitContext(seed=0, generation=g, rng=rng, training={}, vocab_size=vocab))
        supports.append(set(np.flatnonzero(model.probs)))
        data = model.sample(50, SampleContext(rng=rng, length=20))
    for before, after in itertools.pairwise(supports):
        assert after <= before
    assert len(supports[-1]) < len(supports[0])


def test_ngram_perplexity_is_finite_and_below_unigram(run):
    df = run("smoke", ["ngram", "ngram:order=1", "categorical:alpha=1"], ["replace"], ["perplexity"], generations=2)
    g0 = df[(df.generation == 0) & (df.metric == "perplexity")].set_index("model").value
    assert np.isfinite(g0).all()
    assert g0["ngram"] < g0["ngram:order=1"]
    assert g0["ngram"] < g0["categorical:alpha=1.0"]


def test_replace_raises_perplexity_and_drops_tail_while_accumulate_holds(run):
    df = run("smoke", ["ngram"], ["replace", "accumulate"], generations=5)
    ppl = df[df.metric == "perplexity"].pivot_table(index="mixer", columns="generation", values="value")
    assert ppl.loc["replace", 4] > ppl.loc["replace", 0]
    assert ppl.loc["replace", 4] > ppl.loc["accumulate", 4]
    tail = df[df.metric == "tail.type_coverage"].pivot_table(index="mixer", columns="generation", values="value")
    assert tail.loc["replace", 4] < tail.loc["accumulate", 4]
