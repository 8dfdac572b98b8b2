"""Contract checks for plugin authors: does a component obey the rules the harness relies on?

Run them from your plugin's tests::

    from collapse_bench.contract import check_metric, check_mixer, check_model, check_verifier

    def test_my_model_obeys_the_contract():
        check_model(MyModel, order=2)

Each check builds the component through its declared parameters, exercises it on the real data
of the ``smoke`` protocol (Shakespeare, or a normal sample for vector components) and raises
``AssertionError`` with a message saying which rule is broken. What a component returns is checked
by :mod:`collapse_bench.validators`, the functions the harness runs on every output during a run,
so a check fails with the very message a run would record. The built-in components pass the same
checks in collapse-bench's own test suite.
"""

from __future__ import annotations

import functools
import inspect
import os
import tempfile
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from collapse_bench import validators
from collapse_bench.components import HIGHER, LOGLIK, LOWER, MOMENTS, Component, Dataset, Metric, Mixer, Model, Verifier
from collapse_bench.contexts import FitContext, MetricContext, MixContext, RealData, SampleContext, VerifyContext
from collapse_bench.data import prepare
from collapse_bench.errors import PluginError

#: Rows drawn per check: enough to exercise a component, few enough to take a moment.
ROWS = 64


@functools.cache
def real_data(modality: str) -> RealData:
    """Small real data of the ``smoke`` protocol: Shakespeare (text) or standard normal draws (vector)."""
    from collapse_bench.builtin.datasets import Normal, Shakespeare
    from collapse_bench.plugins import get_registry
    from collapse_bench.specs import Spec

    protocol = get_registry().protocol("smoke")
    if modality == "text":
        return prepare(Shakespeare(genres="roman"), protocol)
    vector = protocol.override(dataset=Spec("normal", {"dim": 3, "n": 2000}))
    return prepare(Normal(dim=3, n=2000), vector)


