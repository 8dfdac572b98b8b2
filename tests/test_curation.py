"""Curation: verifiers, over-generation, select and augment, and the regression and selection theory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from collapse_bench.builtin.mixers import Select
from collapse_bench.contexts import MixContext
from collapse_bench.data import RealData, prepare
from collapse_bench.errors import ConfigError
from collapse_bench.plan import make_plan
from collapse_bench.plugins import Registry, create_plugin_manager, get_registry


def _curve(df, mixer: str, metric: str):
    rows = df[(df.mixer == mixer) & (df.metric == metric)]
    return rows.pivot_table(index="seed", columns="generation", values="value")


def _real(protocol_name: str) -> RealData:
    protocol = get_registry().protocol(protocol_name)
    dataset = get_registry().component("dataset", protocol.dataset.name)(**protocol.dataset.params)
    return prepare(dataset, protocol)


def test_regression_error_grows_by_sigma2_tr_xtx_inv_per_generation_under_replace_and_stays_bounded_under_accumulate(
    run,
):
    seeds, generations = 40, 11
    df = run("gerstgrasser2024", seeds=seeds, generations=generations)
    x = _real("gerstgrasser2024").train[:, :-1]
    per_generation = float(np.trace(np.linalg.inv(x.T @ x)))  # sigma = 1
    replace = _curve(df, "replace", "regression.error").to_numpy()
    t = np.arange(generations)
    # Generation 0 (least squares on the real rows) is shared; after it each refit adds sigma^2 tr((X^T X)^-1).
    slopes = (replace - replace[:, :1]) @ t / (t @ t)  # least-squares slope through the origin, one per seed
    se = slopes.std(ddof=1) / np.sqrt(seeds)
    assert abs(slopes.mean() - per_generation) < 3 * se, (slopes.mean(), per_generation, se)
    assert slopes.mean() > 10 * se  # it really grows
    # Accumulate: w_t = w_0 + sum_k e_k / (k + 1), so E[err_t - err_0] = c * sum_{k=2}^{t+1} 1 / k^2 < (pi^2/6 - 1) c.
    accumulate = _curve(df, "accumulate", "regression.error").to_numpy()
    gain = accumulate[:, -1] - accumulate[:, 0]
    expected = per_generation * sum(1 / k**2 for k in range(2, generations + 1))
    assert abs(gain.mean() - expected) < 3 * gain.std(ddof=1) / np.sqrt(seeds), (gain.mean(), expected)
    # The unconditional bound: E[err_t] = err_0's expectation c plus that gain, below pi^2/6 x c.
    assert per_generation + gain.mean() < np.pi**2 / 6 * per_generation
    assert replace[:, -1].mean() > 3 * accumulate[:, -1].mean()


def test_selection_toward_a_biased_target_collapses_variance_faster(run):
    df = run("qiao2025-gaussian", seeds=3, generations=16)  # the four settings, shrunk from 100 refits to 15
    replace, accumulate = (_curve(df, m, "variance.ratio")[15] for m in ("replace", "accumulate"))
    replace_select = _curve(df, "select:verifier=target-distance", "variance.ratio")
    accumulate_select = _curve(df, "select:pool=accumulate,verifier=target-distance", "variance.ratio")
    assert (replace_select[15] < replace).all() and replace_select[15].max() < 0.05
    assert (accumulate_select[15] < accumulate).all()
    assert abs(accumulate.mean() - 1) < 0.05, accumulate.mean()
    # Keeping the 10% of candidates nearest a target under 0.3 Sigma* shrinks the variance from the first refit.
    assert (replace_select[1] < 0.85).all() and (replace_select[2] < replace_select[1]).all()


def test_select_with_keep_1_is_the_plain_pool_mixer_bit_for_bit(run):
    mixers = [
        "replace",
        "accumulate",
        "select:verifier=model-likelihood,keep=1,pool=replace",
        "select:verifier=base-likelihood,keep=1,pool=accumulate",
    ]
    df = run("theory", mixers=mixers, seeds=2, generations=5)
    pairs = (("replace", "select:keep=1.0"), ("accumulate", "select:keep=1.0,pool=accumulate,verifier=base-likelihood"))
    for plain, selected in pairs:
        for metric in ("variance.ratio", "variance.w2"):
            a, b = _curve(df, plain, metric).to_numpy(), _curve(df, selected, metric).to_numpy()
            assert np.array_equal(a, b), (plain, selected, metric)


def test_select_keeps_the_top_scored_candidates_in_drawn_order():
    history = [np.arange(10.0).reshape(5, 2), np.arange(10.0, 20.0).reshape(5, 2)]
    scores = {"v": [np.array([0.0, 5, 1, 5, 3]), np.array([9.0, 0, 0, 8, -np.inf])]}
    ctx = MixContext(None, history, generation=2, rng=None, sample_size=2, generations=3, scores=scores)
    assert Select(verifier="v", keep=0.4).mix(ctx).tolist() == [[10, 11], [16, 17]]
    real = RealData("vector", train=np.full((1, 2), -1.0), test=np.empty((0, 2)), pool=np.empty((0, 2)))
    ctx.real = real
    out = Select(verifier="v", keep=0.4, pool="accumulate").mix(ctx).tolist()
    assert out == [[-1, -1], [2, 3], [6, 7], [10, 11], [16, 17]]  # ties keep the earlier row
    assert Select(keep=0.1).candidates(100) == 1000 and Select(keep=0.3).candidates(100) == 334


def test_over_generation_draws_generation_0_candidates_once_and_keeps_its_model_shared(run, tmp_path):
    from collapse_bench.cache import Cache

    mixers = ["replace", "select:verifier=model-likelihood,keep=0.5", "select:verifier=base-likelihood,keep=0.5"]
    df = run("theory", mixers=mixers, seeds=1, generations=3, cache=tmp_path / "cache")
    g0 = df[df.generation == 0].pivot_table(index="mixer", columns="metric", values="value")
    assert (g0.nunique() == 1).all()  # one generation-0 model for every mixer
    cache = Cache(tmp_path / "cache")
    drawn = sorted((tmp_path / "cache").glob("steps/*/*/candidates/*.npy"))
    assert [p.name.partition("-")[0] for p in drawn] == ["40"]  # 2 x 20 candidates from M_0, once for both mixers
    steps = cache.entries()
    assert len(steps) == 1 + 3 * 2  # generation 0, then two steps per mixer
    assert sorted(len(np.load(p / "samples.npy")) for p in steps) == [20, 20, 20, 40, 40, 40, 40]


def test_edited_candidates_are_drawn_again_not_reused(tmp_path):
    from collapse_bench.cache import Cache

    logged: list[str] = []
    cache = Cache(tmp_path, log=logged.append)
    rows = np.arange(12.0).reshape(6, 2)
    cache.store_candidates("ab" * 32, 6, rows)
    assert np.array_equal(cache.load_candidates("ab" * 32, 6), rows)
    (stored,) = (tmp_path / "steps").glob("*/*/candidates/6-*.npy")
    edited = np.load(stored)
    edited[0, 0] = 99.0
    np.save(stored, edited)
    assert cache.load_candidates("ab" * 32, 6) is None  # not the edited rows
    assert not stored.exists() and "does not match the hash in its name" in logged[0]


def test_verifier_scores_of_earlier_steps_are_stored_outside_the_step_lock(tmp_path):
    """Every key on one lock stripe: storing the parent's scores under the step's lock would deadlock.

    (filelock refuses it within one thread, so the cell would fail; between processes it would hang.)
    """
    import threading

    from collapse_bench.cache import Cache
    from collapse_bench.engine.driver import run
    from collapse_bench.plan import RunConfig

    class OneStripe(Cache):
        def lock(self, key):
            return super().lock("00")

    config = RunConfig("theory", (), ("select:verifier=model-likelihood,keep=0.5",), (), None, 1, 3)
    done: list = []
    worker = threading.Thread(
        target=lambda: done.append(run(config, rundir=tmp_path / "run", cache=OneStripe(tmp_path / "cache"))),
        daemon=True,
    )
    worker.start()
    worker.join(timeout=120)
    assert done and not done[0].failures
    assert len(Cache(tmp_path / "cache").entries()) == 3


def _loose_plugin(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "curation_plugin.py").write_text(textwrap.dedent(source))
    return folder


PLUGIN = """
    import numpy as np
    from collapse_bench import Verifier, hookimpl
    from collapse_bench.builtin.models.categorical import CategoricalModel

    class NoLikelihood(CategoricalModel):
        "A categorical model that keeps its log-likelihoods to itself."
        name = "no-likelihood"
        capabilities = frozenset()

    class Short(Verifier):
        "Returns one score too few."
        name = "short"
        modalities = frozenset({"text", "vector"})

        def score(self, rows, ctx):
            return np.zeros(len(rows) - 1)

    class Undecided(Verifier):
        "Returns NaN for every row."
        name = "undecided"
        modalities = frozenset({"text", "vector"})

        def score(self, rows, ctx):
            return np.full(len(rows), np.nan)

    @hookimpl
    def register_models(register):
        register(NoLikelihood)

    @hookimpl
    def register_verifiers(register):
        register(Short)
        register(Undecided)
