"""The recursive-training loop: plan (validate everything), then run every cell of the grid.

For each model and seed, generation 0 is trained once on the real training split and shared by
every mixer. Each chain then repeats: mix the next training set, train, sample, score. Random
streams are derived from (seed, generation, role, component spec) alone, so a cell's numbers do
not depend on which other cells run or in which order. Models of the same seed and generation
draw from the same streams whatever the mixer (common random numbers), which makes mixer
comparisons sharper.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collapse_bench.components import FitContext, Metric, MetricContext, MixContext, Model, SampleContext
from collapse_bench.data import RealData, prepare
from collapse_bench.errors import ComponentError, ConfigError, PluginError, UserError
from collapse_bench.plugins import Registered, Registry
from collapse_bench.protocol import Protocol
from collapse_bench.specs import Spec, declared_params, resolve_params
from collapse_bench.store import RunDir

#: Decoded synthetic rows kept per (cell, generation) in ``samples.jsonl``.
SAMPLE_EXCERPT = 8


@dataclass
class Resolved:
    """A component chosen by SPEC, with its validated parameters and registration."""

    spec: Spec  # name with every parameter, defaults filled
    registered: Registered

    def make(self) -> Any:
        """A fresh instance of the component."""
        return self.registered.obj(**self.spec.params)

    @property
    def label(self) -> str:
        """The canonical SPEC, as shown in results and leaderboards."""
        return str(Spec(self.spec.name, self._non_default()))

    def _non_default(self) -> dict[str, Any]:
        declared = declared_params(self.registered.obj)
        return {k: v for k, v in self.spec.params.items() if declared[k].default != v}


@dataclass
class Plan:
    """A fully validated run: nothing in it can fail for a configuration reason once training starts."""

    protocol: Protocol
    dataset: Resolved
    models: list[Resolved]
    mixers: list[Resolved]
    #: Metrics that apply to each model, by model label.
    metrics: dict[str, list[Resolved]]
    seeds: list[int]
    real: RealData | None = None

    @property
    def steps(self) -> int:
        """Models trained in the whole run (generation 0 counted once per model and seed)."""
        return len(self.models) * len(self.seeds) * (1 + len(self.mixers) * (self.protocol.generations - 1))


def resolve(registry: Registry, kind: str, text: str) -> Resolved:
    """Look up a SPEC, validate its parameters and construct it once to run its own checks."""
    spec = Spec.parse(text)
    registered = registry.get(kind, spec.name)
    params = resolve_params(registered.obj, spec, kind)
    resolved = Resolved(Spec(spec.name, params), registered)
    try:
        resolved.make()
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{kind} {text!r} rejected its parameters: {exc}", "see `collapse-bench list` for its parameters"
        ) from None
    return resolved


def make_plan(
    registry: Registry,
    protocol: Protocol,
    models: Sequence[str] = (),
    mixers: Sequence[str] = (),
    metrics: Sequence[str] = (),
) -> Plan:
    """Resolve and cross-check every component before anything is loaded or trained."""
    dataset = resolve(registry, "dataset", str(protocol.dataset))
    modality = dataset.registered.obj.modality
    model_list = [resolve(registry, "model", m) for m in models or protocol.models]
    mixer_list = [resolve(registry, "mixer", m) for m in mixers or protocol.mixers]
    for kind, items in (("model", model_list), ("mixer", mixer_list)):
        labels = [r.label for r in items]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"the same {kind} is given twice: {', '.join(labels)}", f"give each {kind} once")
    explicit = bool(metrics)
    metric_list = [resolve(registry, "metric", m) for m in metrics or protocol.metrics]
    plan_metrics: dict[str, list[Resolved]] = {}
    for model in model_list:
        cls: type[Model] = model.registered.obj
        if cls.modality != modality:
            raise ConfigError(
                f"model {model.label!r} works on {cls.modality} data, but dataset {dataset.label!r} is {modality}",
                f"pick a {modality} model or a protocol with a {cls.modality} dataset",
            )
        chosen = []
        for metric in metric_list:
            mcls: type[Metric] = metric.registered.obj
            missing = sorted(mcls.requires - cls.capabilities)
            reason = (
                f"it applies to {'/'.join(sorted(mcls.modalities))} data, not {cls.modality}"
                if cls.modality not in mcls.modalities
                else f"it needs {', '.join(missing)}, which model {model.label!r} does not provide"
                if missing
                else None
            )
            if reason is None:
                chosen.append(metric)
            elif explicit:
                raise ConfigError(
                    f"metric {metric.label!r} cannot score model {model.label!r}: {reason}",
                    "drop that --metric or pick another model",
                )
        if not chosen:
            raise ConfigError(
                f"no metric of protocol {protocol.label} applies to model {model.label!r}", "name metrics with --metric"
            )
        plan_metrics[model.label] = chosen
    for item in [*model_list, *mixer_list, *(m for ms in plan_metrics.values() for m in ms)]:
        item.make().check(protocol)
    return Plan(protocol, dataset, model_list, mixer_list, plan_metrics, list(range(protocol.seeds)))


def load_data(plan: Plan) -> RealData:
    """Load and split the dataset, then let every mixer refuse data too small for it."""
    real = prepare(plan.dataset.make(), plan.protocol)
    for mixer in plan.mixers:
        mixer.make().check_data(real, plan.protocol)
    plan.real = real
    return real


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(seed: int, generation: int, role: str, *components: str) -> np.random.Generator:
    """A random stream that depends only on its arguments."""
    return np.random.default_rng(np.random.SeedSequence([seed, generation, _stable(role), *map(_stable, components)]))


def _check_rows(rows: Any, want: tuple[int, ...], modality: str, who: str) -> np.ndarray:
    """Refuse samples that break the contract, naming the plugin rather than failing deep inside a metric."""
    if not isinstance(rows, np.ndarray) or rows.shape != want:
        got = rows.shape if isinstance(rows, np.ndarray) else type(rows).__name__
        raise PluginError(
            f"{who} returned {got} from sample(), expected an array of shape {want}", "fix the plugin's sample()"
        )
    if modality == "text" and not np.issubdtype(rows.dtype, np.integer):
        raise PluginError(f"{who} returned {rows.dtype} token ids", "return integer token ids from sample()")
    if modality == "vector" and not np.isfinite(rows).all():
        raise PluginError(f"{who} returned non-finite vectors from sample()", "fix the plugin's sample()")
    return rows


@contextmanager
def blame(who: str, action: str) -> Iterator[None]:
    """Turn an exception raised by plugin code into a :class:`ComponentError` naming the plugin."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise ComponentError(who, action, exc) from exc


