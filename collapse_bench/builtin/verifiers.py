"""Built-in verifiers: likelihood under M_0, under M_g, under a reference model of real data, and
Qiao et al.'s biased target distance for vectors. Curation mixers such as ``select`` keep the
candidates they score highest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench import hookimpl
from collapse_bench.components import LOGLIK, Model, Verifier
from collapse_bench.contexts import FitContext, VerifyContext
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.data import RealData
    from collapse_bench.protocol import Protocol


def mean_loglik(model: Model, rows: np.ndarray) -> np.ndarray:
    """Per-row log-likelihood: mean over tokens (text) or of the point (vector); ``-inf`` for impossible rows."""
    nll = np.asarray(model.nll(rows), dtype=np.float64)
    return -(nll.mean(axis=1) if nll.ndim == 2 else nll)


class BaseLikelihood(Verifier):
    """Mean per-token log-likelihood under M_0, the chain's generation-0 model (fitted on real data)."""

    name = "base-likelihood"
    modalities = frozenset({"text", "vector"})
    requires = frozenset({LOGLIK})

    def score(self, rows: np.ndarray, ctx: VerifyContext) -> np.ndarray:
        return mean_loglik(ctx.base, rows)


class ModelLikelihood(Verifier):
    """Mean per-token log-likelihood under M_g, the model that drew the rows: the sampling-bias direction."""

    name = "model-likelihood"
    modalities = frozenset({"text", "vector"})
    requires = frozenset({LOGLIK})

    def score(self, rows: np.ndarray, ctx: VerifyContext) -> np.ndarray:
        return mean_loglik(ctx.model, rows)


class RealLikelihood(Verifier):
    """Mean per-token log-likelihood under a model of its own, fitted once on the real training split.

    An imperfect external verifier, as in Feng et al. 2024: a different (usually weaker) model
    than the one that collapses, trained only on real data, with its default training settings
    and seed 0.
    """

    name = "real-likelihood"
    modalities = frozenset({"text", "vector"})

    def __init__(self, *, model: str = "ngram:order=2") -> None:
        """``model``: SPEC of the reference model (needs log-likelihoods); quote it inside a mixer SPEC."""
        from collapse_bench.plugins import get_registry
        from collapse_bench.specs import Spec, resolve_params

        spec = Spec.parse(model)
        cls = get_registry().component("model", spec.name)
        if LOGLIK not in cls.capabilities:
            raise ConfigError(
                f"real-likelihood's model {model!r} does not compute log-likelihoods",
                "choose a model with the loglik capability (`collapse-bench list` shows them)",
            )
        self.model_spec = model
        self._cls, self._params = cls, resolve_params(cls, spec, "model")
        self._reference: Model | None = None

    def check(self, protocol: Protocol) -> None:
        from collapse_bench.plugins import get_registry

        modality = get_registry().component("dataset", protocol.dataset.name).modality
        if self._cls.modality != modality:
            raise ConfigError(
                f"real-likelihood's model {self.model_spec!r} works on {self._cls.modality} data, "
                f"but protocol {protocol.label} has {modality} data",
                f"give real-likelihood a {modality} model, e.g. real-likelihood:model=gaussian for vectors",
            )

    def _fitted(self, real: RealData) -> Model:
        if self._reference is None:
            reference = self._cls(**self._params)
            ctx = FitContext(
                seed=0,
                generation=0,
                rng=np.random.default_rng(0),
                training={},
                vocab_size=real.vocab_size,
                tokenizer=real.tokenizer,
            )
            reference.fit(real.train, ctx)
            self._reference = reference
        return self._reference

    def score(self, rows: np.ndarray, ctx: VerifyContext) -> np.ndarray:
        return mean_loglik(self._fitted(ctx.real), rows)


class TargetDistance(Verifier):
    """Minus the squared Mahalanobis distance to a shifted target mean: Qiao et al.'s biased selection.

    The target is ``u = mu + shift * z`` with ``z ~ N(0, 1)`` (drawn with ``seed``) in a random
    half of the dimensions and 0 in the others; the distance is measured under
    ``(scale * Sigma)^-1``. ``mu`` and ``Sigma`` are the data's true mean and covariance when the
    dataset knows them (``Dataset.truth``: ``mean``, ``cov``), else the maximum-likelihood ones
    of the real training split.
    """

    name = "target-distance"
    modalities = frozenset({"vector"})

    def __init__(self, *, scale: float = 0.3, shift: float = 3.0, seed: int = 0) -> None:
        """``scale``: covariance multiplier (0.3 in Qiao et al.); ``shift``: target offset in standard normals."""
        if scale <= 0:
            raise ConfigError(f"target-distance scale is {scale}", "give a scale > 0")
        self.scale, self.shift, self.seed = scale, shift, seed
        self._target: tuple[np.ndarray, np.ndarray] | None = None

    def target(self, real: RealData) -> tuple[np.ndarray, np.ndarray]:
        """The target mean and the inverse of the scaled covariance."""
        if self._target is None:
            if "mean" in real.truth and "cov" in real.truth:
                mean, cov = real.truth["mean"], real.truth["cov"]
            else:
                mean, cov = real.train.mean(axis=0), np.cov(real.train, rowvar=False, ddof=0)
            mean, cov = np.atleast_1d(mean), np.atleast_2d(cov)
            dim = len(mean)
            rng = np.random.default_rng(self.seed)
            shifted = rng.permutation(dim)[: dim // 2 or 1]
            offset = np.zeros(dim)
            offset[shifted] = self.shift * rng.standard_normal(len(shifted))
            self._target = (mean + offset, np.linalg.inv(self.scale * cov))
        return self._target

    def score(self, rows: np.ndarray, ctx: VerifyContext) -> np.ndarray:
        target, precision = self.target(ctx.real)
        centred = rows - target
        return -np.einsum("ij,jk,ik->i", centred, precision, centred)


@hookimpl
def register_verifiers(register):
    for cls in (BaseLikelihood, ModelLikelihood, RealLikelihood, TargetDistance):
        register(cls)
