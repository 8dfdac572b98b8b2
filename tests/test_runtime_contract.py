"""A component that breaks its contract while running fails its cell with a message naming the plugin."""

from __future__ import annotations

import numpy as np
import pytest

from collapse_bench import HIGHER, Metric, hookimpl
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.cache import Cache
from collapse_bench.plugins import Registry, create_plugin_manager
from collapse_bench.protocol import resolve_protocol
from collapse_bench.runner import Runner, load_data, make_plan
from collapse_bench.store import RunDir


class ShortNll(CategoricalModel):
    """Scores one token too few per row."""

    name = "short-nll"

    def nll(self, data):
        return super().nll(data)[:, :-1]


class FloatIds(CategoricalModel):
    """Samples token ids as floats."""

    name = "float-ids"

    def sample(self, n, ctx):
        return super().sample(n, ctx).astype(float)


class NanMetric(Metric):
    """Always NaN."""

    name = "nan-metric"
    modalities = frozenset({"text"})
    outputs = {"nan-metric": HIGHER}

    def compute(self, ctx):
        return {"nan-metric": float("nan")}


class Broken:
    @hookimpl
    def register_models(self, register):
        register(ShortNll)
        register(FloatIds)

    @hookimpl
    def register_metrics(self, register):
        register(NanMetric)


@pytest.mark.parametrize(
    ("model", "metric", "message"),
    [
        (
            "short-nll",
            "perplexity",
            "model 'short-nll' (broken-plugin) returned (64, 31) from nll(), expected shape (64, 32)",
        ),
        ("float-ids", "tail", "model 'float-ids' (broken-plugin) returned float64 token ids"),
        ("categorical", "nan-metric", "metric 'nan-metric' (broken-plugin) returned nan"),
    ],
)
def test_contract_breaks_name_the_plugin(tmp_path, model, metric, message):
    pm, infos = create_plugin_manager()
    pm.register(Broken(), name="broken-plugin")
    plan = make_plan(Registry(pm, infos), resolve_protocol("smoke"), [model], ["replace"], [metric])
    load_data(plan)
    run = RunDir(tmp_path / "run")
    with run.lock():
        failures = Runner(plan, run, Cache(tmp_path / "cache")).execute()
    assert len(failures) == 1 and failures[0].generation == 0
    assert message in failures[0].error
    assert np.all([f.model == model for f in failures])