"""


def test_a_verifier_needing_log_likelihoods_is_refused_for_a_model_without_them(tmp_path):
    pm, infos = create_plugin_manager([_loose_plugin(tmp_path / "plugins", PLUGIN)])
    registry = Registry(pm, infos)
    protocol = get_registry().protocol("smoke")
    with pytest.raises(ConfigError, match="needs loglik, which model 'no-likelihood' does not provide"):
        make_plan(registry, protocol, ["no-likelihood"], ["select:verifier=base-likelihood,keep=0.5"], ["tail"])
    make_plan(registry, protocol, ["no-likelihood"], ["select:verifier=short,keep=0.5"], ["tail"])  # no loglik needed


def cb(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-c", "from collapse_bench.cli import main; main()", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("verifier", "message"),
    [
        ("short", "verifier 'short' (curation_plugin.py): score() returned a float64 array of shape (39,) for 40 rows"),
        ("undecided", "verifier 'undecided' (curation_plugin.py): score() returned NaN for 40 of 40 rows"),
    ],
)
def test_a_verifier_plugin_breaking_the_output_rule_is_named(tmp_path, verifier, message):
    plugins = _loose_plugin(tmp_path / "plugins", PLUGIN)
    mixer = f"select:verifier={verifier},keep=0.5"
    res = cb(
        "--plugins-dir", str(plugins), "run", "-p", "theory", "--mixer", mixer, "--generations", "2", "--seeds", "1",
        "--cache", str(tmp_path / "cache"), "-q", cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2
    assert message.replace("curation_plugin.py", str(plugins / "curation_plugin.py")) in res.stderr, res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-p", "theory", "--mixer", "select:verifier=base-likelihod"],
            "unknown verifier 'base-likelihod'\n  fix: did you mean 'base-likelihood'?",
        ),
        (["-p", "theory", "--mixer", "select:keep=0"], "select keep is 0.0\n  fix: choose keep in (0, 1]"),
        (["-p", "theory", "--mixer", "select:keep=1.5"], "select keep is 1.5\n  fix: choose keep in (0, 1]"),
        (
            ["-p", "smoke", "--mixer", "select:verifier=target-distance"],
            "verifier 'target-distance' of mixer 'select:verifier=target-distance' applies to vector data, "
            "but this run's data is text",
        ),
        (
            ["-p", "theory", "--mixer", "select:keep=1e-9"],
            "mixer 'select:keep=1e-09' drawing 20,000,000,000 candidates per generation need at least 7,450.6 GiB "
            "of memory",
        ),
    ],
)
def test_bad_curation_input_is_one_clear_error_before_anything_is_written(tmp_path, args, message):
    res = cb("run", *args, "--cache", str(tmp_path / "cache"), cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith("collapse-bench: error: ") and message in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 2  # the cause, and the fix
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()


def test_augment_trains_on_all_real_rows_plus_ratio_times_n_synthetic(run, tmp_path):
    import json

    run("theory", mixers=["augment:ratio=0.5", "augment:ratio=2"], seeds=1, generations=3)
    records = [json.loads(line) for line in (tmp_path / "run0" / "records.jsonl").read_text().splitlines()]
    rows = {(r["mixer"], r["generation"]): r["train_rows"] for r in records}
    assert [rows["augment:ratio=0.5", g] for g in range(3)] == [20, 30, 30]  # 20 real + 10 synthetic
    assert [rows["augment:ratio=2.0", g] for g in range(3)] == [20, 60, 60]  # 20 real + 40 synthetic
