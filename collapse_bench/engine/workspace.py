"""Computing one step: mix, train, sample and score a generation, or read it back from the cache.

A :class:`Workspace` lives in every process that computes steps (the driver for the ``local``
executor, each worker otherwise). It works from a :class:`StepSpec` alone: earlier generations
come from memory when this process made them, else from the cache by key. Random streams are
derived from (seed, generation, role, component label) only, so a step's result does not depend
on where or in which order it runs.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collapse_bench import validators
from collapse_bench.cache import Cache
from collapse_bench.components import FitContext, MetricContext, MixContext, Model, RealData, SampleContext
from collapse_bench.engine.graph import StepSpec
from collapse_bench.errors import ComponentError, DiskFullError
from collapse_bench.keys import metric_key
from collapse_bench.plan import ChosenComponent, Plan, blame
from collapse_bench.provenance import threads

#: Decoded synthetic rows kept per (cell, generation) in ``samples.jsonl``.
SAMPLE_EXCERPT = 8


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(seed: int, generation: int, role: str, *components: str) -> np.random.Generator:
    """A random stream that depends only on its arguments."""
    return np.random.default_rng(np.random.SeedSequence([seed, generation, _stable(role), *map(_stable, components)]))


@dataclass
class StepResult:
    """What the driver records for one step: its scores and excerpt, or why it failed.

    Plain data, so that it travels back from worker processes and Ray tasks.
    """

    key: str
    scores: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    train_rows: int = 0
    #: Whether the trained generation was read back from the cache rather than computed.
    cached: bool = False
    #: Intra-op threads of the process that trained and sampled it (``None`` when read from the cache).
    threads: int | None = None
    excerpt: list[str] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    #: Not computed because an earlier generation failed (that failure is the one recorded).
    skipped: bool = False


class _Trained:
    """A generation in memory: its samples now, its model when first asked for (from the cache)."""

    def __init__(self, key: str, samples: np.ndarray, cache: Cache, model: Model | None = None) -> None:
        self.key, self.samples, self.cache, self.loaded = key, samples, cache, model

    def model(self, chosen: ChosenComponent) -> Model:
        if self.loaded is None:
            cached = self.cache.load_step(self.key)
            if cached is None:
                raise RuntimeError(f"step {self.key[:12]} vanished from the cache {self.cache.root}")
            m = chosen.make()
            with blame(chosen.who, "load() from the cache"):
                m.load(cached.model_dir)
            self.loaded = m
        return self.loaded


class Workspace:
    """One process's means to compute steps of a plan over its real data and cache."""

    def __init__(self, plan: Plan, real: RealData, cache: Cache) -> None:
        self.plan, self.real, self.cache = plan, real, cache
        self.models = {m.label: m for m in plan.models}
        self.mixers = {m.label: m for m in plan.mixers}
        self.metrics = {label: [(m, m.make(), metric_key(m)) for m in ms] for label, ms in plan.metrics.items()}
        self._mixer_objects: dict[str, Any] = {}
        self._memory: dict[str, _Trained] = {}

    def run(self, step: StepSpec) -> StepResult:
        """Compute ``step`` (or read it back); a plugin's exception becomes the result's error.

        A full disk is raised instead: it is not the cell's fault, and it stops the run.
        """
        try:
            return self._run(step)
        except DiskFullError:
            raise  # not the cell's fault: every later write would fail too
        except Exception as exc:
            tb = exc.traceback if isinstance(exc, ComponentError) else "".join(traceback.format_exception(exc))
            return StepResult(step.key, error=str(exc), traceback=tb)

    def _trained(self, key: str) -> _Trained:
        if key not in self._memory:
            cached = self.cache.load_step(key)
            if cached is None:
                raise RuntimeError(f"step {key[:12]} is neither in memory nor in the cache {self.cache.root}")
            self._memory[key] = _Trained(key, cached.samples, self.cache)
        return self._memory[key]

    def _forget_models(self, keep: set[str | None]) -> None:
        """Keep at most the models this step needs (its parent and generation 0); samples stay."""
        for key, trained in self._memory.items():
            if key not in keep:
                trained.loaded = None

    def _run(self, step: StepSpec) -> StepResult:
        model = self.models[step.model]
        self._forget_models({step.parent, step.base})
        result = StepResult(step.key)
        with self.cache.lock(step.key):
            cached = self.cache.load_step(step.key)
            if cached is not None:
                self._memory[step.key] = _Trained(step.key, cached.samples, self.cache)
                result.cached, result.train_rows, result.timings = True, cached.train_rows, dict(cached.timings)
            else:
                self._compute(step, model, result)
        trained = self._memory[step.key]
        base = self._trained(step.base) if step.base else trained
        result.scores = self._scores(step, model, trained, base, result.timings)
        result.excerpt = self.real.decode(trained.samples[:SAMPLE_EXCERPT])
        return result

    def _compute(self, step: StepSpec, model: ChosenComponent, result: StepResult) -> None:
        protocol, g, seed = self.plan.protocol, step.generation, step.seed
        where = f"generation {g}, seed {seed}"
        if step.mixer is None:
            data = self.real.train
        else:
            mixer = self.mixers[step.mixer]
            mix = self._mixer_objects.setdefault(mixer.label, mixer.make())
            t0 = time.perf_counter()
            ctx = MixContext(
                real=self.real,
                history=[self._trained(k).samples for k in step.history],
                generation=g,
                rng=rng_for(seed, g, "mix", mixer.label),
                sample_size=protocol.samples,
                generations=protocol.generations,
            )
            with blame(mixer.who, f"mix() for {where}"):
                rows = mix.mix(ctx)
            data = validators.training_set(rows, self.real, mixer.who)
            result.timings["mix"] = time.perf_counter() - t0
        m: Model = model.make()
        t0 = time.perf_counter()
        fit_ctx = FitContext(
            seed=seed,
            generation=g,
            rng=rng_for(seed, g, "fit", model.label),
            training=protocol.training,
            train_size=len(self.real.train),
            vocab_size=self.real.vocab_size,
            tokenizer=self.real.tokenizer,
            previous=self._trained(step.parent).model(model) if step.parent else None,
            base=self._trained(step.base).model(model) if step.base else None,
            validation=self.real.validation,
        )
        with blame(model.who, f"fit() at {where}"):
            m.fit(data, fit_ctx)
        result.timings["fit"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample_ctx = SampleContext(
            rng=rng_for(seed, g, "sample", model.label),
            length=self.real.train.shape[1] if self.real.modality == "text" else None,
            decoding=protocol.decoding,
            prompts=data,
            tokenizer=self.real.tokenizer,
            real=self.real.train,
        )
        with blame(model.who, f"sample() at {where}"):
            rows = m.sample(protocol.samples, sample_ctx)
        samples = validators.samples(rows, protocol.samples, self.real, model.who)
        result.timings["sample"] = time.perf_counter() - t0
        result.train_rows = len(data)
        result.threads = threads()
        with blame(model.who, "save() into the cache"):
            self.cache.store_step(step.key, step.inputs, m.save, samples, len(data), result.timings)
        self._memory[step.key] = _Trained(step.key, samples, self.cache, model=m)

    def _scores(
        self, step: StepSpec, model: ChosenComponent, trained: _Trained, base: _Trained, timings: dict[str, float]
    ) -> dict[str, float]:
        """Every metric's values for one step, from the cache where they were computed before."""
        scores: dict[str, float] = {}
        g, seed = step.generation, step.seed
        for chosen, metric, address in self.metrics[model.label]:
            record = self.cache.load_scores(step.key, address)
            if record is None:
                t0 = time.perf_counter()
                ctx = MetricContext(
                    model=validators.CheckedModel(trained.model(model), model.who, self.real, g),
                    base=validators.CheckedModel(base.model(model), model.who, self.real, 0),
                    real=self.real,
                    samples=trained.samples,
                    generation=g,
                )
                with blame(chosen.who, f"compute() at generation {g}, seed {seed}"):
                    values = metric.compute(ctx)
                values = validators.metric_values(values, metric.outputs, chosen.who)
                record = {
                    "metric": chosen.label,
                    "scores": {metric.qualified(k): v for k, v in values.items()},
                    "seconds": time.perf_counter() - t0,
                }
                self.cache.store_scores(step.key, address, record)
            scores.update(record["scores"])
            timings[f"metric:{chosen.label}"] = record["seconds"]
        return scores
