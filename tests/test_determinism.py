"""Same configuration and seed, same numbers, whichever other cells run beside them."""

from __future__ import annotations

import pandas as pd

KEY = ["model", "mixer", "seed", "generation", "metric"]


def _values(df: pd.DataFrame) -> pd.Series:
    return df.set_index(KEY).value.sort_index()


def test_same_seed_same_numbers(run):
    a = run("smoke", ["ngram", "categorical"], ["replace", "keep-real"])
    b = run("smoke", ["ngram", "categorical"], ["replace", "keep-real"])
    pd.testing.assert_series_equal(_values(a), _values(b))


def test_cells_do_not_depend_on_the_rest_of_the_grid(run):
    grid = run("smoke", ["ngram"], ["replace", "accumulate"], seeds=2)
    alone = run("smoke", ["ngram"], ["accumulate"], seeds=2)
    pd.testing.assert_series_equal(_values(grid[grid.mixer == "accumulate"]), _values(alone))


def test_generation_zero_is_shared_by_all_mixers(run):
    df = run("smoke", ["ngram"], ["replace", "accumulate", "fresh-real"])
    g0 = df[df.generation == 0].pivot_table(index="metric", columns="mixer", values="value")
    assert (g0.nunique(axis=1) == 1).all()
    g2 = df[df.generation == 2].pivot_table(index="metric", columns="mixer", values="value")
    assert (g2.nunique(axis=1) > 1).any()


def test_different_seeds_differ(run):
    df = run("smoke", ["ngram"], ["replace"], seeds=2)
    last = df[(df.generation == 2) & (df.metric == "perplexity")].set_index("seed").value
    assert last[0] != last[1]
