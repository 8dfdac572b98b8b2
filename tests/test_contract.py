"""Every built-in component passes the contract checks offered to plugin authors, and the checks bite."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_bench import contract
from collapse_bench.builtin.mixers import Replace
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.plugins import get_registry

LIGHT = {
    "model": ["gaussian", "categorical", "ngram", "linear-regression"],
    "dataset": ["shakespeare", "normal", "linear"],
}


@pytest.mark.parametrize("name", LIGHT["model"])
def test_builtin_models_obey_the_contract(name):
    contract.check_model(get_registry().component("model", name))


@pytest.mark.parametrize("name", get_registry().names("mixer"))
def test_builtin_mixers_obey_the_contract(name):
    contract.check_mixer(get_registry().component("mixer", name))


@pytest.mark.parametrize("name", [n for n in get_registry().names("metric") if n not in ("evaluate", "regression")])
def test_builtin_metrics_obey_the_contract(name):  # `evaluate` needs a module: tests/test_evaluate_adapter.py
    contract.check_metric(get_registry().component("metric", name))


def test_the_regression_metric_obeys_the_contract_on_data_that_knows_its_coefficients():
    from collapse_bench.builtin.datasets import Linear
    from collapse_bench.builtin.metrics.regression import RegressionMetric
    from collapse_bench.builtin.models.linear import LinearRegressionModel
    from collapse_bench.data import prepare
    from collapse_bench.specs import Spec

    dataset = Linear(dim=2, n=2000)  # rows of width 3, like the contract's vector data
    real = prepare(dataset, get_registry().protocol("smoke").override(dataset=Spec("linear", {"dim": 2, "n": 2000})))
    model = contract.check_model(LinearRegressionModel)
    model.fit(real.train, contract._fit_ctx(real, np.random.default_rng(0)))
    values = contract.check_metric(RegressionMetric, model=model, real=real)
    assert values["error"] == pytest.approx(np.sum((model.coefficients() - real.truth["w"]) ** 2))


@pytest.mark.parametrize("name", get_registry().names("verifier"))
def test_builtin_verifiers_obey_the_contract(name):
    contract.check_verifier(get_registry().component("verifier", name))


@pytest.mark.parametrize("name", LIGHT["dataset"])
def test_builtin_datasets_obey_the_contract(name):
    contract.check_dataset(get_registry().component("dataset", name))


class WrongShape(CategoricalModel):
    """Samples one token too few per row."""

    name = "wrong-shape"

    def sample(self, n, ctx):
        return super().sample(n, ctx)[:, :-1]


class Unseeded(Replace):
    """Shuffles with the global random state instead of ctx.rng."""

    name = "unseeded"

    def mix(self, ctx):
        return np.random.permutation(ctx.history[-1])


class Positional(Replace):
    """Takes a positional parameter."""

    name = "positional"

    def __init__(self, k: int = 1) -> None:
        self.k = k


@pytest.mark.parametrize(
    ("check", "cls", "message"),
    [
        (contract.check_model, WrongShape, "rows of width 31, expected 32"),
        (contract.check_mixer, Unseeded, "same rng must give the same training set"),
        (contract.check_mixer, Positional, "must be keyword-only"),
    ],
)
def test_the_checks_catch_broken_components(check, cls, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(cls)


def test_the_pytest_plugin_gives_authors_a_real_run(pytester):
    pytester.makepyfile(
        """
        def test_accumulate_beats_replace(collapse_bench_run, tiny_corpus):
            assert tiny_corpus.train.shape[1] == 32
            df = collapse_bench_run(mixers=["replace", "accumulate"], generations=4)
            last = df[(df.generation == 3) & (df.metric == "perplexity")].set_index("mixer").value
            assert last["accumulate"] < last["replace"]
        """
    )
    pytester.runpytest_inprocess().assert_outcomes(passed=1)


def test_dependency_checks_bite(tmp_path):
    class ReadsAFile(Replace):
        name = "reads-a-file"

        def __init__(self, *, vocab: str = str(tmp_path)) -> None:
            self.vocab = vocab

        def dependencies(self):
            return [self.vocab]  # a path given as a string: its content would not be hashed

    with pytest.raises(AssertionError, match="is a path given as a string"):
        contract.check_mixer(ReadsAFile)
    ReadsAFile.dependencies = lambda self: [tmp_path / "missing"]
    with pytest.raises(AssertionError, match="does not exist"):
        contract.check_mixer(ReadsAFile)
    ReadsAFile.dependencies = lambda self: [tmp_path]
    contract.check_mixer(ReadsAFile)


def test_text_files_declares_the_files_it_reads(tmp_path):
    from collapse_bench.builtin.datasets import TextFiles

    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    (tmp_path / "b.txt").write_text("three\n\nfour\n")
    contract.check_dataset(TextFiles, path=str(tmp_path))
    assert TextFiles(path=str(tmp_path)).dependencies() == [tmp_path / "a.txt", tmp_path / "b.txt"]
