"""The component contract: what a dataset, model, mixer, verifier and metric must provide.

What they receive (the real data, and a context for each call) is in :mod:`collapse_bench.contexts`.
Plugins register subclasses of these classes (see :mod:`collapse_bench.hookspecs`). The harness
instantiates a component with the keyword parameters of a SPEC (``ngram:order=3``); the
component's ``__init__`` signature, with type annotations and defaults, *is* its parameter
declaration, so every parameter is validated before anything is trained.

Data flows between components as 2-D numpy arrays, one row per unit:

* ``text`` modality: ``int`` arrays of shape ``(n, block_tokens)`` holding token ids of the
  run's tokenizer (ids are in ``range(vocab_size)``).
* ``vector`` modality: ``float`` arrays of shape ``(n, dim)``.

What ``sample``, ``nll``, ``moments``, ``mix`` and ``compute`` may return is checked, at run time
and by :mod:`collapse_bench.contract`, against the rules listed in :mod:`collapse_bench.validators`.
"""

from __future__ import annotations

import inspect
import os
import pickle
from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from collapse_bench.contexts import FitContext, MetricContext, MixContext, RealData, SampleContext, VerifyContext
    from collapse_bench.protocol import Protocol

Modality = Literal["text", "vector"]
Direction = Literal["higher", "lower"]
HIGHER: Direction = "higher"
LOWER: Direction = "lower"

#: Model capabilities that metrics can require.
LOGLIK = "loglik"  #: ``Model.nll`` gives per-token (text) or per-point (vector) negative log-likelihoods
MOMENTS = "moments"  #: ``Model.moments`` gives the fitted mean and covariance


class Component:
    """Base of every pluggable component: a registered name and a one-line description."""

    #: The name users type in a SPEC; unique within its kind.
    name: ClassVar[str]
    #: One line for ``collapse-bench list``; defaults to the first line of the docstring.
    description: ClassVar[str] = ""

    @classmethod
    def summary(cls) -> str:
        """The one-line description shown by ``collapse-bench list``."""
        if cls.description:
            return cls.description
        doc = inspect.getdoc(cls) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    def dependencies(self) -> list[str | os.PathLike]:
        """What this component reads besides its parameters, so that a change of it is never served from the cache.

        Return every file or folder it reads as a ``pathlib.Path`` (hashed by content, folders
        recursively) and every other outside input as a string identifying its exact version,
        e.g. the commit hash a hub name resolves to. Both enter the key of every cached step and
        score the component takes part in. The component's own code needs no declaring: the
        modules of its package that it imports are hashed already. The default declares nothing,
        right for a component that reads only its parameters.
        """
        return []

    def check(self, protocol: Protocol) -> None:
        """Refuse a protocol this component cannot serve, by raising ``ConfigError``.

        Called once before any training starts, so that a run never dies half-way on a setting
        that was wrong from the start.
        """


class Dataset(Component):
    """Real data: the source of generation 0 and of the held-out test split."""

    modality: ClassVar[Modality]

    def truth(self) -> dict[str, np.ndarray]:
        """Known parameters of the distribution the rows come from, for synthetic datasets.

        Metrics and verifiers that measure distance to the truth (``regression.error`` needs the
        true coefficients ``w``) read them from :attr:`RealData.truth`. Real-world data knows
        none: the default is empty.
        """
        return {}

    @abstractmethod
    def load(self) -> list[str] | np.ndarray:
        """Return the whole dataset in a fixed order.

        ``text``: a list of documents (strings); the harness splits documents into test and
        train, fits the run's tokenizer on train and cuts the token stream into blocks.
        ``vector``: a float array ``(n, dim)``; the harness shuffles and splits its rows.
        """

    def held_out(self) -> dict[str, list[str]]:
        """The dataset's own held-out documents, by part: ``test`` and ``validation`` (text).

        A part given here is used as it is: ``test`` replaces the test split the harness would
        carve from ``load()``'s documents, ``validation`` is what models keep their best epoch by.
        Nothing by default.
        """
        return {}

    def describe(self) -> dict[str, Any]:
        """What the last ``load()`` read (files, bytes, what it skipped), for the run's manifest.

        JSON-serialisable; a ``summary`` entry, one line, is also shown to the user. Nothing by default.
        """
        return {}


