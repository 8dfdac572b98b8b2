"""Any Hugging Face causal language model, with its own tokenizer, fine-tuned every generation.

When the run's tokenizer is the model's own (``[data] tokenizer`` names it: the same
vocabulary), rows are the model's token ids and are used unchanged: trained on after BOS, or
bare with ``[training] row_bos = false`` (as Shumailov et al. 2024), and a synthetic row is
exactly the row's length of new ids. Otherwise the harness speaks in rows of the run's
tokenizer and this model speaks its own, and it crosses over through text, in both directions:

* **Training and likelihood**: a run-token row is turned into the exact text of its bytes (see
  :func:`row_text`) and encoded with the model's own tokenizer, after its BOS token (or EOS
  where it has no BOS, as GPT-2). ``nll`` scores that sequence and gives each of the model's
  tokens' NLL to the run token in which the token's last byte lies, so every run token carries
  the NLL of the model tokens that end in it (0 where none does), row totals and bits per
  character are exact, and a zero-probability token shows at its own position. A byte-level
  row may begin or end inside a character (byte-level BPE cuts characters); such a piece of a
  character, and any invalid UTF-8, is not text, so it is not scored and carries 0. Perplexities
  of models with different tokenizers are comparable through bits per character only.
* **Sampling**: the model generates its own tokens (from BOS, or after a training row used as
  prompt), the new tokens are decoded to text exactly (no ``clean_up_tokenization_spaces``,
  which would rewrite what the model generated) and encoded with the run's tokenizer, and the
  row keeps the first ``length`` run tokens. A row whose text is too short (an early EOS, or fewer
  run tokens than expected) is continued with EOS suppressed, up to :data:`ROUNDS` times; rows
  are never padded with a filler token.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from collapse_bench.builtin.models.torch_lm import Device, TorchLM, Training
from collapse_bench.contexts import FitContext, SampleContext
from collapse_bench.data import token_bytes
from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError
from collapse_bench.hub import require_hub

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol

#: Generation rounds a synthetic row may take to reach its length before sampling gives up.
ROUNDS = 8
#: One well-formed UTF-8 character (RFC 3629: no overlong forms, no surrogates).
_CHAR = re.compile(
    rb"[\x00-\x7f]|[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def row_text(pieces: list[bytes]) -> tuple[str, np.ndarray]:
    """The text of a row of tokens given as bytes, and for each character the token its last byte is in.

    The text is the row's whole characters, exactly: bytes that are not part of a well-formed
    character inside the row (a character cut by the row's start or end, invalid UTF-8) are left
    out, never replaced by U+FFFD.
    """
    data = b"".join(pieces)
    ends = np.cumsum([len(p) for p in pieces])  # byte offset where each token ends
    chars, last = [], []
    for m in _CHAR.finditer(data):
        chars.append(m.group().decode())
        last.append(m.end() - 1)
    return "".join(chars), np.searchsorted(ends, np.array(last, dtype=np.int64), side="right")


@functools.cache
def hub_revision(repo_id: str) -> str:
    """The commit hash the hub name ``repo_id`` resolves to, the version transformers will load.

    Asked of the hub (refused at once when it is unreachable, see :func:`require_hub`); with
    ``HF_HUB_OFFLINE`` set, or when the hub will not say, the commit of the snapshot in the local
    hub cache, which is what transformers loads offline.
    """
    from huggingface_hub import HfApi, constants, snapshot_download

    require_hub(f"hf model {repo_id!r}")
    if not constants.HF_HUB_OFFLINE:
        try:
            return HfApi().model_info(repo_id).sha
        except Exception:  # unreachable or refused: what is in the local cache is what will load
            pass
    try:
        return Path(snapshot_download(repo_id, local_files_only=True)).name
    except Exception as exc:
        raise ConfigError(
            f"hf cannot tell which revision of {repo_id!r} to use: the hub is unreachable and the local hub "
            f"cache holds no snapshot of it ({type(exc).__name__})",
            "connect to the network (HF_HUB_OFFLINE unset) once, or give a local directory written by save_pretrained",
        ) from None


class HfModel(TorchLM):
    """Any Hugging Face causal LM (hub id or local directory), fine-tuned each generation with its own tokenizer."""

    name = "hf"
    default_lr = 5e-5

    def __init__(self, *, path: str, init: Literal["base", "previous"] = "base", device: Device = "auto") -> None:
        """``path``: a hub id (``facebook/opt-125m``) or a directory written by ``save_pretrained``
        holding the model and its tokenizer; ``init``: fine-tune every generation from that
        checkpoint (``base``, as Shumailov et al. 2024) or from the previous generation; ``device``:
        ``auto`` (CUDA when present), ``cpu`` or ``cuda``."""
        super().__init__(device)
        self.path, self.init = path, init
        self.tokenizer: Any = None  # the model's own tokenizer
        self.run_tokenizer: Any = None  # the run's tokenizer, kept from fit() for nll() and sample()
        self.run_table: list[bytes] | None = None  # the bytes of each run token
        self._own_tokens: bool | None = None  # whether run tokens are the model's own (see own_tokens)

    def dependencies(self) -> list[str | os.PathLike]:
        """A local checkpoint by the content of its files (weights, config, tokenizer, generation
        config); a hub name by the commit hash it resolves to."""
        local = Path(self.path).expanduser()
        if local.is_dir():
            return [local]
        return [f"{self.path}@{hub_revision(self.path)}"]

    def _load(self, what: str, loader: Any) -> Any:
        """Call a transformers loader on ``path``; a path it cannot reach is a configuration error."""
        if not Path(self.path).expanduser().is_dir():
            require_hub(f"hf model {self.path!r}")
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
        if not Training.parse(protocol.training).row_bos and protocol.data.tokenizer == "fit":
            raise ConfigError(
                "[training] row_bos = false trains hf on bare rows of its own token ids, but [data] tokenizer = "
                '"fit" makes the rows run-BPE tokens that hf reads as text after its BOS',
                f'set [data] tokenizer = "{self.path}" or remove row_bos',
            )
        if not self.tokenizer.is_fast:
            raise ConfigError(
                f"the tokenizer of {self.path!r} is a slow (Python) tokenizer, without the character offsets "
                "hf needs to give each token its own NLL",
                "save the checkpoint with a fast tokenizer (AutoTokenizer.from_pretrained(..., use_fast=True))",
            )

    def fit(self, data: np.ndarray, ctx: FitContext) -> None:
        self.run_tokenizer, self.run_table, self._own_tokens = ctx.tokenizer, None, None
        self._own_tokenizer()
        super().fit(data, ctx)

    def _initial(self, data: np.ndarray, ctx: FitContext) -> Any:
        if self.init == "previous" and ctx.previous is not None:
            import copy

            return copy.deepcopy(ctx.previous.module)
        from collapse_bench.builtin.models import torch_support

        return self._load("model", torch_support.load_causal_lm)

    @property
    def own_tokens(self) -> bool:
        """Whether the run's tokens are this model's own (``[data] tokenizer`` is its tokenizer):
        then rows are the model's token ids, used unchanged, and nothing crosses through text."""
        if self._own_tokens is None:
            own = self._own_tokenizer().backend_tokenizer
            self._own_tokens = self.run_tokenizer.get_vocab(with_added_tokens=True) == own.get_vocab(True)
        return self._own_tokens

    def _own_rows(self, data: np.ndarray) -> list[np.ndarray]:
        """Rows of the model's own ids as its sequences: after BOS, or bare with ``[training] row_bos = false``."""
        head = [self.bos] if self.training.row_bos else []
        return [np.array([*head, *row], dtype=np.int64) for row in np.asarray(data)]

    def _texts(self, data: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each row as the model's own token ids (after BOS), and the run token each of them ends in."""
        if self.run_table is None:
            self.run_table = token_bytes(self.run_tokenizer)
        texts, owners = zip(*(row_text([self.run_table[i] for i in row]) for row in np.asarray(data)), strict=True)
        encoded = self.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        seqs, where = [], []
        for ids, offsets, owner in zip(encoded["input_ids"], encoded["offset_mapping"], owners, strict=True):
            seqs.append(np.array([self.bos, *ids], dtype=np.int64))
            # a token ends in the run token that holds its last character's last byte
            where.append(owner[[max(end - 1, 0) for _, end in offsets]] if len(offsets) else np.empty(0, np.int64))
        return seqs, where

    def _sequences(self, data: np.ndarray) -> list[np.ndarray]:
        if self.own_tokens:
            return self._own_rows(data)
        if not self.training.row_bos:
            raise ConfigError(
                f"[training] row_bos = false needs the run's tokens to be those of {self.path!r}",
                f'set [data] tokenizer = "{self.path}" or remove row_bos',
            )
        return self._texts(data)[0]

    def nll(self, data: np.ndarray) -> np.ndarray:
        """NLL per run token: each own token's NLL on the run token its last byte lies in (see the module doc).

        In the model's own token space each token has its own NLL. With bare rows (``row_bos =
        false``) tokens 1.. are scored in the row alone, as the model was trained, and token 0
        after BOS alone, so that it is scored too.
        """
        from collapse_bench.builtin.models import torch_training

        if self.own_tokens:
            rows = np.asarray(data)
            scored = torch_training.token_nll(self.module, self._own_rows(rows), self.training, self._device())
            if self.training.row_bos:
                return np.array(scored, dtype=np.float64).reshape(rows.shape)
            first = torch_training.token_nll(
                self.module, [np.array([self.bos, r[0]]) for r in rows], self.training, self._device()
            )
            return np.column_stack([np.concatenate(first), np.array(scored)]).astype(np.float64)
        seqs, where = self._texts(data)
        out = np.zeros(np.asarray(data).shape, dtype=np.float64)
        scored = torch_training.token_nll(self.module, seqs, self.training, self._device())
        for row, (nll, owner) in enumerate(zip(scored, where, strict=True)):
            np.add.at(out[row], owner, nll)
        return out

    def decode(self, ids: list[np.ndarray]) -> list[str]:
        """The model's own tokens as text, exactly: no ``clean_up_tokenization_spaces`` (which a
        SentencePiece tokenizer saves as on, deleting the space before every comma)."""
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _prompt_rows(self, n: int, ctx: SampleContext, decoding: Decoding) -> np.ndarray | None:
        """The run rows to continue (``train``: this generation's training rows, ``real``: the
        original real ones), every row once per pass in a random order; ``None`` without prompts."""
        if decoding.prompt == "none":
            return None
        rows = np.asarray(ctx.real if decoding.prompt == "real" else ctx.prompts)
        passes = -(-n // len(rows))
        order = np.concatenate([ctx.rng.permutation(len(rows)) for _ in range(passes)])[:n]
        return rows[order]

    def sample(self, n: int, ctx: SampleContext) -> np.ndarray:
        """``n`` rows of ``ctx.length`` run tokens: the model's new tokens after each prompt (see
        the module doc); with ``keep_prompts``, that share of the prompt rows comes back unchanged."""
        decoding = ctx.decoding
        chosen = self._prompt_rows(n, ctx, decoding)
        keep = np.zeros(n, dtype=bool)
        if chosen is not None and decoding.keep_prompts:
            keep[ctx.rng.choice(n, size=round(decoding.keep_prompts * n), replace=False)] = True
        out = np.empty((n, ctx.length), dtype=np.int32)
        if keep.any():
            out[keep] = chosen[keep]
        if not keep.all():
            out[~keep] = self._continue(None if chosen is None else chosen[~keep], int((~keep).sum()), ctx, decoding)
        return out

    def _continue(self, rows: np.ndarray | None, n: int, ctx: SampleContext, decoding: Decoding) -> np.ndarray:
        """New rows after each of ``rows`` (after BOS alone when ``None``)."""
        from collapse_bench.builtin.models import torch_decoding

        prompts = [np.array([self.bos])] * n if rows is None else self._sequences(rows)
        if self.own_tokens:  # the row is exactly ctx.length new ids, unchanged (EOS suppressed until then)
            more = torch_decoding.generate(
                self.module, prompts, decoding, (ctx.length, ctx.length), eos=self.tokenizer.eos_token_id,
                rng=ctx.rng, cfg=self.training, dev=self._device(),
            )  # fmt: skip
            return np.array(more, dtype=np.int32)
        most = decoding.max_new_tokens or ctx.length
        span = (decoding.min_new_tokens or 0, most)
        new = [np.empty(0, dtype=np.int64)] * n
        got: list[list[int]] = [[] for _ in range(n)]
        pending = list(range(n))
        for _ in range(ROUNDS):
            contexts = [np.concatenate([prompts[i], new[i]]) for i in pending]
            more = torch_decoding.generate(
                self.module, contexts, decoding, span, eos=self.tokenizer.eos_token_id, rng=ctx.rng,
                cfg=self.training, dev=self._device(),
            )  # fmt: skip
            for i, tokens in zip(pending, more, strict=True):
                new[i] = np.concatenate([new[i], tokens])
            texts = self.decode([new[i] for i in pending])
            for i, encoding in zip(pending, self.run_tokenizer.encode_batch(texts), strict=True):
                got[i] = encoding.ids[: ctx.length]
            pending = [i for i in pending if len(got[i]) < ctx.length]
            if not pending:
                return np.array(got, dtype=np.int32)
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
        self.run_table, self._own_tokens = None, None
