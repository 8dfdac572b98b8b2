"""Every view (console summary, `show`, leaderboard, figures) shows what metrics declare, plugin metrics too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_distribution
from PIL import Image

from collapse_bench import figures, leaderboard, views

PLUGIN = '''
import numpy as np
from collapse_bench import HIGHER, LOWER, Metric, hookimpl


class TopShare(Metric):
    """Share of synthetic tokens that are the most frequent type, and the number of types used."""

    name = "top-share"
    modalities = frozenset({"text"})
    outputs = {"share": LOWER, "types": HIGHER}
    headline = ("share",)

    def compute(self, ctx):
        counts = np.bincount(ctx.samples.ravel())
        return {"share": float(counts.max() / counts.sum()), "types": float(np.count_nonzero(counts))}


class Boasting(Metric):
    """Declares a headline value it never returns."""

    name = "boasting"
    modalities = frozenset({"text"})
    outputs = {"a": LOWER}
    headline = ("b",)

    def compute(self, ctx):
        return {"a": 0.0}


@hookimpl
def register_metrics(register):
    register(TopShare)
    register(Boasting)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict[str, str]:
    return make_distribution(tmp_path_factory.mktemp("site"), "top-share-plugin", PLUGIN)


def cb(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **env}, timeout=600,
    )  # fmt: skip


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_a_plugin_metric_appears_in_every_view(tmp_path, site):
    args = ("run", "-p", "smoke", "--mixer", "replace", "--metric", "top-share", "--metric", "perplexity", "-q")
    assert (res := cb(*args, cwd=tmp_path, env=site)).returncode == 0, res.stderr
    (run,) = (tmp_path / "runs").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["headline"] == [
        ["top-share", ["top-share.share"]],
        ["perplexity", ["perplexity", "perplexity.bits_per_char"]],
    ]  # in the order of --metric, kept through the manifest's sorted keys
    share = {r["generation"]: r["scores"]["top-share.share"] for r in records(run)}
    # show: one table per metric's first headline value; the plugin's with its direction and numbers
    shown = cb("show", str(run), cwd=tmp_path, env=site).stdout
    titles = [line for line in shown.splitlines() if line.endswith("is better)")]
    assert titles == ["top-share.share (lower is better)", "perplexity (lower is better)"]  # in --metric order
    assert "top-share.types" not in shown
    assert "perplexity.bits_per_char (" not in shown  # only each metric's first headline value
    table = shown.split("top-share.share (lower is better)")[1].split("\n\n")[0]
    assert [f"{share[g]:.4g}" for g in range(3)] == table.splitlines()[-1].split()[-3:]
    # leaderboard: ranked by the protocol's perplexity, the plugin's headline value as a column
    assert (res := cb("leaderboard", "runs", "--out", "lb/smoke.md", cwd=tmp_path, env=site)).returncode == 0
    board = (tmp_path / "lb" / "smoke.md").read_text()
    header = next(line for line in board.splitlines() if line.startswith("| rank"))
    assert "top-share.share g2 ↓" in header and "perplexity.bits_per_char g2 ↓" in header
    assert "top-share.types" not in board and "### top-share.share ↓" in board  # a detail table of its own
    row = next(line for line in board.splitlines() if "| replace" in line)
    column = [c.strip() for c in header.split("|")].index("top-share.share g2 ↓")
    assert float(row.split("|")[column]) == pytest.approx(share[2], rel=1e-3)  # one seed: 4 significant digits
    # plots: one panel per shown value, the plugin's among them; the PNG carries the hash of what it draws
    (png,) = (tmp_path / "lb").glob("*.png")
    (lb,) = leaderboard.build([tmp_path / "runs"])
    drawn = figures.values_data(lb.standing)
    assert list(drawn) == ["perplexity", "top-share.share", "perplexity.bits_per_char"]  # ranking value first
    assert Image.open(png).info["Description"] == figures.data_hash(drawn)


def test_a_run_of_plugin_metrics_only_is_ranked_by_their_first_headline_value(tmp_path, site):
    args = ("run", "-p", "smoke", "--mixer", "replace", "--mixer", "accumulate", "--metric", "top-share", "-q")
    assert (res := cb(*args, cwd=tmp_path, env=site)).returncode == 0, res.stderr
    board = cb("leaderboard", "runs", cwd=tmp_path, env=site).stdout
    assert "Ranked by top-share.share drift" in board
    (run,) = (tmp_path / "runs").iterdir()
    share = {(r["mixer"], r["generation"]): r["scores"]["top-share.share"] for r in records(run)}
    drift = {mixer: share[mixer, 2] / share[mixer, 0] for mixer in ("replace", "accumulate")}
    ranked = [line.split("|")[3].strip() for line in board.splitlines() if line.startswith(("| 1 ", "| 2 "))]
    assert ranked == sorted(drift, key=drift.get)  # lower is better: smallest drift first


def test_a_headline_value_the_metric_does_not_return_is_one_line(tmp_path, site):
    res = cb("run", "-p", "smoke", "--metric", "boasting", "-q", cwd=tmp_path, env=site)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("collapse-bench: error:") and "fix: name only declared outputs" in res.stderr
    assert "metric 'boasting'" in res.stderr and "['b']" in res.stderr and "headline" in res.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_the_protocol_chooses_ranking_value_and_columns(tmp_path):
    smoke = (Path(views.__file__).parent / "protocols" / "smoke.toml").read_text()
    custom = smoke.replace(
        'metric = "perplexity"\nby = "drift"',
        'metric = "tail"\nby = "last"\ncolumns = ["repetition", "unigram-divergence.kl"]',
    )
    (tmp_path / "custom.toml").write_text(custom.replace('name = "smoke"', 'name = "custom"'))
    assert (res := cb("run", "-p", "custom.toml", "--mixer", "replace", "-q", cwd=tmp_path, env={})).returncode == 0, (
        res.stderr
    )
    board = cb("leaderboard", "runs", cwd=tmp_path, env={}).stdout
    header = next(line for line in board.splitlines() if line.startswith("| rank"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    # `tail` ranks by its first headline value; `repetition` stands for its headline values
    assert cells[4:] == ["tail.type_coverage g2 ↑", "Δ vs replace", "repetition.seq_rep_4 g2 ↓",
                         "repetition.distinct_4 g2 ↑"]  # fmt: skip
    details = [line for line in board.splitlines() if line.startswith("### ")]
    assert details == ["### tail.type_coverage ↑", "### repetition.seq_rep_4 ↓", "### repetition.distinct_4 ↑",
                       "### unigram-divergence.kl ↓"]  # fmt: skip
    (run,) = (tmp_path / "runs").iterdir()
    shown = cb("show", str(run), cwd=tmp_path, env={}).stdout
    titles = [line for line in shown.splitlines() if line.endswith("is better)")]
    assert titles == ["repetition.seq_rep_4 (lower is better)", "repetition.distinct_4 (higher is better)",
                      "unigram-divergence.kl (lower is better)"]  # fmt: skip
