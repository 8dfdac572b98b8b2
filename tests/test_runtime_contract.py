"""Every output rule of collapse_bench.validators, broken by a real plugin: the run fails the cell
with a message naming the plugin, and the authoring kit's check fails with the same message."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

import collapse_bench
from collapse_bench import HIGHER, LOGLIK, LOWER, Dataset, Metric, contract, hookimpl, validators
from collapse_bench.builtin.mixers import Replace
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.models.gaussian import GaussianModel
from collapse_bench.engine.driver import RunResult
from collapse_bench.errors import PluginError
from collapse_bench.plan import RunConfig
from collapse_bench.plugins import Registry, create_plugin_manager
from collapse_bench.specs import Spec
from collapse_bench.store import RunDir

#: Prepared data shared by the runs of this module (the cache's ``data`` folder of each run links here).
PREPARED = Path(tempfile.mkdtemp(prefix="collapse-bench-prepared-"))

# --- text models ------------------------------------------------------------------------------


class ListRows(CategoricalModel):
    name = "list-rows"

    def sample(self, n, ctx):
        return super().sample(n, ctx).tolist()


class FewRows(CategoricalModel):
    name = "few-rows"

    def sample(self, n, ctx):
        return super().sample(n, ctx)[:-1]


class NarrowRows(CategoricalModel):
    name = "narrow-rows"

    def sample(self, n, ctx):
        return super().sample(n, ctx)[:, :-1]


class FloatIds(CategoricalModel):
    name = "float-ids"

    def sample(self, n, ctx):
        return super().sample(n, ctx).astype(float)


class ShiftedIds(CategoricalModel):
    """Every id 10,000 too high: before the rule, such a run finished with tail.type_coverage 0.0."""

    name = "shifted-ids"

    def sample(self, n, ctx):
        return super().sample(n, ctx) + 10_000


class NegativeIds(CategoricalModel):
    name = "negative-ids"

    def sample(self, n, ctx):
        return super().sample(n, ctx) - ctx.tokenizer.get_vocab_size()


class ShortNll(CategoricalModel):
    name = "short-nll"

    def nll(self, data):
        return super().nll(data)[:, :-1]


class NanNll(CategoricalModel):
    name = "nan-nll"

    def nll(self, data):
        out = super().nll(data)
        out[0, 0] = np.nan
        return out


class MinusInfNll(CategoricalModel):
    """Before the rule: perplexity 0 and the token counted as impossible."""

    name = "minus-inf-nll"

    def nll(self, data):
        out = super().nll(data)
        out[0, 0] = -np.inf
        return out


class Overconfident(CategoricalModel):
    """Every probability a hundred times too high: before the rule, a perplexity below 1 was possible."""

    name = "overconfident"

    def nll(self, data):
        return super().nll(data) - np.log(100)


# --- vector models ----------------------------------------------------------------------------


class IntVectors(GaussianModel):
    name = "int-vectors"

    def sample(self, n, ctx):
        return super().sample(n, ctx).astype(np.int64)


class NanVectors(GaussianModel):
    name = "nan-vectors"

    def sample(self, n, ctx):
        rows = super().sample(n, ctx)
        rows[0, 0] = np.nan
        return rows


class WideMean(GaussianModel):
    """A mean one coordinate too long: before the rule, the variance metric broadcast it."""

    name = "wide-mean"

    def moments(self):
        mean, cov = super().moments()
        return np.r_[mean, 0.0], cov


class InfMean(GaussianModel):
    name = "inf-mean"

    def moments(self):
        mean, cov = super().moments()
        return mean + np.inf, cov


class ZeroVariance(GaussianModel):
    """Before the rule: variance.ratio 0/0 = NaN at generation 0, blamed on the metric."""

    name = "zero-variance"

    def moments(self):
        mean, cov = super().moments()
        return mean, cov * 0


class NegativeVariance(GaussianModel):
    """Before the rule: a covariance of -1 times the fit passed, and at generation g >= 1 gave variance.ratio < 0."""

    name = "negative-variance"

    def moments(self):
        mean, cov = super().moments()
        return mean, -cov


class InfiniteDensity(GaussianModel):
    name = "infinite-density"

    def nll(self, data):
        out = super().nll(data)
        out[0] = -np.inf
        return out


# --- mixers, metrics, a dataset ---------------------------------------------------------------


class NoRows(Replace):
    name = "no-rows"

    def mix(self, ctx):
        return ctx.history[-1][:0]


class FlatRows(Replace):
    name = "flat-rows"

    def mix(self, ctx):
        return ctx.history[-1].ravel()


class NarrowMix(Replace):
    name = "narrow-mix"

    def mix(self, ctx):
        return ctx.history[-1][:, :-1]


class FloatMix(Replace):
    name = "float-mix"

    def mix(self, ctx):
        return ctx.history[-1].astype(float)


class ShiftedMix(Replace):
    name = "shifted-mix"

    def mix(self, ctx):
        return ctx.history[-1] + 10_000


class IntMix(Replace):
    """Rows of the text kind (integers) for vector data."""

    name = "int-mix"

    def mix(self, ctx):
        return np.rint(ctx.history[-1]).astype(np.int64)


class ExtraOutput(Metric):
    name = "extra-output"
    modalities = frozenset({"text"})
    outputs = {"x": HIGHER}

    def compute(self, ctx):
        return {"x": 1.0, "extra": 2.0}


class NanMetric(Metric):
    name = "nan-metric"
    modalities = frozenset({"text"})
    outputs = {"nan-metric": HIGHER}

    def compute(self, ctx):
        return {"nan-metric": float("nan")}


class WordMetric(Metric):
    name = "word-metric"
    modalities = frozenset({"text"})
    outputs = {"word-metric": HIGHER}

    def compute(self, ctx):
        return {"word-metric": "high"}


class MeanNll(Metric):
    """Mean negative log density of the real test points under M_g."""

    name = "mean-nll"
    modalities = frozenset({"vector"})
    requires = frozenset({LOGLIK})
    outputs = {"mean-nll": LOWER}

    def compute(self, ctx):
        return {"mean-nll": float(ctx.model.nll(ctx.real.test).mean())}


class Constant(Dataset):
    """Every row the same point."""

    name = "constant"
    modality = "vector"

    def load(self):
        return np.ones((2000, 1))


class PeekPrevious(CategoricalModel):
    """Notes, at each fit, whether the previous generation's model object was changed by the harness."""

    name = "peek-previous"
    changed: list[bool] = []

    def fit(self, data, ctx):
        if ctx.previous is not None:
            PeekPrevious.changed.append(set(vars(ctx.previous)) != {"alpha", "probs"})
        super().fit(data, ctx)


