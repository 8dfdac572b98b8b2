"""What components receive: the run's real data, and a context for every call the harness makes.

Part of the component contract (:mod:`collapse_bench.components`); plugins import these from
``collapse_bench``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from collapse_bench.decoding import Decoding

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from collapse_bench.components import Model


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
    #: :meth:`collapse_bench.components.Mixer.verifiers`: one array of shape ``(len(history[j]),)``
    #: per generation ``j``, computed when ``history[j]`` was drawn, with that generation's model
    #: as ``VerifyContext.model``.
    scores: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class VerifyContext:
    """What a verifier sees when it scores the candidates one generation drew."""

    #: M_g, the model that drew the candidates.
    model: Model
    #: M_0, the generation-0 model of the same chain.
    base: Model
    real: RealData
    generation: int


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
