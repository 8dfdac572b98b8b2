"""The component contract: what a dataset, model, mixer, verifier and metric must provide.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from collapse_bench.decoding import Decoding

if TYPE_CHECKING:
    from tokenizers import Tokenizer

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


@dataclass
class RealData:
    """The real side of every chain in a run."""

    modality: str
    #: D_0: the real training rows.
    train: np.ndarray
    #: Held-out rows every generation is tested on.
    test: np.ndarray
    #: Real rows outside train and test, for mixers that bring in fresh real data.
    pool: np.ndarray
    #: The run's byte-level BPE tokenizer (text), fitted on the training documents.
    tokenizer: Tokenizer | None = None
    #: Characters of the test rows (text), the denominator of bits per character: counted on the
    #: bytes of the test stream as a whole (see :func:`collapse_bench.data.count_chars`), never on
    #: rows decoded one by one.
    test_chars: int | None = None
    hashes: dict[str, str] = field(default_factory=dict)
    #: What the dataset says it read (``Dataset.describe()``), for the manifest.
    source: dict[str, Any] = field(default_factory=dict)
    #: Things about the data the user should know (files skipped, duplicates across the split).
    notes: list[str] = field(default_factory=list)
    #: Rows of the dataset's own validation split (text), for best-epoch selection; else ``None``.
    validation: np.ndarray | None = None
    #: Known parameters of a synthetic dataset (``Dataset.truth``), e.g. regression coefficients ``w``.
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def vocab_size(self) -> int | None:
        """Number of token ids (text), else ``None``."""
        return self.tokenizer.get_vocab_size() if self.tokenizer is not None else None

    def decode(self, rows: np.ndarray) -> list[str]:
        """Rows as text (token ids decoded) or as printable vectors."""
        if self.tokenizer is None:
            return [np.array2string(r, precision=4, separator=", ") for r in rows]
        return self.tokenizer.decode_batch([r.tolist() for r in rows])

    def describe(self) -> dict[str, Any]:
        """Sizes and hashes, for the manifest."""
        out: dict[str, Any] = {
            "modality": self.modality,
            "train_rows": len(self.train),
            "test_rows": len(self.test),
            "pool_rows": len(self.pool),
            "validation_rows": 0 if self.validation is None else len(self.validation),
            "hashes": self.hashes,
        }
        if self.source:
            out["source"] = self.source
        if self.notes:
            out["notes"] = self.notes
        if self.tokenizer is not None:
            out.update(vocab_size=self.vocab_size, test_chars=self.test_chars, row_tokens=self.train.shape[1])
        else:
            out["dim"] = self.train.shape[1]
        return out


@dataclass
class FitContext:
    """Everything a model may use when it is trained for one generation."""

    seed: int
    generation: int
    rng: np.random.Generator
    #: The protocol's ``[training]`` table (budget: epochs, learning rate, ...), as given.
    training: dict[str, Any]
    #: Size of the run's vocabulary (text modality), else ``None``.
    vocab_size: int | None = None
    #: The run's tokenizer (text modality), for models that work on text with a tokenizer of their own.
    tokenizer: Tokenizer | None = None
    #: The model of the previous generation (``None`` at generation 0).
    previous: Model | None = None
    #: The generation-0 model of this chain (``None`` at generation 0).
    base: Model | None = None
    #: The real validation rows (the dataset's own validation split), for models that keep their
    #: best epoch by validation loss; ``None`` when the dataset has none.
    validation: np.ndarray | None = None
    #: Rows of D_0, the real training split (``[data] train_size``): a budget counted in it is the
    #: same at every generation under every mixer, however large the mixer's data is.
    train_size: int | None = None


@dataclass
class SampleContext:
    """Everything a model may use when it draws the synthetic data of its generation."""

    rng: np.random.Generator
    #: Tokens per synthetic sequence (text modality).
    length: int | None = None
    #: The protocol's decoding settings (``[decoding]``); :meth:`Decoding.ancestral` serves
    #: models that sample at a temperature only.
    decoding: Decoding = field(default_factory=Decoding)
    #: The rows this generation was trained on, for models that continue training blocks as
    #: prompts (Shumailov et al. 2024) rather than sample unconditionally.
    prompts: np.ndarray | None = None
    #: The run's tokenizer (text modality).
    tokenizer: Tokenizer | None = None
    #: The real training rows D_0, for models that continue the original blocks every generation.
    real: np.ndarray | None = None


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


@dataclass
class MixContext:
    """What a mixer sees when it builds the training set of ``generation``."""

    real: RealData
    #: Synthetic sets ``[S_0, ..., S_{generation-1}]``, oldest first: each generation's candidates,
    #: ``Mixer.candidates(sample_size)`` rows drawn from the model of that generation.
    history: list[np.ndarray]
    #: The generation whose training set is being built (at least 1).
    generation: int
    rng: np.random.Generator
    #: Synthetic rows drawn per generation (the protocol's ``samples``).
    sample_size: int
    #: Total number of generations in the chain (for mixers that reserve data up front).
    generations: int
    #: Verifier scores of the candidates, by the verifier SPEC the mixer declared in
    #: :meth:`Mixer.verifiers`: one array of shape ``(len(history[j]),)`` per generation ``j``,
    #: computed when ``history[j]`` was drawn, with that generation's model as ``VerifyContext.model``.
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)


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


@dataclass
class VerifyContext:
    """What a verifier sees when it scores the candidates one generation drew."""

    #: M_g, the model that drew the candidates.
    model: Model
    #: M_0, the generation-0 model of the same chain.
    base: Model
    real: RealData
    generation: int


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


@dataclass
class MetricContext:
    """What a metric sees at one generation of one chain."""

    #: M_g, the model of this generation. The harness hands over a view of it
    #: (:class:`collapse_bench.validators.CheckedModel`) whose ``nll`` and ``moments`` are
    #: checked, so that a value outside their domain is blamed on the model, not on the metric.
    model: Model
    #: M_0, the generation-0 model of the same chain, as the same kind of view.
    base: Model
    real: RealData
    #: S_g, the synthetic rows drawn from ``model``.
    samples: np.ndarray
    generation: int


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
