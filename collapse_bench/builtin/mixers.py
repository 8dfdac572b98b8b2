"""Built-in data-mixing strategies from the model-collapse literature.

Every mixer returns the training rows of generation g+1 from the real training rows and the
synthetic sets S_0..S_g. ``n`` below is the protocol's ``samples`` (synthetic rows per generation).

Curation (``select``) is selection after sampling, by a verifier's score of each candidate; it
differs from sampling bias, which is a decoding setting (``temperature``, ``top_k``, ``top_p``)
that changes the distribution each row is drawn from. Both favour likely rows when the verifier
is ``model-likelihood``, but selection draws more candidates than it keeps and can use any
scorer, including ones that never saw the synthetic data.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from collapse_bench import hookimpl
from collapse_bench.components import Mixer
from collapse_bench.contexts import MixContext
from collapse_bench.errors import ConfigError, DataError
from collapse_bench.specs import Spec


def _fraction(value: float, mixer: str) -> float:
    if not 0 <= value <= 1:
        raise ConfigError(f"{mixer} fraction is {value}", "choose a fraction between 0 and 1")
    return value


def _with_real(ctx: MixContext, real: np.ndarray, fraction: float) -> np.ndarray:
    """``round(fraction * n)`` rows of ``real`` drawn at random plus the rest from S_g: n rows."""
    synthetic = ctx.history[-1]
    n = len(synthetic)
    k = round(fraction * n)
    keep_real = real[ctx.rng.choice(len(real), size=k, replace=False)]
    keep_syn = synthetic[ctx.rng.choice(n, size=n - k, replace=False)]
    return np.concatenate([keep_real, keep_syn])


class Replace(Mixer):
    """Train only on the previous generation's samples: D_{g+1} = S_g (the fully synthetic loop)."""

    name = "replace"

    def mix(self, ctx: MixContext) -> np.ndarray:
        return ctx.history[-1]


class KeepReal(Mixer):
    """S_g with a fraction of its rows swapped for real rows redrawn each generation (Shumailov et al. 2024)."""

    name = "keep-real"

    def __init__(self, *, fraction: float = 0.1) -> None:
        """``fraction``: share of the n training rows that are real (0.1 in Shumailov et al. 2024)."""
        self.fraction = _fraction(fraction, self.name)

    def mix(self, ctx: MixContext) -> np.ndarray:
        return _with_real(ctx, ctx.real.train, self.fraction)

    def check_data(self, real, protocol) -> None:
        if round(self.fraction * protocol.samples) > len(real.train):
            raise DataError(
                f"keep-real:fraction={self.fraction} needs {round(self.fraction * protocol.samples)} real rows, "
                f"the training split has {len(real.train)}",
                "lower the fraction or raise the protocol's train_size",
            )


class Accumulate(Mixer):
    """Real data plus every synthetic set so far: D_{g+1} = real + S_0 + ... + S_g (Gerstgrasser et al. 2024)."""

    name = "accumulate"

    def mix(self, ctx: MixContext) -> np.ndarray:
        return np.concatenate([ctx.real.train, *ctx.history])


class AccumulateSubsample(Mixer):
    """Accumulate, then draw a fixed number of rows without replacement (Kazdan et al. 2024)."""

    name = "accumulate-subsample"

    def __init__(self, *, size: int = 0) -> None:
        """``size``: training rows per generation; 0 means the protocol's ``samples``, as under replace."""
        if size < 0:
            raise ConfigError(f"accumulate-subsample size is {size}", "give size >= 0 (0 = the protocol's samples)")
        self.size = size

    def mix(self, ctx: MixContext) -> np.ndarray:
        pool = np.concatenate([ctx.real.train, *ctx.history])
        size = min(self.size or ctx.sample_size, len(pool))
        return pool[np.sort(ctx.rng.choice(len(pool), size=size, replace=False))]