@dataclass
class Step:
    """One trained generation: its model, samples, scores and timings."""

    model: Model
    samples: np.ndarray
    scores: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)
    train_rows: int = 0


class Runner:
    """Executes a :class:`Plan`, writing records to a :class:`RunDir` as they finish."""

    def __init__(self, plan: Plan, run: RunDir, on_step: Callable[[str], None] = lambda _: None) -> None:
        if plan.real is None:
            raise ValueError("load_data(plan) must run before Runner(plan)")
        self.plan, self.run, self.on_step = plan, run, on_step
        self.real: RealData = plan.real
        self.metrics = {label: [(m, m.make()) for m in ms] for label, ms in plan.metrics.items()}

    def execute(self) -> None:
        """Run every cell: models x seeds x mixers."""
        for model in self.plan.models:
            for seed in self.plan.seeds:
                base = self._generation(model, None, seed, 0, self.real.train, None, None)
                for mixer in self.plan.mixers:
                    self._chain(model, mixer, seed, base)

    def _chain(self, model: Resolved, mixer: Resolved, seed: int, base: Step) -> None:
        protocol = self.plan.protocol
        self._record(model, mixer, seed, 0, base)
        mix = mixer.make()
        history, previous = [base.samples], base
        for g in range(1, protocol.generations):
            t0 = time.perf_counter()
            ctx = MixContext(
                real=self.real,
                history=history,
                generation=g,
                rng=rng_for(seed, g, "mix", mixer.label),
                sample_size=protocol.samples,
                generations=protocol.generations,
            )
            with blame(f"mixer {mixer.label!r} ({mixer.registered.origin})", f"mix() for generation {g}, seed {seed}"):
                data = mix.mix(ctx)
            mix_time = time.perf_counter() - t0
            step = self._generation(model, mixer, seed, g, data, previous.model, base.model)
            step.timings["mix"] = mix_time
            self._record(model, mixer, seed, g, step)
            history.append(step.samples)
            previous = step

    def _generation(
        self,
        model: Resolved,
        mixer: Resolved | None,
        seed: int,
        g: int,
        data: np.ndarray,
        previous: Model | None,
        base: Model | None,
    ) -> Step:
        protocol = self.plan.protocol
        who = f"model {model.label!r} ({model.registered.origin})"
        m: Model = model.make()
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        fit_ctx = FitContext(
            seed=seed,
            generation=g,
            rng=rng_for(seed, g, "fit", model.label),
            training=protocol.training,
            vocab_size=self.real.vocab_size,
            tokenizer=self.real.tokenizer,
            previous=previous,
            base=base,
        )
        where = f"generation {g}, seed {seed}"
        with blame(who, f"fit() at {where}"):
            m.fit(data, fit_ctx)
        timings["fit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        length = self.real.train.shape[1] if self.real.modality == "text" else None
        sample_ctx = SampleContext(
            rng=rng_for(seed, g, "sample", model.label),
            length=length,
            decoding=protocol.decoding,
            prompts=data,
            tokenizer=self.real.tokenizer,
        )
        with blame(who, f"sample() at {where}"):
            rows = m.sample(protocol.samples, sample_ctx)
        want = (protocol.samples, self.real.train.shape[1])
        samples = _check_rows(rows, want, self.real.modality, who)
        timings["sample"] = time.perf_counter() - t0
        metric_ctx = MetricContext(model=m, base=base or m, real=self.real, samples=samples, generation=g)
        scores: dict[str, float] = {}
        for resolved, metric in self.metrics[model.label]:
            t0 = time.perf_counter()
            with blame(f"metric {resolved.label!r} ({resolved.registered.origin})", f"compute() at {where}"):
                values = metric.compute(metric_ctx)
            if set(values) != set(metric.outputs):
                raise PluginError(
                    f"metric {resolved.label!r} ({resolved.registered.origin}) returned {sorted(values)}, "
                    f"but declares {sorted(metric.outputs)}",
                    "make compute() return exactly the declared outputs",
                )
            scores.update({metric.qualified(k): float(v) for k, v in values.items()})
            timings[f"metric:{resolved.label}"] = time.perf_counter() - t0
        self.on_step(f"{model.label} | {mixer.label if mixer else 'all mixers'} | seed {seed} | generation {g}")
        return Step(m, samples, scores, timings, len(data))

    def _record(self, model: Resolved, mixer: Resolved, seed: int, g: int, step: Step) -> None:
        key = {"model": model.label, "mixer": mixer.label, "seed": seed, "generation": g}
        self.run.append(
            RunDir.RECORDS,
            {**key, "scores": step.scores, "timings": step.timings, "train_rows": step.train_rows, "shared": g == 0},
        )
        self.run.append(RunDir.SAMPLES, {**key, "rows": self.real.decode(step.samples[:SAMPLE_EXCERPT])})


def manifest(plan: Plan, run_id: str, argv: Sequence[str]) -> dict[str, Any]:
    """Everything needed to reproduce and to trust the run, written before training starts."""
    from datetime import UTC, datetime

    from collapse_bench.provenance import git_commit, hardware, package_versions

    metrics = {m.label: m for ms in plan.metrics.values() for m in ms}
    components = [("dataset", plan.dataset), *(("model", m) for m in plan.models)]
    components += [*(("mixer", m) for m in plan.mixers), *(("metric", m) for m in metrics.values())]
    return {
        "run_id": run_id,
        "status": "running",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(argv),
        "protocol": plan.protocol.to_dict(),
        "fingerprint": plan.protocol.fingerprint,
        "models": [m.label for m in plan.models],
        "mixers": [m.label for m in plan.mixers],
        "metrics": {label: [m.label for m in ms] for label, ms in plan.metrics.items()},
        "seeds": plan.seeds,
        "directions": {k: v for m in metrics.values() for k, v in m.registered.obj.directions().items()},
        "plugins": [
            {
                "kind": kind,
                "spec": str(r.spec),
                "plugin": r.registered.plugin,
                "distribution": r.registered.distribution,
                "version": r.registered.version,
            }
            for kind, r in components
        ],
        "data": plan.real.describe() if plan.real else None,
        "packages": package_versions(),
        "git_commit": git_commit(),
        "hardware": hardware(),
    }


def finish(run: RunDir, status: str, error: str | None = None) -> None:
    """Stamp the manifest with the end time and how the run ended."""
    from datetime import UTC, datetime

    m = run.manifest()
    m.update(status=status, ended=datetime.now(UTC).isoformat(timespec="seconds"))
    if error:
        m["error"] = error
    run.write_manifest(m)
