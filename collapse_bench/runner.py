"""The recursive-training loop: plan (validate everything), then run every cell of the grid.

For each model and seed, generation 0 is trained once on the real training split and shared by
every mixer. Each chain then repeats: mix the next training set, train, sample, score. Random
streams are derived from (seed, generation, role, component spec) alone, so a cell's numbers do
not depend on which other cells run or in which order. Models of the same seed and generation
draw from the same streams whatever the mixer (common random numbers), which makes mixer
comparisons sharper.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collapse_bench import validators
from collapse_bench.cache import Cache, digest
from collapse_bench.components import FitContext, Metric, MetricContext, MixContext, Model, SampleContext
from collapse_bench.data import RealData, prepare
from collapse_bench.errors import ComponentError, ConfigError, DiskFullError, PluginError, UserError
from collapse_bench.keys import code_hash, dependencies_digest
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

    @functools.cached_property
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
    def records(self) -> int:
        """Records the run writes: one per model, mixer, seed and generation."""
        return len(self.models) * len(self.mixers) * len(self.seeds) * self.protocol.generations


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
    except UserError:
        raise
    except Exception as exc:
        raise ComponentError(f"{kind} {text!r} ({registered.origin})", "__init__()", exc) from exc
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
        with blame(f"{item.registered.kind} {item.label!r} ({item.registered.origin})", "check()"):
            instance = item.make()
            instance.check(protocol)
        if isinstance(instance, Metric) and not set(instance.headline) <= set(instance.outputs):
            raise PluginError(
                f"metric {item.label!r} ({item.registered.origin}) declares headline values "
                f"{sorted(set(instance.headline) - set(instance.outputs))} that are not among its outputs",
                "name only declared outputs in `headline`",
            )
    return Plan(protocol, dataset, model_list, mixer_list, plan_metrics, list(range(protocol.seeds)))


def load_data(plan: Plan, progress: Callable[[str], None] | None = None) -> RealData:
    """Load and split the dataset (``progress`` hears each step), then let every mixer refuse data too small for it."""
    with blame(f"dataset {plan.dataset.label!r} ({plan.dataset.registered.origin})", "load()"):
        real = prepare(plan.dataset.make(), plan.protocol, progress)
    if plan.protocol.samples == 0:  # one synthetic row per training row: known once the data is split
        plan.protocol = dataclasses.replace(plan.protocol, samples=len(real.train))
    for mixer in plan.mixers:
        with blame(f"mixer {mixer.label!r} ({mixer.registered.origin})", "check_data()"):
            mixer.make().check_data(real, plan.protocol)
    plan.real = real
    return real


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(seed: int, generation: int, role: str, *components: str) -> np.random.Generator:
    """A random stream that depends only on its arguments."""
    return np.random.default_rng(np.random.SeedSequence([seed, generation, _stable(role), *map(_stable, components)]))


@contextmanager
def blame(who: str, action: str) -> Iterator[None]:
    """Turn an exception raised by plugin code into a :class:`ComponentError` naming the plugin."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        raise ComponentError(who, action, exc) from exc


def identity(component: Resolved) -> dict[str, Any]:
    """What a component contributes to a content address: full SPEC, origin, code and declared inputs.

    ``code`` covers the component's modules and those of its package it imports; ``dependencies``
    the content of the files and the revisions it declares (see :mod:`collapse_bench.keys`).
    """
    who = f"{component.registered.kind} {component.label!r} ({component.registered.origin})"
    return {
        "spec": str(component.spec),
        "origin": component.registered.origin,
        "code": code_hash(component.registered.obj),
        "dependencies": dependencies_digest(component.make(), who),
    }


class Step:
    """One trained generation; a model read back from the cache is loaded only when needed."""

    def __init__(
        self,
        key: str,
        samples: np.ndarray,
        train_rows: int,
        timings: dict[str, float],
        model: Model | None = None,
        loader: Callable[[], Model] | None = None,
    ) -> None:
        self.key, self.samples, self.train_rows, self.timings = key, samples, train_rows, timings
        self._model, self._loader = model, loader

    @property
    def cached(self) -> bool:
        """Whether this step was read back from the cache rather than computed."""
        return self._loader is not None

    @property
    def model(self) -> Model:
        """M_g, trained or restored."""
        if self._model is None:
            self._model = self._loader()
        return self._model


