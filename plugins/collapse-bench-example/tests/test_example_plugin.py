"""The installed package, used the way users do: found through its entry point by the collapse-bench CLI.

The package is installed (not imported from the source tree) into a new virtual environment that
also sees this interpreter's packages (collapse-bench, numpy, ...), so that what is tested is the
packaging: the entry point, the distribution name and version, the hooks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from collapse_bench import load_results

PACKAGE = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def plugin(collapse_bench_install):
    """This package, installed from its source into a fresh environment (collapse-bench's own fixture)."""
    return collapse_bench_install(PACKAGE)


def test_the_components_are_listed_with_the_distribution_as_origin(plugin, tmp_path):
    listing = plugin.cli("list", cache=tmp_path)
    for name in ("bigram-mle", "keep-last", "distinct-tokens", "type-token-ratio"):
        (line,) = [row for row in listing.splitlines() if row.startswith(f"{name} ")]
        assert line.rstrip().endswith("collapse-bench-example 0.1.0")


def test_a_smoke_run_uses_all_four_and_repeats_exactly(plugin, tmp_path):
    select = "select:verifier=distinct-tokens,keep=0.5"
    args = ["run", "--protocol", "smoke", "--model", "bigram-mle", "--mixer", "keep-last", "--mixer", "replace"]
    args += ["--mixer", select]
    args += ["--metric", "type-token-ratio", "--metric", "unigram-divergence", "--out", str(tmp_path), "--quiet"]
    scores = []
    for attempt in ("first", "second"):  # separate caches: the second run computes everything again
        plugin.cli(*args, "--run-id", attempt, cache=tmp_path / f"cache-{attempt}")
        scores.append(load_results(tmp_path / attempt).set_index(["mixer", "generation", "metric"]).value.sort_index())
    first, second = scores
    assert first.equals(second)
    ratio = first.xs("type-token-ratio", level="metric")
    mixers = ("keep-last", "replace", "select:keep=0.5,verifier=distinct-tokens")
    assert sorted(ratio.index) == [(mixer, g) for mixer in mixers for g in range(3)]
    assert ratio.between(0, 1).all()

    records = [json.loads(line) for line in (tmp_path / "first" / "records.jsonl").read_text().splitlines()]
    sizes = {r["generation"]: r["train_rows"] for r in records if r["mixer"] == "keep-last"}
    assert sizes == {0: 256, 1: 256, 2: 512}  # real data, then S_0, then S_0 + S_1
    manifest = json.loads((tmp_path / "first" / "manifest.json").read_text())
    mine = {p["spec"].split(":")[0] for p in manifest["plugins"] if p["distribution"] == "collapse-bench-example"}
    assert mine == {"bigram-mle", "keep-last", "distinct-tokens", "type-token-ratio"}