MODELS = [ListRows, FewRows, NarrowRows, FloatIds, ShiftedIds, NegativeIds, ShortNll, NanNll, MinusInfNll]
MODELS += [
    Overconfident,
    IntVectors,
    NanVectors,
    WideMean,
    InfMean,
    NegativeVariance,
    ZeroVariance,
    InfiniteDensity,
    PeekPrevious,
]
MIXERS = [NoRows, FlatRows, NarrowMix, FloatMix, ShiftedMix, IntMix]
METRICS = [ExtraOutput, NanMetric, WordMetric, MeanNll]


class Broken:
    @hookimpl
    def register_models(self, register):
        for cls in MODELS:
            register(cls)

    @hookimpl
    def register_mixers(self, register):
        for cls in MIXERS:
            register(cls)

    @hookimpl
    def register_metrics(self, register):
        for cls in METRICS:
            register(cls)

    @hookimpl
    def register_datasets(self, register):
        register(Constant)


def run(
    tmp_path: Path, protocol: str, model: str, mixer: str, metric: str, **overrides: Any
) -> tuple[RunResult, RunDir, list]:
    """Run one cell through the real harness with the broken plugin installed."""
    pm, infos = create_plugin_manager()
    pm.register(Broken(), name="broken-plugin")
    dataset, generations = overrides.pop("dataset", None), overrides.pop("generations", 2)
    config = RunConfig(
        protocol, (model,), (mixer,), (metric,), dataset and str(dataset), 1, generations, overrides=overrides
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "data").symlink_to(PREPARED)  # each protocol's data split and tokenizer, prepared once per session
    result = collapse_bench.run(config, rundir=tmp_path / "run", cache=cache, registry=Registry(pm, infos))
    return result, result.rundir, result.failures


@dataclass
class Case:
    component: type  # the broken plugin class
    rule: validators.Rule
    got: str  # what the run's message says was returned (the right value, known by construction)
    protocol: str = "smoke"
    model: str = "categorical"
    mixer: str = "replace"
    metric: str = "tail"
    generation: int = 0  # where the cell fails

    def __post_init__(self) -> None:
        kind = {CategoricalModel: "model", GaussianModel: "model", Replace: "mixer", Metric: "metric"}
        self.kind = next(k for base, k in kind.items() if issubclass(self.component, base))
        setattr(self, self.kind, self.component.name)
        if self.protocol == "theory" and self.model == "categorical":
            self.model = "gaussian"
        self.method = next(p.split()[1] for p in self.rule.applies.split(", ") if p.startswith(self.kind))