@dataclass
class Failure:
    """A cell that could not finish, with what went wrong."""

    model: str
    mixer: str
    seed: int
    generation: int
    error: str
    traceback: str


class Runner:
    """Executes a :class:`Plan`: reuses cached steps, computes the rest, records every generation.

    A cell that fails is recorded in ``failures.jsonl`` and the other cells go on.
    """

    def __init__(
        self,
        plan: Plan,
        run: RunDir,
        cache: Cache,
        on_step: Callable[[str], None] = lambda _: None,
    ) -> None:
        if plan.real is None:
            raise ValueError("load_data(plan) must run before Runner(plan)")
        self.plan, self.run, self.cache, self.on_step = plan, run, cache, on_step
        self.real: RealData = plan.real
        self.metrics = {label: [(m, m.make()) for m in ms] for label, ms in plan.metrics.items()}
        protocol = plan.protocol
        settings = protocol.to_dict()
        shaping = {k: settings[k] for k in ("dataset", "data", "samples", "decoding", "training")}
        dataset = plan.dataset
        who = f"dataset {dataset.label!r} ({dataset.registered.origin})"
        self._root_inputs = {
            "protocol": shaping,
            "data": self.real.hashes,
            "dataset": dependencies_digest(dataset.make(), who),
        }
        self.reused = self.computed = 0
        self._generation = 0

    def execute(self) -> list[Failure]:
        """Run every cell (models x seeds x mixers); return the cells that failed."""
        failures: list[Failure] = []
        generations = range(self.plan.protocol.generations)
        for model in self.plan.models:
            for seed in self.plan.seeds:
                todo = []
                for mixer in self.plan.mixers:
                    if all((model.label, mixer.label, seed, g) in self.run.kept for g in generations):
                        for g in generations:  # finished by an earlier attempt: kept, not recomputed
                            self.on_step(f"{model.label} | {mixer.label} | seed {seed} | generation {g} (kept)")
                    else:
                        todo.append(mixer)
                if not todo:
                    continue
                self._generation = 0
                try:
                    base = self._step(model, None, seed, 0, None, lambda: self.real.train, None, None)
                    base_scores = self._scores(model, base, base, 0, seed)
                except DiskFullError:
                    raise  # not the cell's fault: every later write would fail too
                except Exception as exc:
                    failures += [self._fail(model, mixer, seed, exc) for mixer in todo]
                    continue
                for mixer in todo:
                    try:
                        self._chain(model, mixer, seed, base, base_scores)
                    except DiskFullError:
                        raise
                    except Exception as exc:
                        failures.append(self._fail(model, mixer, seed, exc))
        return failures

    def _fail(self, model: Resolved, mixer: Resolved, seed: int, exc: Exception) -> Failure:
        tb = exc.traceback if isinstance(exc, ComponentError) else "".join(traceback.format_exception(exc))
        failure = Failure(model.label, mixer.label, seed, self._generation, str(exc), tb)
        self.run.append(RunDir.FAILURES, dataclasses.asdict(failure))
        self.on_step(f"FAILED {model.label} | {mixer.label} | seed {seed} | generation {self._generation}: {exc}")
        return failure

    def _chain(self, model: Resolved, mixer: Resolved, seed: int, base: Step, base_scores: dict) -> None:
        protocol = self.plan.protocol
        self._record(model, mixer, seed, 0, base, base_scores)
        mix = mixer.make()
        history, previous = [base.samples], base
        for g in range(1, protocol.generations):
            self._generation = g

            def mixed(g: int = g) -> np.ndarray:
                ctx = MixContext(
                    real=self.real,
                    history=history,
                    generation=g,
                    rng=rng_for(seed, g, "mix", mixer.label),
                    sample_size=protocol.samples,
                    generations=protocol.generations,
                )
                who = f"mixer {mixer.label!r} ({mixer.registered.origin})"
                with blame(who, f"mix() for generation {g}, seed {seed}"):
                    rows = mix.mix(ctx)
                return validators.training_set(rows, self.real, who)

            step = self._step(model, mixer, seed, g, previous.key, mixed, previous, base)
            self._record(model, mixer, seed, g, step, self._scores(model, step, base, g, seed))
            history.append(step.samples)
            previous = step

    def step_key(
        self, model: Resolved, mixer: Resolved | None, seed: int, g: int, parent: str | None
    ) -> tuple[str, dict]:
        """The content address of generation ``g``: everything that produced it, parent step included."""
        inputs: dict[str, Any] = {**self._root_inputs, "model": identity(model), "seed": seed, "generation": g}
        if mixer is not None:
            inputs.update(parent=parent, mixer=identity(mixer))
        return digest(inputs), inputs

    def _step(
        self,
        model: Resolved,
        mixer: Resolved | None,
        seed: int,
        g: int,
        parent: str | None,
        data_for: Callable[[], np.ndarray],
        previous: Step | None,
        base: Step | None,
    ) -> Step:
        key, inputs = self.step_key(model, mixer, seed, g, parent)
        with self.cache.lock(key):
            cached = self.cache.load_step(key)
            if cached is not None:
                self.reused += 1

                def load(path: Path = cached.model_dir) -> Model:
                    m = model.make()
                    with blame(f"model {model.label!r} ({model.registered.origin})", "load() from the cache"):
                        m.load(path)
                    return m

                return Step(key, cached.samples, cached.train_rows, cached.timings, loader=load)
            self.computed += 1
            t0 = time.perf_counter()
            data = data_for()
            timings = {"mix": time.perf_counter() - t0} if mixer is not None else {}
            m, samples = self._train(model, seed, g, data, previous, base, timings)
            who = f"model {model.label!r} ({model.registered.origin})"
            with blame(who, "save() into the cache"):
                self.cache.store_step(key, inputs, m.save, samples, len(data), timings)
            return Step(key, samples, len(data), timings, model=m)

    def _train(
        self,
        model: Resolved,
        seed: int,
        g: int,
        data: np.ndarray,
        previous: Step | None,
        base: Step | None,
        timings: dict[str, float],
    ) -> tuple[Model, np.ndarray]:
        protocol = self.plan.protocol
        who = f"model {model.label!r} ({model.registered.origin})"
        where = f"generation {g}, seed {seed}"
        m: Model = model.make()
        t0 = time.perf_counter()
        fit_ctx = FitContext(
            seed=seed,
            generation=g,
            rng=rng_for(seed, g, "fit", model.label),
            training=protocol.training,
            vocab_size=self.real.vocab_size,
            tokenizer=self.real.tokenizer,
            previous=previous.model if previous else None,
            base=base.model if base else None,
            validation=self.real.validation,
        )
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
            real=self.real.train,
        )
        with blame(who, f"sample() at {where}"):
            rows = m.sample(protocol.samples, sample_ctx)
        timings["sample"] = time.perf_counter() - t0
        return m, validators.samples(rows, protocol.samples, self.real, who)

    def _scores(self, model: Resolved, step: Step, base: Step, g: int, seed: int) -> dict[str, float]:
        """Every metric's values for one step, from the cache where they were computed before."""
        scores: dict[str, float] = {}
        model_who = f"model {model.label!r} ({model.registered.origin})"
        for resolved, metric in self.metrics[model.label]:
            metric_key = digest(identity(resolved))
            record = self.cache.load_scores(step.key, metric_key)
            if record is None:
                t0 = time.perf_counter()
                ctx = MetricContext(
                    model=validators.CheckedModel(step.model, model_who, self.real, g),
                    base=validators.CheckedModel(base.model, model_who, self.real, 0),
                    real=self.real,
                    samples=step.samples,
                    generation=g,
                )
                where = f"compute() at generation {g}, seed {seed}"
                who = f"metric {resolved.label!r} ({resolved.registered.origin})"
                with blame(who, where):
                    values = metric.compute(ctx)
                values = validators.metric_values(values, metric.outputs, who)
                record = {
                    "metric": resolved.label,
                    "scores": {metric.qualified(k): v for k, v in values.items()},
                    "seconds": time.perf_counter() - t0,
                }
                self.cache.store_scores(step.key, metric_key, record)
            scores.update(record["scores"])
            step.timings[f"metric:{resolved.label}"] = record["seconds"]
        return scores

    def _record(self, model: Resolved, mixer: Resolved, seed: int, g: int, step: Step, scores: dict) -> None:
        key = {"model": model.label, "mixer": mixer.label, "seed": seed, "generation": g}
        record = {**key, "scores": scores, "timings": step.timings, "train_rows": step.train_rows}
        record.update(shared=g == 0, cached=step.cached, step=step.key)
        kept = self.run.kept.get((model.label, mixer.label, seed, g))
        if kept is not None and kept.get("step") == step.key and not step.cached:
            # The cache no longer had this step, so it was recomputed to go on; the record of the
            # earlier attempt stays, and a difference is said, never hidden.
            if kept.get("scores") != scores:
                self.cache.log(
                    f"{model.label} | {mixer.label} | seed {seed} | generation {g}: recomputed (the cache no longer "
                    "had it) with other values than the earlier attempt recorded; the earlier record is kept"
                )
            record = kept
        self.run.append(RunDir.RECORDS, record)
        self.run.append(RunDir.SAMPLES, {**key, "rows": self.real.decode(step.samples[:SAMPLE_EXCERPT])})
        self.on_step(
            f"{model.label} | {mixer.label} | seed {seed} | generation {g}{' (cached)' if step.cached else ''}"
        )


