"""Local leaderboards: the published standing (intervals, paired differences, rank bands) from run directories.

Every interval is checked against scipy.stats computed here from the run's own records.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as st

from collapse_bench import leaderboard
from collapse_bench.results import COLUMNS


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% Student t interval, by hand from scipy's t quantile."""
    half = st.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def records(root: Path) -> dict[tuple[str, str, int, int], dict[str, float]]:
    out = {}
    for path in root.rglob("records.jsonl"):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            out[(r["model"], r["mixer"], r["seed"], r["generation"])] = r["scores"]
    return out


def cell(text: str, row: str, column: str) -> str:
    """The markdown table cell of the row whose mixer is ``row`` under the header naming ``column``."""
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for line in lines[1:]:  # the separator line starts "|:"
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[2] == row:
            return cells[header.index(column)]
    raise AssertionError(row)


def shown(text: str) -> list[float]:
    """``"1.23 [1.20, 1.27]"`` -> [1.23, 1.20, 1.27]."""
    return [float(x) for x in text.replace("[", "").replace("]", "").replace(",", "").split()]


def test_load_results_is_tidy(run):
    df = run("smoke", ["ngram"], ["replace", "accumulate"], seeds=2)
    assert list(df.columns) == COLUMNS
    assert len(df) == df[["run", "model", "mixer", "seed", "generation", "metric"]].drop_duplicates().shape[0]
    assert set(df.generation) == {0, 1, 2} and set(df.seed) == {0, 1}
    assert set(df.direction) == {"higher", "lower"}
    assert (df[df.metric == "perplexity"].direction == "lower").all()


def test_board_shows_t_intervals_paired_differences_and_bands_computed_by_hand(run, tmp_path):
    run("smoke", ["ngram"], ["replace", "accumulate"], seeds=3)
    (board,) = leaderboard.build([tmp_path])
    s = board.standing
    assert board.label == "smoke@1.0" and s.ranking == "perplexity" and s.by == "drift"
    rec = records(tmp_path)
    ppl = {m: np.array([[rec[("ngram", m, seed, g)]["perplexity"] for g in range(3)] for seed in range(3)])
           for m in ("replace", "accumulate")}  # fmt: skip
    drift = {m: c[:, 2] / c[:, 0] for m, c in ppl.items()}
    by = {e.mixer: e for e in s.entries}
    for mixer, d in drift.items():
        mean, low, high = t_interval(d)
        e = by[mixer].ranking
        assert (e.method, e.n) == ("t", 3)
        assert (e.mean, e.low, e.high) == pytest.approx((mean, low, high), rel=1e-12)
    diff = drift["accumulate"] - drift["replace"]  # paired by seed
    assert (by["accumulate"].difference.low, by["accumulate"].difference.high) == pytest.approx(
        t_interval(diff)[1:], rel=1e-12
    )
    assert by["replace"].difference is None
    last = {m: t_interval(c[:, 2]) for m, c in ppl.items()}
    assert (by["replace"].values["perplexity"].last.low, by["replace"].values["perplexity"].last.high) == (
        pytest.approx(last["replace"][1:], rel=1e-12)
    )
    # rank bands: two entries share "1-2" exactly when their drift intervals overlap
    (_, alo, ahi), (_, rlo, rhi) = t_interval(drift["accumulate"]), t_interval(drift["replace"])
    overlap = not (ahi < rlo or rhi < alo)
    order = sorted(drift, key=lambda m: drift[m].mean())
    assert [e.mixer for e in s.entries] == order
    assert [e.band for e in s.entries] == ([(1, 2), (1, 2)] if overlap else [(1, 1), (2, 2)])
    # the markdown shows those numbers, rounded to what the interval supports
    text = leaderboard.to_markdown([board])
    assert "## smoke@1.0" in text and "95% Student t interval over seeds" in text and "± " not in text
    for mixer, d in drift.items():
        mean, low, high = t_interval(d)
        printed = shown(cell(text, mixer, "perplexity drift g2/g0 ↓"))
        step = 10.0 ** -len(cell(text, mixer, "perplexity drift g2/g0 ↓").split()[0].partition(".")[2])
        assert printed == pytest.approx([mean, low, high], abs=step / 2 + 1e-12)
    assert "### perplexity ↓" in text and "area (mean ln ratio)" in text  # the published detail tables


