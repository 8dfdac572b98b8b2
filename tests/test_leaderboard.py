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
