"""The installed package, used the way users do: a gpt-tiny smoke run scored offline through its entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed: pip install 'lm-eval<0.5'")

from collapse_bench import load_results

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plugin(collapse_bench_install):
    """This package, installed from its source into a fresh environment (collapse-bench's own fixture)."""
    return collapse_bench_install(PACKAGE)


def test_the_metric_is_listed_with_the_distribution_as_origin(plugin, tmp_path):
    (line,) = [
        row for row in plugin.cli("list", "metric", cache=tmp_path).splitlines() if row.startswith("downstream ")
    ]
    assert line.rstrip().endswith("collapse-bench-lmeval 0.1.0")


def test_gpt_tiny_beats_chance_at_generation_0_offline(plugin, tmp_path):
    args = ["run", "--protocol", "smoke", "--model", "gpt-tiny", "--generations", "2", "--mixer", "replace"]
    args += ["--metric", "downstream:questions=400", "--out", str(tmp_path), "--run-id", "r", "--quiet"]
    plugin.cli(*args, cache=tmp_path / "cache")
    scores = load_results(tmp_path / "r").set_index(["generation", "metric"]).value
    acc, stderr = scores[0, "downstream.next-word.acc"], scores[0, "downstream.next-word.acc_stderr"]
    # four choices: chance is 0.25; generation 0 must be above it by more than its standard error
    assert acc - stderr > 0.25, (acc, stderr)
    assert sorted(scores.index) == [(g, f"downstream.next-word.{v}") for g in (0, 1) for v in ("acc", "acc_stderr")]