SMOKE_TOKENS = 256 * 32  # samples x block_tokens of the smoke protocol
TEST_TOKENS = 64 * 32  # test rows x block_tokens
ALL_OUTSIDE = f"{SMOKE_TOKENS} of {SMOKE_TOKENS} token ids outside range(512)"
CASES = [
    Case(ListRows, validators.ROWS_ARRAY, "list"),
    Case(FewRows, validators.ROWS_COUNT, "255 rows for n=256"),
    Case(NarrowRows, validators.ROWS_WIDTH, "rows of width 31, expected 32"),
    Case(FloatIds, validators.TOKEN_DTYPE, "float64 token ids"),
    Case(ShiftedIds, validators.TOKEN_RANGE, f"{ALL_OUTSIDE}, from "),
    Case(NegativeIds, validators.TOKEN_RANGE, f"{ALL_OUTSIDE}, from -"),
    Case(IntVectors, validators.VECTOR_DTYPE, "int64 vectors", protocol="theory", metric="variance"),
    Case(NanVectors, validators.VECTOR_FINITE, "non-finite values in 1 of 20 values", "theory", metric="variance"),
    Case(
        ShortNll,
        validators.NLL_ARRAY,
        "a float64 array of shape (64, 31) for data of shape (64, 32), expected (64, 32)",
        metric="perplexity",
    ),
    Case(NanNll, validators.NLL_NAN, f"NaN for 1 of {TEST_TOKENS} tokens", metric="perplexity"),
    Case(MinusInfNll, validators.NLL_MINUS_INF, f"-inf for 1 of {TEST_TOKENS} tokens", metric="perplexity"),
    Case(InfiniteDensity, validators.NLL_MINUS_INF, "-inf for 1 of 1000 points", "theory", metric="mean-nll"),
    Case(
        WideMean,
        validators.MOMENTS_SHAPES,
        "shapes (2,) and (1, 1), expected (1,) and (1, 1)",
        "theory",
        metric="variance",
    ),
    Case(InfMean, validators.MOMENTS_FINITE, "non-finite values", "theory", metric="variance"),
    Case(
        NegativeVariance,
        validators.MOMENTS_COVARIANCE,
        "a covariance with eigenvalue -",
        "theory",
        metric="variance",
    ),
    Case(
        ZeroVariance,
        validators.MOMENTS_BASE_VARIANCE,
        "a covariance of trace 0 at generation 0",
        "theory",
        metric="variance",
    ),
    Case(NoRows, validators.ROWS_PRESENT, "no rows", generation=1),
    Case(FlatRows, validators.ROWS_ARRAY, f"shape ({SMOKE_TOKENS},)", generation=1),
    Case(NarrowMix, validators.ROWS_WIDTH, "rows of width 31, expected 32", generation=1),
    Case(FloatMix, validators.TOKEN_DTYPE, "float64 token ids", generation=1),
    Case(ShiftedMix, validators.TOKEN_RANGE, ALL_OUTSIDE, generation=1),
    Case(IntMix, validators.VECTOR_DTYPE, "int64 vectors", "theory", "gaussian", metric="variance", generation=1),
    Case(ExtraOutput, validators.VALUES_NAMES, "['extra', 'x'], but declares ['x']"),
    Case(NanMetric, validators.VALUES_NUMBERS, "nan for 'nan-metric'"),
    Case(WordMetric, validators.VALUES_NUMBERS, "'high' for 'word-metric'"),
]


def _ids(case: Case) -> str:
    return case.component.name


def _digits_masked(message: str) -> str:
    return re.sub(r"\d+", "#", message)


CONTRACT = {"model": contract.check_model, "mixer": contract.check_mixer, "metric": contract.check_metric}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_a_broken_output_rule_fails_the_cell_and_the_check(tmp_path, case):
    """The run records the failure naming the plugin; contract.check_* fail with the same message.

    The check's message differs only in the origin and in the sizes of its own data.
    """
    _, rundir, failures = run(tmp_path, case.protocol, case.model, case.mixer, case.metric)
    who = f"{case.kind} {case.component.name!r} (broken-plugin)"
    assert [f.generation for f in failures] == [case.generation]
    error = failures[0].error
    assert error.startswith(f"{who}: {case.method} returned {case.got}")
    assert error.endswith(f"; {case.rule.must} (fix the plugin's {case.method}: {case.rule.fix})")
    recorded = [json.loads(line) for line in (rundir.path / RunDir.FAILURES).read_text().splitlines()]
    assert [r["error"] for r in recorded] == [error]
    if case.component is IntMix:
        return  # check_mixer mixes text rows, which are integers by right
    with pytest.raises(AssertionError) as caught:
        CONTRACT[case.kind](case.component)
    runtime = error.replace(" (broken-plugin)", "", 1)
    assert _digits_masked(str(caught.value)) == _digits_masked(runtime)


