"""Leaderboards rank entries by drift, show every seed's spread, and never pool different protocols."""

from __future__ import annotations

from collapse_bench import leaderboard
from collapse_bench.results import COLUMNS


def test_load_results_is_tidy(run):
    df = run("smoke", ["ngram"], ["replace", "accumulate"], seeds=2)
    assert list(df.columns) == COLUMNS
    assert len(df) == df[["run", "model", "mixer", "seed", "generation", "metric"]].drop_duplicates().shape[0]
    assert set(df.generation) == {0, 1, 2} and set(df.seed) == {0, 1}
    assert set(df.direction) == {"higher", "lower"}
    assert (df[df.metric == "perplexity"].direction == "lower").all()


def test_board_ranks_by_perplexity_drift(run, tmp_path):
    run("smoke", ["ngram"], ["replace", "accumulate"], seeds=2)
    (board,) = leaderboard.build([tmp_path])
    assert board.protocol == "smoke@1.0" and board.metric == "perplexity" and board.by == "drift"
    table = board.table
    assert list(table["mixer"]) == ["accumulate", "replace"]  # replace drifts more
    drift = [float(v.split(" ± ")[0]) for v in table["perplexity drift (g2/g0) ↓"]]
    assert drift == sorted(drift) and drift[0] > 1
    assert all(" ± " in v for v in table["perplexity g2"])  # two seeds: mean ± std
    text = leaderboard.to_markdown([board])
    assert "## smoke@1.0" in text and "| 1 " in text


def test_different_protocol_variants_get_separate_tables(run, tmp_path):
    run("smoke", ["ngram"], ["replace"])
    run("smoke", ["ngram"], ["replace"], generations=4)
    boards = leaderboard.build([tmp_path])
    assert len(boards) == 2
    assert {b.last_generation for b in boards} == {2, 3}
    assert len({b.fingerprint for b in boards}) == 2


def test_runs_with_more_seeds_pool_with_fewer(run, tmp_path):
    run("smoke", ["ngram"], ["replace"], seeds=1)
    run("smoke", ["ngram"], ["accumulate"], seeds=2)
    (board,) = leaderboard.build([tmp_path])
    assert sorted(board.table["mixer"]) == ["accumulate", "replace"]


def test_a_cell_run_twice_counts_once(run, tmp_path):
    run("smoke", ["ngram"], ["replace"], seeds=2)
    run("smoke", ["ngram"], ["replace"], seeds=2)
    (board,) = leaderboard.build([tmp_path])
    assert board.table["seeds"].tolist() == [2]


def test_infinite_and_undefined_values_are_explained_and_ranked_last(run, tmp_path):
    # categorical at alpha=0 gives unseen test tokens probability 0: perplexity inf at g0 and g2, drift inf/inf.
    run("smoke", ["ngram", "categorical"], ["replace"])
    (board,) = leaderboard.build([tmp_path])
    assert list(board.table["model"]) == ["ngram", "categorical"]
    assert board.table["perplexity g0"].tolist()[1] == "inf"
    assert board.table["perplexity drift (g2/g0) ↓"].tolist()[1] == "nan"
    text = leaderboard.to_markdown([board])
    assert f"- {leaderboard.INF_MEANS}" in text and f"- {leaderboard.NAN_MEANS}" in text
    assert "Ranked by perplexity drift (g2/g0) ↓: `nan` (undefined) ranks last." in text


def test_a_smoothed_categorical_has_finite_perplexity_and_no_note(run, tmp_path):
    run("smoke", ["categorical:alpha=1"], ["replace"])
    (board,) = leaderboard.build([tmp_path])
    assert float(board.table["perplexity g0"].iloc[0]) < 512  # below the vocabulary size: better than uniform
    assert not any("`inf`" in note for note in board.notes)


def test_disagreeing_rankings_are_named_with_the_tables_ranks():
    import numpy as np
    import pandas as pd

    index = pd.MultiIndex.from_tuples([("m", "a"), ("m", "b"), ("m", "c")], names=["model", "mixer"])
    mean = pd.DataFrame({"drift": [1.0, 2.0, 3.0], "cov": [0.1, 0.9, 0.5], "rep": [0.1, 0.2, np.inf]}, index=index)
    directions = {"cov": "higher", "rep": "lower"}
    # Table order a, b, c (ranks 1, 2, 3). By cov (higher is better): b 0.9, c 0.5, a 0.1 -> ranks 2, 3, 1.
    # By rep (lower is better): a, b, c -> the same order, not named.
    (line,) = leaderboard.disagreements(mean, index, directions, {"cov": "cov g2 ↑", "rep": "rep g2 ↓"})
    assert line.endswith("by cov g2 ↑: 2, 3, 1")
    assert leaderboard.disagreements(mean, index, directions, {"rep": "rep g2 ↓"}) == []