def test_one_seed_shows_no_interval_and_says_so(run, tmp_path):
    run("smoke", ["ngram"], ["replace", "accumulate"], seeds=1)
    (board,) = leaderboard.build([tmp_path])
    text = leaderboard.to_markdown([board])
    assert "one seed: no interval" in text
    rec = records(tmp_path)
    drift = rec[("ngram", "replace", 0, 2)]["perplexity"] / rec[("ngram", "replace", 0, 0)]["perplexity"]
    assert "[" not in cell(text, "replace", "perplexity drift g2/g0 ↓")
    assert float(cell(text, "replace", "perplexity drift g2/g0 ↓")) == pytest.approx(drift, rel=1e-3)


def test_different_protocol_variants_get_separate_tables(run, tmp_path):
    run("smoke", ["ngram"], ["replace"])
    run("smoke", ["ngram"], ["replace"], generations=4)
    boards = leaderboard.build([tmp_path])
    assert len(boards) == 2
    assert {b.standing.last_generation for b in boards} == {2, 3}
    assert len({b.fingerprint for b in boards}) == 2


def test_runs_with_more_seeds_pool_with_fewer(run, tmp_path):
    run("smoke", ["ngram"], ["replace"], seeds=1)
    run("smoke", ["ngram"], ["accumulate"], seeds=2)
    (board,) = leaderboard.build([tmp_path])
    assert sorted((e.mixer, len(e.seeds)) for e in board.standing.entries) == [("accumulate", 2), ("replace", 1)]


def test_a_cell_run_twice_counts_once(run, tmp_path):
    run("smoke", ["ngram"], ["replace"], seeds=2)
    run("smoke", ["ngram"], ["replace"], seeds=2)
    (board,) = leaderboard.build([tmp_path])
    assert [e.seeds for e in board.standing.entries] == [[0, 1]]


def test_infinite_and_undefined_values_are_explained_and_left_unranked(run, tmp_path):
    # categorical at alpha=0 gives unseen test tokens probability 0: perplexity inf at g0 and g2, drift inf/inf.
    run("smoke", ["ngram", "categorical"], ["replace"])
    (board,) = leaderboard.build([tmp_path])
    assert [(e.model, e.band) for e in board.standing.entries] == [("ngram", (1, 1)), ("categorical", (0, 0))]
    text = leaderboard.to_markdown([board])
    row = next(line for line in text.splitlines() if line.startswith("| —") and "categorical" in line)
    assert "| nan " in row  # drift inf / inf
    assert f"- {leaderboard.INF_MEANS}" in text and f"- {leaderboard.NAN_MEANS}" in text
    assert "- Not ranked (—): categorical / replace: their perplexity drift g2/g0 is not a finite number." in text


def test_a_smoothed_categorical_has_finite_perplexity_and_no_note(run, tmp_path):
    run("smoke", ["categorical:alpha=1"], ["replace"])
    (board,) = leaderboard.build([tmp_path])
    (e,) = board.standing.entries
    assert e.curves["perplexity"][0].mean < 512  # below the vocabulary size: better than uniform
    assert leaderboard.INF_MEANS not in board.notes  # no value is infinite: nothing gets probability 0


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
    # with rank bands as the table's ranks: a and b share 1-2
    bands = dict(zip(index, ["1-2", "1-2", "3"], strict=True))
    (line,) = leaderboard.disagreements(mean, index, directions, {"cov": "cov g2 ↑"}, bands)
    assert line.endswith("by cov g2 ↑: 1-2, 3, 1-2")