def check_declaration(cls: type[Component]) -> None:
    """Name, description, and parameters declared as annotated keyword-only arguments."""
    assert isinstance(getattr(cls, "name", None), str) and cls.name, f"{cls.__name__} has no `name`"
    assert cls.summary(), f"{cls.name}: give the class a docstring or `description` (shown by `collapse-bench list`)"
    sig = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    for p in list(sig.parameters.values())[1:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        assert p.kind is p.KEYWORD_ONLY, f"{cls.name}: parameter {p.name!r} must be keyword-only (after `*`)"
        assert p.name in hints, f"{cls.name}: parameter {p.name!r} needs a type annotation"


def check_dependencies(component: Component) -> None:
    """``dependencies()`` declares files as paths that exist and other inputs as identifying strings."""
    name = type(component).name
    declared = component.dependencies()
    assert isinstance(declared, list | tuple), f"{name}: dependencies() must return a list"
    for entry in declared:
        assert isinstance(entry, str | os.PathLike), (
            f"{name}: dependencies() holds {entry!r}; declare files as pathlib.Path, other inputs as strings"
        )
        if isinstance(entry, os.PathLike):
            assert Path(entry).exists(), f"{name}: declared dependency {str(entry)!r} does not exist"
        else:
            assert not Path(entry).exists(), (
                f"{name}: dependency {entry!r} is a path given as a string, so its content would not be hashed; "
                "declare it as pathlib.Path"
            )


def _fit_ctx(real: RealData, rng: np.random.Generator) -> FitContext:
    return FitContext(
        seed=0,
        generation=0,
        rng=rng,
        training={},
        train_size=len(real.train),
        vocab_size=real.vocab_size,
        tokenizer=real.tokenizer,
    )


def _sample_ctx(real: RealData, seed: int, prompts: np.ndarray) -> SampleContext:
    length = real.train.shape[1] if real.modality == "text" else None
    return SampleContext(rng=np.random.default_rng(seed), length=length, prompts=prompts, tokenizer=real.tokenizer)


@contextmanager
def _rules() -> Iterator[None]:
    """Report a broken output rule of :mod:`collapse_bench.validators` as a failed check, same message."""
    try:
        yield
    except PluginError as exc:
        raise AssertionError(str(exc)) from None


def check_model(cls: type[Model], **params: Any) -> Model:
    """Fit, sample, score, save and load; returns the fitted model for further checks of your own."""
    check_declaration(cls)
    assert cls.modality in ("text", "vector"), f"{cls.name}: modality must be 'text' or 'vector'"
    real = real_data(cls.modality)
    data = real.train[: ROWS * 2]
    model = cls(**params)
    check_dependencies(model)
    model.fit(data, _fit_ctx(real, np.random.default_rng(0)))
    view = validators.CheckedModel(model, f"model {cls.name!r}", real, generation=0)
    with _rules():
        rows = validators.samples(model.sample(ROWS, _sample_ctx(real, 1, data)), ROWS, real, f"model {cls.name!r}")
        if LOGLIK in cls.capabilities:
            view.nll(real.test[:ROWS])
        if MOMENTS in cls.capabilities:
            view.moments()
    again = model.sample(ROWS, _sample_ctx(real, 1, data))
    assert np.array_equal(rows, again), f"{cls.name}: the same rng must give the same samples (use ctx.rng only)"
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        restored = cls(**params)
        restored.load(Path(tmp))
    assert np.array_equal(restored.sample(ROWS, _sample_ctx(real, 1, data)), rows), (
        f"{cls.name}: a model restored by load() must sample what the saved one did"
    )
    return model


def check_mixer(cls: type[Mixer], **params: Any) -> None:
    """Build a training set twice from the same inputs: valid rows, the same both times.

    Each synthetic set of the history has ``candidates(sample_size)`` rows, and every verifier
    the mixer names gets one score per row (standard normal draws, standing in for a verifier).
    """
    check_declaration(cls)
    real = real_data("text")
    with _rules():
        n = validators.candidates(cls(**params).candidates(ROWS), ROWS, f"mixer {cls.name!r}")
    pick = np.random.default_rng(0)
    history = [real.train[pick.choice(len(real.train), size=n)] for _ in range(3)]
    scores = {text: [pick.standard_normal(n) for _ in history] for text in cls(**params).verifiers()}

    check_dependencies(cls(**params))

    def mix() -> np.ndarray:
        ctx = MixContext(
            real, history, generation=3, rng=np.random.default_rng(0), sample_size=ROWS, generations=5, scores=scores
        )
        return cls(**params).mix(ctx)

    with _rules():
        out = validators.training_set(mix(), real, f"mixer {cls.name!r}")
    assert np.array_equal(out, mix()), f"{cls.name}: the same rng must give the same training set (use ctx.rng only)"


def check_metric(
    cls: type[Metric], model: Model | None = None, real: RealData | None = None, **params: Any
) -> dict[str, float]:
    """Compute on a fitted model of a fitting kind: declared outputs only, real numbers, deterministic.

    ``real`` replaces the ``smoke`` protocol's data, for metrics that need more of it (the true
    parameters of a synthetic dataset); it must match ``model``'s rows.
    """
    check_declaration(cls)
    declared = cls(**params)  # outputs may depend on the parameters, so read them from an instance
    assert declared.outputs, f"{cls.name}: declare `outputs`"
    assert all(d in (HIGHER, LOWER) for d in declared.outputs.values()), f"{cls.name}: directions are HIGHER or LOWER"
    assert set(declared.headline) <= set(declared.outputs), f"{cls.name}: `headline` names values not in `outputs`"
    modality = next(iter(sorted(cls.modalities)))
    real = real or real_data(modality)
    if model is None:
        from collapse_bench.builtin.models import GaussianModel, NgramModel

        model = check_model(NgramModel if modality == "text" else GaussianModel)
    samples = model.sample(ROWS, _sample_ctx(real, 2, real.train))
    who = f"model {model.name!r}"
    ctx = MetricContext(
        model=validators.CheckedModel(model, who, real, generation=1),
        base=validators.CheckedModel(model, who, real, generation=0),
        real=real,
        samples=samples,
        generation=1,
    )
    check_dependencies(cls(**params))
    with _rules():
        values = validators.metric_values(cls(**params).compute(ctx), declared.outputs, f"metric {cls.name!r}")
    assert values == cls(**params).compute(ctx), f"{cls.name}: the same inputs must give the same values"
    return values


def check_verifier(cls: type[Verifier], model: Model | None = None, **params: Any) -> np.ndarray:
    """Score a fitted model's samples twice: one real number per row (no NaN), the same both times.

    ``model`` defaults to the built-in n-gram (text) or Gaussian (vector) model; it serves as
    both M_g and M_0. Returns the scores for further checks of your own.
    """
    check_declaration(cls)
    assert cls.modalities and cls.modalities <= {"text", "vector"}, f"{cls.name}: modalities are 'text'/'vector'"
    modality = next(iter(sorted(cls.modalities)))
    real = real_data(modality)
    if model is None:
        from collapse_bench.builtin.models import GaussianModel, NgramModel

        model = check_model(NgramModel if modality == "text" else GaussianModel)
    missing = cls.requires - model.capabilities
    assert not missing, f"{cls.name}: requires {sorted(missing)}, which model {model.name!r} does not provide"
    rows = model.sample(ROWS, _sample_ctx(real, 3, real.train))
    who = f"model {model.name!r}"
    ctx = VerifyContext(
        model=validators.CheckedModel(model, who, real, generation=1),
        base=validators.CheckedModel(model, who, real, generation=0),
        real=real,
        generation=1,
    )
    with _rules():
        scores = validators.verifier_scores(cls(**params).score(rows, ctx), ROWS, f"verifier {cls.name!r}")
    assert np.array_equal(scores, cls(**params).score(rows, ctx)), f"{cls.name}: the same rows must score the same"
    return scores


def check_dataset(cls: type[Dataset], **params: Any) -> None:
    """Load twice: documents (text) or a 2-D float array (vector), the same both times."""
    check_declaration(cls)
    check_dependencies(cls(**params))
    first, second = cls(**params).load(), cls(**params).load()
    if cls.modality == "text":
        assert isinstance(first, list) and all(isinstance(d, str) for d in first), f"{cls.name}: load() gives strings"
        assert first == second, f"{cls.name}: load() must give the same documents every time"
    else:
        arr = np.asarray(first, dtype=float)
        assert arr.ndim == 2, f"{cls.name}: load() must give a 2-D array (rows, dim)"
        assert np.array_equal(arr, np.asarray(second, dtype=float)), f"{cls.name}: load() must be deterministic"
