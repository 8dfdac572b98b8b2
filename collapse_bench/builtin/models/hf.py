"""Any Hugging Face causal language model, with its own tokenizer, fine-tuned every generation.

The harness speaks in rows of the run's tokenizer; this model speaks its own. It crosses over
through text, in both directions:

* **Training and likelihood**: each run-token row is decoded to text with the run's tokenizer
  and encoded with the model's own, after its BOS token (or EOS where it has no BOS, as GPT-2).
  ``nll`` scores that sequence and spreads the row's total NLL evenly over the row's run-token
  positions, so the row totals, the per-run-token perplexity and the bits per character are
  exact, while single positions carry the row's average. Perplexities of models with different
  tokenizers are comparable through bits per character only.
* **Sampling**: the model generates its own tokens (from BOS, or after a training row used as
  prompt), the new tokens are decoded to text and encoded with the run's tokenizer, and the row
  keeps the first ``length`` run tokens. A row whose text is too short (an early EOS, or fewer
  run tokens than expected) is continued with EOS suppressed, up to :data:`ROUNDS` times; rows
  are never padded with a filler token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from collapse_bench.builtin.models.decoding import Decoding
from collapse_bench.builtin.models.torch_lm import TorchLM
from collapse_bench.components import FitContext, SampleContext
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol

#: Generation rounds a synthetic row may take to reach its length before sampling gives up.
ROUNDS = 8


class HfModel(TorchLM):
    """Any Hugging Face causal LM (hub id or local directory), fine-tuned each generation with its own tokenizer."""

    name = "hf"
    default_lr = 5e-5

    def __init__(self, *, path: str, init: Literal["base", "previous"] = "base") -> None:
        """``path``: a hub id (``facebook/opt-125m``) or a directory written by ``save_pretrained``
        holding the model and its tokenizer; ``init``: fine-tune every generation from that
        checkpoint (``base``, as Shumailov et al. 2024) or from the previous generation."""
        super().__init__()
        self.path, self.init = path, init
        self.tokenizer: Any = None  # the model's own tokenizer
        self.run_tokenizer: Any = None  # the run's tokenizer, kept from fit() for nll() and sample()

    def _load(self, what: str, loader: Any) -> Any:
        """Call a transformers loader on ``path``; a path it cannot reach is a configuration error."""
        try:
            return loader(self.path)
        except (OSError, ValueError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"hf cannot load the {what} of {self.path!r}: {reason}",
                "give a local directory written by save_pretrained (model and tokenizer), or a hub id with the "
                "network reachable (HF_HUB_OFFLINE unset) or already in the local hub cache",
            ) from None

    def _own_tokenizer(self) -> Any:
        if self.tokenizer is None:
            from transformers import AutoTokenizer

            self.tokenizer = self._load("tokenizer", AutoTokenizer.from_pretrained)
        return self.tokenizer

    @property
    def bos(self) -> int:
        """The token every sequence starts with: the tokenizer's BOS, else its EOS."""
        tok = self._own_tokenizer()
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if bos is None:
            raise ConfigError(
                f"the tokenizer of {self.path!r} has neither a BOS nor an EOS token",
                "give the tokenizer a bos_token or eos_token (save_pretrained it with one)",
            )
        return bos

    def check(self, protocol: Protocol) -> None:
        super().check(protocol)
        from transformers import AutoConfig

        self._load("config", AutoConfig.from_pretrained)
        _ = self.bos

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        self.run_tokenizer = ctx.tokenizer
        self._own_tokenizer()
        super().fit(data, ctx)

    def _initial(self, data: np.ndarray, ctx: FitContext) -> Any:
        if self.init == "previous" and ctx.previous is not None:
            import copy

            return copy.deepcopy(ctx.previous.module)
        from collapse_bench.builtin.models import torch_support

        return self._load("model", torch_support.load_causal_lm)

    def _sequences(self, data: np.ndarray) -> list[np.ndarray]:
        texts = self.run_tokenizer.decode_batch([row.tolist() for row in np.asarray(data)])
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [np.array([self.bos, *row], dtype=np.int64) for row in ids]

    def nll(self, data: np.ndarray) -> np.ndarray:
        """Each row's total NLL under the model's own tokenizer, spread evenly over its run tokens."""
        totals = np.array([s.sum() for s in self._sequence_nll(data)])
        length = np.asarray(data).shape[1]
        return np.repeat(totals[:, None] / length, length, axis=1)

    def _prompts(self, n: int, ctx: SampleContext, decoding: Decoding) -> list[np.ndarray]:
        """BOS alone, or BOS and a training row: every row once per pass, in a random order."""
        if decoding.prompt == "none":
            return [np.array([self.bos])] * n
        rows = np.asarray(ctx.prompts)
        passes = -(-n // len(rows))
        order = np.concatenate([ctx.rng.permutation(len(rows)) for _ in range(passes)])[:n]
        return self._sequences(rows[order])

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """``n`` rows of ``ctx.length`` run tokens, re-encoded from the model's new tokens (see the module doc)."""
        from collapse_bench.builtin.models import torch_support

        decoding = Decoding.parse(ctx.decoding)
        prompts = self._prompts(n, ctx, decoding)
        most = decoding.max_new_tokens or ctx.length
        span = (decoding.min_new_tokens or 0, most)
        new = [np.empty(0, dtype=np.int64)] * n
        rows: list[list[int]] = [[] for _ in range(n)]
        pending = list(range(n))
        for _ in range(ROUNDS):
            contexts = [np.concatenate([prompts[i], new[i]]) for i in pending]
            more = torch_support.generate(
                self.module, contexts, decoding, span, eos=self.tokenizer.eos_token_id, rng=ctx.rng,
                cfg=self.training,
            )  # fmt: skip
            for i, tokens in zip(pending, more, strict=True):
                new[i] = np.concatenate([new[i], tokens])
            texts = self.tokenizer.batch_decode([new[i] for i in pending], skip_special_tokens=True)
            for i, encoding in zip(pending, self.run_tokenizer.encode_batch(texts), strict=True):
                rows[i] = encoding.ids[: ctx.length]
            pending = [i for i in pending if len(rows[i]) < ctx.length]
            if not pending:
                return np.array(rows, dtype=np.int32)
            span = (most, most)  # continue with EOS suppressed
        raise RuntimeError(
            f"{len(pending)} of {n} samples of {self.path!r} stayed under {ctx.length} run tokens after "
            f"{ROUNDS} rounds of up to {most} new tokens; raise [decoding] max_new_tokens"
        )

    def save(self, path: Path) -> None:
        super().save(path)
        self.tokenizer.save_pretrained(path / "tokenizer")
        (path / "run_tokenizer.json").write_text(self.run_tokenizer.to_str())

    def load(self, path: Path) -> None:
        from tokenizers import Tokenizer
        from transformers import AutoTokenizer

        super().load(path)
        self.tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer")
        self.run_tokenizer = Tokenizer.from_str((path / "run_tokenizer.json").read_text())