def test_shifted_ids_record_nothing(tmp_path):
    """The reported case: ids + 10,000 once finished with tail.type_coverage 0.0; now no score is recorded."""
    _, rundir, failures = run(tmp_path, "smoke", "shifted-ids", "replace", "tail")
    assert len(failures) == 1
    assert not (rundir.path / RunDir.RECORDS).exists()


def test_an_nll_below_zero_is_counted_exactly(tmp_path):
    """The overconfident model's negative NLLs are exactly the test tokens of probability above 1/100."""
    plan, _, failures = run(tmp_path, "smoke", "overconfident", "replace", "perplexity")
    real = plan.real
    probs = np.bincount(real.train.ravel(), minlength=real.vocab_size) / real.train.size
    negative = int((probs[real.test] > 1 / 100).sum())
    lowest = -np.log(probs[real.test].max() * 100)
    assert 0 < negative < real.test.size
    assert failures[0].error.startswith(
        f"model 'overconfident' (broken-plugin): nll() returned negative values (as low as {lowest:.6g}) "
        f"for {negative} of {real.test.size} tokens; {validators.NLL_TEXT_NEGATIVE.must}"
    )


def test_a_generation_0_fit_to_identical_rows_blames_the_model_not_the_metric(tmp_path):
    """Real data whose rows are all alike: the built-in gaussian is named, with the dataset as the likely cause."""
    _, _, failures = run(tmp_path, "theory", "gaussian", "replace", "variance", dataset=Spec("constant", {}))
    assert [f.generation for f in failures] == [0]
    assert (
        failures[0].error.startswith("model 'gaussian' (collapse-bench ")
        and ": moments() returned a covariance of trace 0 at generation 0; " in failures[0].error
    )
    assert "use a dataset whose rows vary" in failures[0].error


def test_a_vector_nll_may_be_negative(tmp_path):
    """A density above 1 is legal: N(0, 0.01^2) data give a mean NLL near -3.2, equal to scipy's."""
    plan, rundir, failures = run(
        tmp_path, "theory", "gaussian", "replace", "mean-nll", dataset=Spec("normal", {"std": 0.01})
    )
    assert failures == []
    record = json.loads((rundir.path / RunDir.RECORDS).read_text().splitlines()[0])
    train, test = plan.real.train[:, 0], plan.real.test[:, 0]
    want = -stats.norm.logpdf(test, loc=train.mean(), scale=train.std(ddof=0)).mean()
    assert record["scores"]["mean-nll"] == pytest.approx(want, rel=1e-12)
    assert want < -2


def test_metrics_see_the_model_unchanged(tmp_path):
    """The checked view metrics get leaves the model object alone: the next generation's fit sees it as built."""
    PeekPrevious.changed.clear()
    _, _, failures = run(tmp_path, "smoke", "peek-previous", "replace", "perplexity", generations=3)
    assert failures == []
    assert PeekPrevious.changed == [False, False]


def test_the_docs_list_every_rule():
    """docs/plugins.md shows the rules table generated from the module, so the two cannot drift."""
    docs = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    assert validators.rules_table() in docs


def test_a_covariance_that_no_distribution_has_is_refused_at_every_generation():
    """2-D cases the 1-D theory run cannot show: asymmetric, or indefinite after a valid generation 0.

    Before the rule, an indefinite covariance at generation 1 scored variance.ratio below 0. A
    covariance fitted by np.cov, rounding and all, passes unchanged.
    """
    rng = np.random.default_rng(0)
    fitted = np.cov(rng.normal(size=(50, 2)) @ np.array([[1.0, 0.9], [0.0, 0.1]]), rowvar=False)
    _, cov = validators.moments((np.zeros(2), fitted), 2, 1, "model 'm'")
    assert np.array_equal(cov, fitted)
    asymmetric = np.array([[1.0, 5.0], [0.0, 1.0]])
    with pytest.raises(PluginError, match=r"an asymmetric covariance \(largest \|C - C\^T\| 5\)"):
        validators.moments((np.zeros(2), asymmetric), 2, 0, "model 'm'")
    indefinite = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1, trace 2 > 0
    with pytest.raises(PluginError, match=r"^model 'm': moments\(\) returned a covariance with eigenvalue -1 < 0"):
        validators.moments((np.zeros(2), indefinite), 2, 1, "model 'm'")
