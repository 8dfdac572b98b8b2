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
from collapse_bench.components import Mixer, Model
from collapse_bench.contexts import FitContext, MetricContext, MixContext, RealData, SampleContext, VerifyContext
from collapse_bench.engine.graph import StepSpec
from collapse_bench.errors import ComponentError, DiskFullError
from collapse_bench.keys import metric_key, verifier_key
from collapse_bench.plan import ChosenComponent, Plan, blame
from collapse_bench.provenance import threads

#: Decoded synthetic rows kept per (cell, generation) in ``samples.jsonl``.
SAMPLE_EXCERPT = 8


#: Verifier scores computed for a step, to be stored once its lock is released: (step key, address, record).
_Fresh = list[tuple[str, str, dict[str, Any]]]


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
        self.verifiers = {text: (v, v.make()) for text, v in plan.verifiers.items()}
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
        verified: _Fresh = []
        with self.cache.lock(step.key):
            cached = self.cache.load_step(step.key)
            if cached is not None:
                self._memory[step.key] = _Trained(step.key, cached.samples, self.cache)
                result.cached, result.train_rows, result.timings = True, cached.train_rows, dict(cached.timings)
            else:
                self._compute(step, model, result, verified)
        # Verifier scores belong to earlier steps, whose lock may share this step's stripe (or be
        # held by another process waiting for this one): they are stored once this lock is released.
        for key, address, record in verified:
            self.cache.store_scores(key, address, record)
        trained = self._memory[step.key]
        base = self._trained(step.base) if step.base else trained
        result.scores = self._scores(step, model, trained, base, result.timings)
        result.excerpt = self.real.decode(trained.samples[:SAMPLE_EXCERPT])
        return result

    def _compute(
        self,
        step: StepSpec,
        model: ChosenComponent,
        result: StepResult,
        verified: _Fresh,
    ) -> None:
        """Mix, fit, sample and store step ``step``; verifier scores computed on the way go to ``verified``."""
        protocol, g, seed = self.plan.protocol, step.generation, step.seed
        where = f"generation {g}, seed {seed}"
        if step.mixer is None:
            data = self.real.train
        else:
            mixer = self.mixers[step.mixer]
            mix = self._mixer_objects.setdefault(mixer.label, mixer.make())
            t0 = time.perf_counter()
            history = [self._candidates(model, step.base, seed, step.candidates)]
            history += [self._trained(k).samples for k in step.history[1:]]
            ctx = MixContext(
                real=self.real,
                history=history,
                generation=g,
                rng=rng_for(seed, g, "mix", mixer.label),
                sample_size=protocol.samples,
                generations=protocol.generations,
                scores=self._verified(step, model, mix, history, verified),
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
        samples = self._sample(model, m, seed, g, step.candidates, data)
        result.timings["sample"] = time.perf_counter() - t0
        result.train_rows = len(data)
        result.threads = threads()
        with blame(model.who, "save() into the cache"):
            self.cache.store_step(step.key, step.inputs, m.save, samples, len(data), result.timings)
        self._memory[step.key] = _Trained(step.key, samples, self.cache, model=m)

    def _sample(self, model: ChosenComponent, m: Model, seed: int, g: int, n: int, prompts: np.ndarray) -> np.ndarray:
        """``n`` rows from ``m`` on generation ``g``'s sampling stream, checked against the contract."""
        sample_ctx = SampleContext(
            rng=rng_for(seed, g, "sample", model.label),
            length=self.real.train.shape[1] if self.real.modality == "text" else None,
            decoding=self.plan.protocol.decoding,
            prompts=prompts,
            tokenizer=self.real.tokenizer,
            real=self.real.train,
        )
        with blame(model.who, f"sample() at generation {g}, seed {seed}"):
            rows = m.sample(n, sample_ctx)
        return validators.samples(rows, n, self.real, model.who)

    def _candidates(self, model: ChosenComponent, base: str, seed: int, n: int) -> np.ndarray:
        """``n`` rows of the shared generation-0 model ``base``: its own samples, or candidates drawn once.

        A mixer that over-generates draws its generation-0 candidates from the one generation-0
        model; they are cached beside it, so every mixer asking for as many reuses them. The draw
        uses generation 0's sampling stream, so it begins with the plain samples wherever the
        model samples row by row. (No lock: the write is atomic and a race draws the same rows.)
        """
        if n == self.plan.protocol.samples:
            return self._trained(base).samples
        rows = self.cache.load_candidates(base, n)
        if rows is None:
            rows = self._sample(model, self._trained(base).model(model), seed, 0, n, self.real.train)
            self.cache.store_candidates(base, n, rows)
        return rows

    def _verified(
        self,
        step: StepSpec,
        model: ChosenComponent,
        mix: Mixer,
        history: list[np.ndarray],
        fresh: _Fresh,
    ) -> dict[str, list[np.ndarray]]:
        """The scores of every candidate set of the chain by each verifier the mixer names, cached per set.

        The candidates of generation j are scored with M_j as ``VerifyContext.model``: usually
        this step's parent, in memory, since earlier sets were scored (and cached) by earlier steps.
        Scores not found in the cache are appended to ``fresh`` as (step key, address, record), for
        the caller to store outside this step's lock.
        """
        with blame(self.mixers[step.mixer].who, "verifiers()"):
            wanted = mix.verifiers()
        scores: dict[str, list[np.ndarray]] = {}
        for text in wanted:
            chosen, verifier = self.verifiers[text]
            scores[text] = []
            for j, (key, rows) in enumerate(zip(step.history, history, strict=True)):
                address = verifier_key(chosen, len(rows))
                record = self.cache.load_scores(key, address)
                if record is None:
                    ctx = VerifyContext(
                        model=validators.CheckedModel(self._trained(key).model(model), model.who, self.real, j),
                        base=validators.CheckedModel(self._trained(step.base).model(model), model.who, self.real, 0),
                        real=self.real,
                        generation=j,
                    )
                    with blame(chosen.who, f"score() at generation {j}, seed {step.seed}"):
                        out = verifier.score(rows, ctx)
                    values = validators.verifier_scores(out, len(rows), chosen.who)
                    record = {"verifier": chosen.label, "scores": values.tolist()}
                    fresh.append((key, address, record))
                scores[text].append(np.asarray(record["scores"], dtype=np.float64))
        return scores

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
                    samples=trained.samples[: self.plan.protocol.samples],
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