@dataclass(frozen=True)
class RunConfig:
    """What the user asked for: enough to plan the same run again (resume, ``--retry-failed``)."""

    protocol: str = "quick"
    models: tuple[str, ...] = ()
    mixers: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    dataset: str | None = None
    seeds: int | None = None
    generations: int | None = None
    #: ``--set FIELD=VALUE`` overrides of the protocol's fields.
    sets: tuple[str, ...] = ()

    def make_plan(self, registry: Registry) -> Plan:
        """Resolve the protocol and every SPEC, and cross-check them."""
        protocol = registry.protocol(self.protocol, self.sets).override(
            seeds=self.seeds,
            generations=self.generations,
            dataset=Spec.parse(self.dataset) if self.dataset else None,
        )
        return make_plan(registry, protocol, self.models, self.mixers, self.metrics)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """The config stored in a manifest."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def _declared(component: Resolved, kind: str) -> dict[str, Any]:
    """What a component declared it reads, and the digest of it that entered the cache keys."""
    who = f"{kind} {component.label!r} ({component.registered.origin})"
    instance = component.make()
    digest_ = dependencies_digest(instance, who)  # first: it turns a failing dependencies() into a clean error
    return {"declared": [str(d) for d in instance.dependencies()], "sha256": digest_}


def manifest(plan: Plan, config: RunConfig, run_id: str, argv: Sequence[str]) -> dict[str, Any]:
    """Everything needed to reproduce and to trust the run, written before training starts."""
    from datetime import UTC, datetime

    from collapse_bench.provenance import git_commit, hardware, package_versions

    metrics = {m.label: m for ms in plan.metrics.values() for m in ms}
    instances: dict[str, Metric] = {label: m.make() for label, m in metrics.items()}
    components = [("dataset", plan.dataset), *(("model", m) for m in plan.models)]
    components += [*(("mixer", m) for m in plan.mixers), *(("metric", m) for m in metrics.values())]
    return {
        "run_id": run_id,
        "status": "running",
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": list(argv),
        "config": dataclasses.asdict(config),
        "protocol": plan.protocol.to_dict(),
        "fingerprint": plan.protocol.fingerprint,
        "models": [m.label for m in plan.models],
        "mixers": [m.label for m in plan.mixers],
        "metrics": {label: [m.label for m in ms] for label, ms in plan.metrics.items()},
        "seeds": plan.seeds,
        "directions": {k: v for m in instances.values() for k, v in m.directions().items()},
        "headline": [[label, m.headlines()] for label, m in instances.items()],  # pairs: the order is kept
        "plugins": [
            {
                "kind": kind,
                "spec": str(r.spec),
                "plugin": r.registered.plugin,
                "distribution": r.registered.distribution,
                "version": r.registered.version,
                "dependencies": _declared(r, kind),
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
