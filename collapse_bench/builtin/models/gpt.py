"""A decoder-only transformer trained from scratch on the run's tokenizer (GPT-2 or Llama architecture).

Rows are modelled as in the n-gram model: each is an independent sequence that starts with a
beginning-of-sequence symbol (id ``vocab_size``, an extra row of the embedding) and has no end
symbol, so every one of the row's tokens gets a likelihood and unconditional samples start
from BOS. The model never produces BOS. Its context is a row plus BOS, which is why it samples
unconditionally only: it has no positions to continue a whole training row with another.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from collapse_bench.builtin.models.torch_lm import Device, TorchLM, Training
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


class GptModel(TorchLM):
    """Decoder-only transformer (GPT-2 or Llama architecture) trained from scratch on the run's tokenizer."""

    name = "gpt"
    default_lr = 1e-3

    def __init__(
        self,
        *,
        arch: Literal["gpt2", "llama"] = "gpt2",
        layers: int = 4,
        width: int = 256,
        heads: int = 4,
        inner: int = 0,
        dropout: float = 0.0,
        init: Literal["scratch", "previous", "base"] = "scratch",
        device: Device = "auto",
    ) -> None:
        """``layers``, ``width`` (embedding size), ``heads`` and ``inner`` (feed-forward size; 0 means
        4 x width for gpt2, 8/3 x width for llama) size the network; ``init`` says where each
        generation after the first starts: fresh weights, the previous generation, or generation 0;
        ``device``: ``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
        super().__init__(device)
        if min(layers, width, heads) < 1 or inner < 0 or not 0 <= dropout < 1:
            raise ConfigError(
                f"gpt size layers={layers}, width={width}, heads={heads}, inner={inner}, dropout={dropout}",
                "give layers, width, heads of 1 or more, inner of 0 or more, dropout in [0, 1)",
            )
        if width % heads:
            raise ConfigError(f"gpt width {width} is not a multiple of heads {heads}", "make width divisible by heads")
        self.arch, self.layers, self.width, self.heads = arch, layers, width, heads
        self.inner, self.dropout, self.init = inner, dropout, init

    def _check_decoding(self, decoding: Decoding, protocol: Protocol) -> None:
        length = protocol.data.block_tokens
        if not Training.parse(protocol.training).row_bos:
            raise ConfigError(
                f"{self.name} reads every row after its BOS symbol, but [training] row_bos = false",
                "remove row_bos (bare rows are for hf models in their own token space)",
            )
        if decoding.prompt != "none":
            raise ConfigError(
                f'{self.name} cannot continue training rows (decoding prompt = "{decoding.prompt}"): its context '
                "is one row long",
                'use prompt = "none" with gpt models; prompted decoding is for hf models',
            )
        if (decoding.min_new_tokens or 0) > length or (decoding.max_new_tokens or length) < length:
            raise ConfigError(
                f"{self.name} samples rows of exactly {length} tokens, but decoding asks for "
                f"{decoding.min_new_tokens}..{decoding.max_new_tokens} new tokens",
                "remove min_new_tokens and max_new_tokens, or let them include block_tokens",
            )

    def _config(self, vocab_size: int, length: int) -> Any:
        """The transformers config: the run's vocabulary plus BOS, and positions for BOS plus a row."""
        bos = vocab_size
        if self.arch == "gpt2":
            from transformers import GPT2Config

            return GPT2Config(
                vocab_size=vocab_size + 1, n_positions=length + 1, n_embd=self.width, n_layer=self.layers,
                n_head=self.heads, n_inner=self.inner or None, resid_pdrop=self.dropout, embd_pdrop=self.dropout,
                attn_pdrop=self.dropout, bos_token_id=bos, eos_token_id=bos,
            )  # fmt: skip
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=vocab_size + 1, max_position_embeddings=length + 1, hidden_size=self.width,
            num_hidden_layers=self.layers, num_attention_heads=self.heads,
            intermediate_size=self.inner or 8 * self.width // 3, attention_dropout=self.dropout,
            tie_word_embeddings=True, bos_token_id=bos, eos_token_id=bos,
        )  # fmt: skip

    def _initial(self, data: np.ndarray, ctx: FitContext) -> Any:
        start = {"previous": ctx.previous, "base": ctx.base}.get(self.init)
        if start is not None:
            return copy.deepcopy(start.module)
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(self._config(int(ctx.vocab_size), data.shape[1]))

    @property
    def bos(self) -> int:
        """The BOS id: one past the run's vocabulary."""
        return self.module.config.vocab_size - 1

    def _sequences(self, data: np.ndarray) -> list[np.ndarray]:
        rows = np.asarray(data, dtype=np.int64)
        return list(np.concatenate([np.full((len(rows), 1), self.bos), rows], axis=1))

    def nll(self, data: np.ndarray) -> np.ndarray:
        return np.stack(self._sequence_nll(data))

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """``n`` rows of exactly ``ctx.length`` tokens, each decoded from BOS alone."""
        from collapse_bench.builtin.models import torch_decoding

        prompts = [np.array([self.bos])] * n
        span = (ctx.length, ctx.length)
        rows = torch_decoding.generate(
            self.module,
            prompts,
            ctx.decoding,
            span,
            eos=None,
            banned=[self.bos],
            rng=ctx.rng,
            cfg=self.training,
            dev=self._device(),
        )
        return np.stack(rows).astype(np.int32)


class GptTiny(GptModel):
    """GPT-2 of about 1M parameters (2 layers, 128 wide), trained from scratch."""

    name = "gpt-tiny"

    def __init__(
        self,
        *,
        arch: Literal["gpt2", "llama"] = "gpt2",
        layers: int = 2,
        width: int = 128,
        heads: int = 4,
        inner: int = 0,
        dropout: float = 0.0,
        init: Literal["scratch", "previous", "base"] = "scratch",
        device: Device = "auto",
    ) -> None:
        super().__init__(
            arch=arch, layers=layers, width=width, heads=heads, inner=inner, dropout=dropout, init=init, device=device
        )


class GptSmall(GptModel):
    """GPT-2 of about 6M parameters (6 layers, 256 wide), trained from scratch."""

    name = "gpt-small"

    def __init__(
        self,
        *,
        arch: Literal["gpt2", "llama"] = "gpt2",
        layers: int = 6,
        width: int = 256,
        heads: int = 4,
        inner: int = 0,
        dropout: float = 0.0,
        init: Literal["scratch", "previous", "base"] = "scratch",
        device: Device = "auto",
    ) -> None:
        super().__init__(
            arch=arch, layers=layers, width=width, heads=heads, inner=inner, dropout=dropout, init=init, device=device
        )
