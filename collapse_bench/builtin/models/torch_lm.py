"""What the transformer language models share: the training budget and the torch-backed model base.

This module does not import torch: the registry imports every built-in model, and a run of the
n-gram model must not pay for torch. The torch code lives in :mod:`torch_support`,
:mod:`torch_training` and :mod:`torch_decoding`, imported the first time a transformer model is
trained, scored, sampled or loaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from collapse_bench.components import LOGLIK, Model
from collapse_bench.contexts import FitContext
from collapse_bench.errors import ConfigError
from collapse_bench.settings import build, setting

if TYPE_CHECKING:
    from collapse_bench.decoding import Decoding
    from collapse_bench.protocol import Protocol

#: Where a transformer model trains and samples: ``auto`` is CUDA when torch sees a GPU, else the CPU.
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class Training:
    """The training budget of the transformer models: the protocol's ``[training]`` table.

    See docs/models.md for every key. ``steps``, when given, overrides ``epochs``; an epoch is
    ``train_size`` rows (D_0's size, the same for every mixer and generation) unless
    ``epochs_over = "data"`` makes it the generation's own training rows; ``lr``
    defaults to the model's own (``gpt`` 1e-3, ``hf`` 5e-5). ``precision = "auto"`` trains
    with bf16 autocast where the hardware runs bf16 fast (CUDA with bf16, CPUs with AMX or
    AVX512-BF16), else in fp32.
    """

    epochs: float = setting(1.0, check=lambda v: v > 0, allowed="above 0")
    steps: int | None = setting(None, check=lambda v: v >= 0, allowed="0 (no training) or more")
    epochs_over: Literal["train_size", "data"] = "train_size"
    batch_size: int = setting(32, check=lambda v: v >= 1, allowed="1 or more")
    lr: float | None = setting(None, check=lambda v: v > 0, allowed="above 0")
    schedule: Literal["constant", "linear", "cosine"] = "cosine"
    warmup_steps: int = setting(0, check=lambda v: v >= 0, allowed="0 or more")
    min_lr: float = setting(0.0, check=lambda v: v >= 0, allowed="0 or more")
    weight_decay: float = setting(0.0, check=lambda v: v >= 0, allowed="0 or more")
    grad_clip: float = setting(1.0, check=lambda v: v >= 0, allowed="0 (off) or more")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    schedule_interval: Literal["step", "epoch"] = "step"
    select: Literal["last", "best-validation"] = "last"
    row_bos: bool = True
    compile: bool = False
    eval_batch_size: int = setting(128, check=lambda v: v >= 1, allowed="1 or more")

    def __post_init__(self) -> None:
        if self.by_epoch and (self.steps is not None or self.epochs != int(self.epochs)):
            raise ConfigError(
                f"[training] schedule_interval = {self.schedule_interval!r} and select = {self.select!r} "
                f"need whole epochs, but steps = {self.steps!r} and epochs = {self.epochs!r}",
                "give a whole number of epochs and no steps",
            )

    @property
    def by_epoch(self) -> bool:
        """Whether training runs whole epochs (every row once, the last batch smaller): needed to
        step the schedule per epoch or to keep the best epoch by validation loss."""
        return self.schedule_interval == "epoch" or self.select == "best-validation"

    def steps_for(self, rows: int, train_size: int | None) -> int:
        """Optimizer steps for a generation trained on ``rows`` rows, when D_0 has ``train_size``.

        ``steps`` if given; else ``epochs`` passes over ``train_size`` rows (``epochs_over =
        "train_size"``, or when ``train_size`` is unknown: over ``rows``), rounded to whole
        batches, at least one step. Counting epochs in D_0's rows keeps the steps and tokens of
        training the same under every mixer: one epoch over a mixer's data would give
        ``accumulate``, whose data grows every generation, ever more training than ``replace``.
        """
        if self.steps is not None:
            return self.steps
        epoch = train_size if self.epochs_over == "train_size" and train_size else rows
        return max(1, round(self.epochs * math.ceil(epoch / self.batch_size)))

    @classmethod
    def parse(cls, table: dict[str, Any]) -> Training:
        """The settings of a protocol's ``[training]`` table, validated."""
        return build(cls, table, "[training]")


class TorchLM(Model):
    """Base of the transformer language models: validation, training, persistence.

    Subclasses say how run-token rows become their own token sequences (:meth:`_sequences`)
    and how the network is built or initialised each generation (:meth:`_initial`).
    """

    modality = "text"
    capabilities = frozenset({LOGLIK})
    #: Learning rate when ``[training] lr`` is not given.
    default_lr: ClassVar[float]

    def __init__(self, device: Device = "auto") -> None:
        self.module: Any = None  # the transformers model, once fitted or loaded
        self.training = Training()
        self.device = device
        #: What the last fit cost: optimizer steps and training tokens (empty until fitted).
        self.compute: dict[str, int] = {}

    def resources(self) -> dict[str, float]:
        """One GPU per step when the model is told to train on CUDA; else one CPU."""
        return {"cpus": 1, "gpus": 1 if self.device == "cuda" else 0}

    def _device(self) -> Any:
        from collapse_bench.builtin.models import torch_support

        return torch_support.device(self.device)

    def check(self, protocol: Protocol) -> None:
        Training.parse(protocol.training)
        self._check_decoding(protocol.decoding, protocol)

    def _check_decoding(self, decoding: Decoding, protocol: Protocol) -> None:
        """Refuse decoding settings this model cannot honour under ``protocol``."""

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        from collapse_bench.builtin.models import torch_support, torch_training

        self.training = Training.parse(ctx.training)
        torch_support.seed(ctx.rng)
        self.module = self._initial(data, ctx)
        lr = self.training.lr or self.default_lr
        validation = None
        if self.training.select == "best-validation":
            if ctx.validation is None or not len(ctx.validation):
                raise ConfigError(
                    '[training] select = "best-validation" needs a validation split, and the data has none',
                    'give the dataset a validation split (hf: validation_split=...) or select = "last"',
                )
            validation = self._sequences(ctx.validation)
        seqs = self._sequences(data)
        steps = self.training.steps_for(len(seqs), ctx.train_size)
        self.compute = torch_training.train(
            self.module, seqs, self.training, steps, lr, ctx.rng, self._device(), validation
        )

    def _initial(self, data: np.ndarray, ctx: FitContext) -> Any:
        """The network training starts from in this generation."""
        raise NotImplementedError

    def _sequences(self, data: np.ndarray) -> list[np.ndarray]:
        """Run-token rows as the model's own token sequences, each starting with its BOS token."""
        raise NotImplementedError

    def _sequence_nll(self, data: np.ndarray) -> list[np.ndarray]:
        """NLL in nats of every token after the BOS of each row's own sequence."""
        from collapse_bench.builtin.models import torch_training

        return torch_training.token_nll(self.module, self._sequences(data), self.training, self._device())

    def save(self, path: Path) -> None:
        self.module.save_pretrained(path / "model")
        (path / "training.json").write_text(json.dumps(asdict(self.training)))
        (path / "compute.json").write_text(json.dumps(self.compute))

    def load(self, path: Path) -> None:
        from collapse_bench.builtin.models import torch_support

        self.module = torch_support.load_causal_lm(str(path / "model"))
        self.training = Training(**json.loads((path / "training.json").read_text()))
        compute = path / "compute.json"  # absent in entries cached before it was kept
        self.compute = json.loads(compute.read_text()) if compute.exists() else {}
