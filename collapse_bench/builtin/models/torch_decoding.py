"""Decoding a transformer model: ancestral sampling through the KV cache, greedy, and beam search.

Part of the torch side of the transformer models (:mod:`torch_support` has the shared plumbing).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from collapse_bench.builtin.models.torch_support import autocast, generator, pad

if TYPE_CHECKING:
    from collapse_bench.builtin.models.torch_lm import Training
    from collapse_bench.decoding import Decoding


def _penalize(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """Repetition penalty (Keskar et al. 2019): seen tokens' logits divided by it if positive, else multiplied."""
    scaled = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, scaled, logits)


#: Slack in "the mass reaches p" of top-p: float32 probabilities that should sum to p exactly
#: (0.5 + 0.3 for p = 0.8) come out a few ulps under it.
TOP_P_SLACK = 1e-6


def filter_logits(logits: torch.Tensor, dec: Decoding) -> torch.Tensor:
    """Logits after temperature, top-k and top-p (in that order, as ``transformers``); removed tokens get -inf.

    Top-k keeps the k highest logits and every token tied with the k-th. Top-p keeps the
    smallest set of most probable tokens whose probability reaches ``top_p`` (within
    :data:`TOP_P_SLACK`); among tokens of equal probability at the boundary the lower id is kept.
    """
    logits = logits / (dec.temperature or 1.0)
    if dec.top_k:
        kth = logits.topk(min(dec.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if dec.top_p is not None and dec.top_p < 1:
        sorted_logits, index = logits.sort(dim=-1, descending=True, stable=True)
        probs = sorted_logits.softmax(-1).double()
        before = probs.cumsum(-1) - probs  # the mass of the more probable tokens
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter(1, index, before >= dec.top_p - TOP_P_SLACK)
        logits = logits.masked_fill(drop, -math.inf)
    return logits


def _choose(logits: torch.Tensor, dec: Decoding, gen: torch.Generator) -> torch.Tensor:
    """Next token per row: argmax (greedy), or a draw after :func:`filter_logits`."""
    if dec.strategy == "greedy":
        return logits.argmax(-1)
    return _draw(filter_logits(logits, dec).softmax(-1), gen)


def _draw(probs: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """One index per row with the rows' probabilities, by inverting the CDF (far faster than multinomial on CPU).

    ``searchsorted(..., right=True)`` lands past any run of zero-probability entries, so a token
    with probability 0 is never drawn.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand((len(probs), 1), generator=gen, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=probs.shape[-1] - 1)


class _HfDecoder:
    """Any causal LM through its own forward and KV cache: new token ids in, last-position logits out."""

    def __init__(self, model: Any, mask: torch.Tensor | None) -> None:
        self.model, self.mask, self.cache = model, mask, None

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if self.mask is not None and self.cache is not None:
            self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        positions = None if self.mask is None else (self.mask.cumsum(1) - 1).clamp(min=0)[:, -ids.shape[1] :]
        out = self.model(
            input_ids=ids, attention_mask=self.mask, position_ids=positions, cache=self.cache, use_cache=True
        )
        self.cache = out.cache
        return out.logits[:, -1].float()


class _Gpt2Decoder:
    """GPT-2 decoding without the general forward: the same modules, a preallocated KV cache.

    For unpadded batches, where it computes what ``GPT2LMHeadModel`` computes with a fraction of
    the per-step overhead, which dominates small models. It reads transformers' module layout,
    so its first step is checked against the model's own forward: if transformers has changed
    underneath it (a module renamed, a computation changed), it warns once and decodes through
    the model's forward instead (slower, same results).
    """

    def __init__(self, model: Any, total: int) -> None:
        self.model, self.total, self.pos = model, total, 0
        self.heads = model.config.n_head
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.fallback: _HfDecoder | None = None

    def _attend(self, i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if len(self.keys) <= i:
            shape = (k.shape[0], k.shape[1], self.total, k.shape[3])
            self.keys.append(k.new_empty(shape))
            self.values.append(v.new_empty(shape))
        end = self.pos + k.shape[2]
        self.keys[i][:, :, self.pos : end] = k
        self.values[i][:, :, self.pos : end] = v
        # Only the first call (from position 0) has several queries, so is_causal aligns correctly.
        keys, values = self.keys[i][:, :, :end], self.values[i][:, :, :end]
        return F.scaled_dot_product_attention(q, keys, values, is_causal=q.shape[2] > 1)

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if self.fallback is not None:
            return self.fallback(ids)
        if self.pos > 0:
            return self._step(ids)
        expected = self.model(input_ids=ids).logits[:, -1].float()
        try:
            logits = self._step(ids)
            problem = None if torch.allclose(logits, expected, rtol=1e-2, atol=1e-2) else "computes other logits"
        except (AttributeError, RuntimeError, TypeError) as exc:
            problem = f"fails ({type(exc).__name__}: {exc})"
        if problem is None:
            return logits
        import transformers

        warnings.warn(
            f"collapse-bench: the lean GPT-2 decoder {problem} under transformers {transformers.__version__}; "
            "decoding through the model's own forward instead (slower, same results)",
            RuntimeWarning,
            stacklevel=2,
        )
        self.fallback = _HfDecoder(self.model, None)
        return self.fallback(ids)

    def _step(self, ids: torch.Tensor) -> torch.Tensor:
        body = self.model.transformer
        batch, length = ids.shape
        x = body.wte(ids) + body.wpe(torch.arange(self.pos, self.pos + length, device=ids.device))
        for i, block in enumerate(body.h):
            qkv = block.attn.c_attn(block.ln_1(x)).view(batch, length, 3, self.heads, -1)
            attended = self._attend(i, *qkv.permute(2, 0, 3, 1, 4))
            x = x + block.attn.c_proj(attended.transpose(1, 2).reshape(batch, length, -1))
            x = x + block.mlp(block.ln_2(x))
        self.pos += length
        return self.model.lm_head(body.ln_f(x[:, -1])).float()


def decoder(model: Any, mask: torch.Tensor | None, total: int) -> _HfDecoder | _Gpt2Decoder:
    """The fastest exact way to decode ``model``: the lean GPT-2 path for unpadded batches, else its forward.

    The lean path computes plain GPT-2 attention (scaled by 1/sqrt(head width)); a GPT-2 config
    that changes how attention is computed decodes through the model's forward.
    """
    config = model.config
    lean = mask is None and config.model_type == "gpt2" and not config.add_cross_attention
    lean = lean and config.scale_attn_weights and not config.scale_attn_by_inverse_layer_idx
    lean = lean and not config.reorder_and_upcast_attn
    return _Gpt2Decoder(model, total) if lean else _HfDecoder(model, mask)


def _ancestral(
    model: Any, prompts: list[np.ndarray], dec: Decoding, span: tuple[int, int], eos: int | None, banned: list[int],
    gen: torch.Generator, dev: torch.device,
) -> torch.Tensor:  # fmt: skip
    """Sample (or decode greedily) up to ``span[1]`` new tokens per prompt; rows that ended hold ``eos``."""
    min_new, max_new = span
    ids, mask = pad(prompts, 0 if eos is None else eos, left=True)
    ids, mask = ids.to(dev), None if mask is None else mask.to(dev)
    step = decoder(model, mask, ids.shape[1] + max_new)
    logits = step(ids)
    present = torch.ones_like(ids) if mask is None else mask
    seen = torch.zeros(logits.shape, dtype=torch.long, device=dev).scatter_add_(1, ids, present) > 0
    done = torch.zeros(len(prompts), dtype=torch.bool, device=dev)
    new = []
    for t in range(max_new):
        if dec.repetition_penalty != 1:
            logits = _penalize(logits, seen, dec.repetition_penalty)
        forbid = banned + ([eos] if eos is not None and t < min_new else [])
        if forbid:
            logits[:, forbid] = -math.inf
        token = _choose(logits, dec, gen)
        if eos is not None:
            token = token.masked_fill(done, eos)
            done |= token == eos
        new.append(token)
        if bool(done.all()) or t == max_new - 1:
            break
        seen.scatter_(1, token[:, None], True)
        logits = step(token[:, None])
    return torch.stack(new, dim=1)


def _beam(
    model: Any, prompts: list[np.ndarray], dec: Decoding, span: tuple[int, int], eos: int | None, banned: list[int],
    dev: torch.device,
) -> torch.Tensor:  # fmt: skip
    """Beam search through ``model.generate``: the new tokens of the best beam of every prompt."""
    pad_id = eos if eos is not None else 0
    ids, mask = pad(prompts, pad_id, left=True)
    mask = torch.ones_like(ids) if mask is None else mask
    out = model.generate(
        input_ids=ids.to(dev),
        attention_mask=mask.to(dev),
        do_sample=False,
        num_beams=dec.beams,
        repetition_penalty=dec.repetition_penalty,
        min_new_tokens=span[0],
        max_new_tokens=span[1],
        eos_token_id=eos,
        pad_token_id=pad_id,
        bad_words_ids=[[b] for b in banned] or None,
    )
    return out[:, ids.shape[1] :]


@torch.inference_mode()
def generate(
    model: Any,
    prompts: list[np.ndarray],
    dec: Decoding,
    span: tuple[int, int],
    *,
    eos: int | None,
    banned: Sequence[int] = (),
    rng: np.random.Generator,
    cfg: Training,
    dev: torch.device,
) -> list[np.ndarray]:
    """New tokens for every prompt, between ``span[0]`` and ``span[1]`` of them, cut before ``eos``.

    ``banned`` tokens are never produced (e.g. a BOS symbol that only starts sequences).
    Prompts are decoded ``cfg.eval_batch_size`` at a time, left-padded.
    """
    model.to(dev).eval()
    gen = generator(rng, dev)
    # One token per step is too little work for bf16 to pay for autocast's casts on a CPU
    # (measured: fp32 decodes about 1.2x faster), so "auto" decodes in fp32 there.
    precision = "fp32" if cfg.precision == "auto" and dev.type == "cpu" else cfg.precision
    out: list[np.ndarray] = []
    for start in range(0, len(prompts), cfg.eval_batch_size):
        chunk = prompts[start : start + cfg.eval_batch_size]
        with autocast(precision, dev):
            if dec.strategy == "beam":
                new = _beam(model, chunk, dec, span, eos, list(banned), dev)
            else:
                new = _ancestral(model, chunk, dec, span, eos, list(banned), gen, dev)
        for row in new.cpu().numpy():
            end = np.flatnonzero(row == eos)[0] if eos is not None and (row == eos).any() else len(row)
            out.append(row[:end])
    return out