class FreshReal(Mixer):
    """S_g with a fraction of rows swapped for never-seen real rows from outside D_0 (Alemohammad et al. 2023)."""

    name = "fresh-real"

    def __init__(self, *, fraction: float = 0.1) -> None:
        """``fraction``: share of the n training rows that are fresh real rows, new every generation."""
        self.fraction = _fraction(fraction, self.name)

    def _per_generation(self, sample_size: int) -> int:
        return round(self.fraction * sample_size)

    def mix(self, ctx: MixContext) -> np.ndarray:
        k = self._per_generation(len(ctx.history[-1]))
        fresh = ctx.real.pool[(ctx.generation - 1) * k : ctx.generation * k]
        return _with_real(ctx, fresh, self.fraction)

    def check_data(self, real, protocol) -> None:
        need = self._per_generation(protocol.samples) * (protocol.generations - 1)
        if need > len(real.pool):
            raise DataError(
                f"fresh-real:fraction={self.fraction} needs {need} real rows outside the training and test "
                f"splits over {protocol.generations} generations; "
                f"dataset {protocol.dataset.name!r} has {len(real.pool)}",
                "lower the fraction, use fewer generations, or use a larger dataset",
            )


def over(sample_size: int, factor: float) -> int:
    """``ceil(factor * sample_size)``, without the float noise that makes ``ceil(100 / 0.1)`` 1001."""
    exact = factor * sample_size
    return round(exact) if math.isclose(exact, round(exact)) else math.ceil(exact)


class Select(Mixer):
    """Draw n / keep candidates, keep the n a verifier scores highest (Feng et al. 2024; Qiao et al.).

    ``pool=replace`` trains on the kept rows of the last generation; ``pool=accumulate`` on the
    real data plus the kept rows of every generation so far. Kept rows stay in the order they
    were drawn; ties keep the earlier row. With ``keep=1`` it is ``replace`` or ``accumulate``.
    """

    name = "select"

    def __init__(
        self,
        *,
        verifier: str = "model-likelihood",
        keep: float = 0.1,
        pool: Literal["replace", "accumulate"] = "replace",
    ) -> None:
        """``verifier``: SPEC of the scorer (quote it if it has parameters); ``keep``: the kept share of the
        candidates, in (0, 1] (Qiao et al.'s alpha); ``pool``: replace or accumulate the kept rows."""
        if not 0 < keep <= 1:
            raise ConfigError(f"select keep is {keep}", "choose keep in (0, 1]: the share of the candidates kept")
        Spec.parse(verifier)
        self.verifier, self.keep, self.pool = verifier, keep, pool

    def candidates(self, sample_size: int) -> int:
        return over(sample_size, 1 / self.keep)

    def verifiers(self) -> tuple[str, ...]:
        return (self.verifier,)

    def mix(self, ctx: MixContext) -> np.ndarray:
        scores = ctx.scores[self.verifier]
        chosen = range(len(ctx.history)) if self.pool == "accumulate" else [len(ctx.history) - 1]
        kept = []
        for j in chosen:
            best = np.argsort(-scores[j], kind="stable")[: ctx.sample_size]
            kept.append(ctx.history[j][np.sort(best)])
        return np.concatenate([ctx.real.train, *kept]) if self.pool == "accumulate" else kept[0]


class Augment(Mixer):
    """All real data plus ratio x n fresh synthetic rows of the last generation (Bertrand et al. 2024)."""

    name = "augment"

    def __init__(self, *, ratio: float = 1.0) -> None:
        """``ratio``: synthetic rows per generation as a multiple of n (their lambda)."""
        if ratio < 0:
            raise ConfigError(f"augment ratio is {ratio}", "give ratio >= 0")
        self.ratio = ratio

    def candidates(self, sample_size: int) -> int:
        return max(sample_size, over(sample_size, self.ratio))

    def mix(self, ctx: MixContext) -> np.ndarray:
        return np.concatenate([ctx.real.train, ctx.history[-1][: over(ctx.sample_size, self.ratio)]])


@hookimpl
def register_mixers(register):
    for cls in (Replace, KeepReal, Accumulate, AccumulateSubsample, FreshReal, Select, Augment):
        register(cls)