class Model(Component):
    """A generative model trained once per generation.

    A new instance is created for every generation, so ``fit`` is called once per instance.
    """

    modality: ClassVar[Modality]
    #: Which of :data:`LOGLIK` and :data:`MOMENTS` this model provides.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        """Train on ``data`` (rows as described in this module's docstring)."""

    @abstractmethod
    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """Draw ``n`` rows: ``(n, ctx.length)`` token ids, or ``(n, dim)`` vectors."""

    def nll(self, data: np.ndarray) -> np.ndarray:
        """Negative log-likelihood in nats, per token ``(n, length)`` or per point ``(n,)``.

        Per token it is ``-log p`` of a probability (``inf`` where ``p = 0``); per point it is a
        negative log density, which is below 0 where the density exceeds 1. Only for models with
        the :data:`LOGLIK` capability.
        """
        raise NotImplementedError(f"model {self.name!r} does not compute log-likelihoods")

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """The fitted mean ``(dim,)`` and covariance ``(dim, dim)``.

        Only for models with the :data:`MOMENTS` capability.
        """
        raise NotImplementedError(f"model {self.name!r} does not expose its moments")

    def resources(self) -> dict[str, float]:
        """What one step of this model asks of an executor: ``{"cpus": n, "gpus": n}``.

        The Ray executor reserves it for each task (``--gpus-per-task`` overrides the GPUs); a
        model that trains on a GPU says so here.
        """
        return {"cpus": 1, "gpus": 0}

    def save(self, path: Path) -> None:
        """Write the fitted state into the directory ``path`` (which exists and is empty).

        Finished generations are kept this way, so a resumed run needs no retraining. The
        default pickles the instance's attributes; models holding large framework objects
        (torch modules) should override both this and :meth:`load`.
        """
        with (path / "model.pkl").open("wb") as fh:
            pickle.dump(self.__dict__, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path) -> None:
        """Restore the state :meth:`save` wrote, into an instance built with the same parameters."""
        with (path / "model.pkl").open("rb") as fh:
            self.__dict__.update(pickle.load(fh))


class Mixer(Component):
    """Builds D_{g+1} from the real training data and the synthetic history.

    A curation mixer asks each generation for more candidates than it keeps
    (:meth:`candidates`) and names the verifiers whose scores it selects by (:meth:`verifiers`).
    """

    @abstractmethod
    def mix(self, ctx: MixContext) -> np.ndarray:
        """Return the training rows of generation ``ctx.generation``."""

    def candidates(self, sample_size: int) -> int:
        """Rows to draw from each generation's model: ``sample_size`` (the protocol's) unless over-generating."""
        return sample_size

    def verifiers(self) -> tuple[str, ...]:
        """Verifier SPECs whose scores of every candidate this mixer reads from ``MixContext.scores``."""
        return ()

    def check_data(self, real: RealData, protocol: Protocol) -> None:
        """Refuse real data too small for this mixer under ``protocol`` (``DataError``)."""


class Verifier(Component):
    """Scores candidate synthetic rows, one float per row, higher = keep.

    Like a metric, a verifier declares the data modalities it applies to and the model
    capabilities it needs, and the run refuses a mismatch before anything is trained. An
    instance lives for a whole run, so anything fitted on the real data (a reference model, a
    target) can be computed once and kept on ``self``.
    """

    #: Modalities this verifier applies to.
    modalities: ClassVar[frozenset[str]]
    #: Model capabilities (of M_g and M_0) this verifier needs (:data:`LOGLIK`, :data:`MOMENTS`).
    requires: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def score(self, rows: np.ndarray, ctx: VerifyContext) -> np.ndarray:
        """One finite float per row, shape ``(len(rows),)``; higher means more worth keeping."""


class Metric(Component):
    """Scores one generation. Metrics report raw values; drift is derived when aggregating.

    An instance lives for a whole run, so statistics of the real data can be computed once and
    kept on ``self``.
    """

    #: Modalities this metric applies to.
    modalities: ClassVar[frozenset[str]]
    #: Model capabilities this metric needs (:data:`LOGLIK`, :data:`MOMENTS`).
    requires: ClassVar[frozenset[str]] = frozenset()
    #: Value names and whether higher or lower is better. A value named like the metric
    #: is reported under the metric's name, any other as ``"<metric>.<value>"``.
    outputs: ClassVar[dict[str, Direction]]
    #: The values (short names, most telling first) that the views show: the console summary and
    #: ``show`` print the first, leaderboards and their plots every one. Empty: every output.
    #: A metric whose outputs depend on its parameters may set both on the instance.
    headline: ClassVar[tuple[str, ...]] = ()
    #: Whether ``compute`` reads the real data (``ctx.real``). Used outside the harness, where a
    #: metric scores bare texts (:mod:`collapse_bench.measurements`) and real text must be given.
    reads_real: ClassVar[bool] = True

    @classmethod
    def qualified(cls, value: str) -> str:
        """The name a value is stored and shown under."""
        return cls.name if value == cls.name else f"{cls.name}.{value}"

    def directions(self) -> dict[str, Direction]:
        """Direction of every value this metric reports, by qualified name."""
        return {self.qualified(k): d for k, d in self.outputs.items()}

    def headlines(self) -> list[str]:
        """The qualified names of the headline values, in order (every output when none is declared)."""
        return [self.qualified(k) for k in self.headline or self.outputs]

    @abstractmethod
    def compute(self, ctx: MetricContext) -> dict[str, float]:
        """Return one float per name in ``outputs`` (short names); ``inf`` is allowed, NaN is not.

        An input on which a value has no definition (an empty set, a 0/0) is refused by raising a
        :class:`~collapse_bench.errors.UserError` (usually ``DataError``) that names the input,
        or the component that produced it, rather than returning NaN or letting a
        ``ZeroDivisionError`` or ``IndexError`` escape.
        """
