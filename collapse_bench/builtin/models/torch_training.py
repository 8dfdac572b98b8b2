"""Training a transformer model, and the likelihood passes: next-token NLL of sequences.

Part of the torch side of the transformer models (:mod:`torch_support` has the shared plumbing).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from collapse_bench.builtin.models.torch_support import autocast, pad

if TYPE_CHECKING:
    from collapse_bench.builtin.models.torch_lm import Training

#: Labels that the loss ignores (padding), as in ``transformers``.
IGNORE = -100


def _lr_factor(step: int, total: int, cfg: Training, lr: float) -> float:
    """The learning rate at ``step`` relative to ``lr``: linear warm-up, then the schedule down to ``min_lr``."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    shape = 1 - progress if cfg.schedule == "linear" else 0.5 * (1 + math.cos(math.pi * progress))
    floor = min(cfg.min_lr / lr, 1.0)
    return floor + (1 - floor) * shape


def _batches(n: int, size: int, steps: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """``steps`` batches of row indices: consecutive slices of a fresh permutation every epoch."""
    order = np.empty(0, dtype=np.int64)
    for _ in range(steps):
        while len(order) < min(size, n):
            order = np.concatenate([order, rng.permutation(n)])
        yield order[:size]
        order = order[size:]


def _epoch(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches: a fresh permutation cut into batches, the last one smaller (as a
    shuffling ``DataLoader`` without ``drop_last``)."""
    order = rng.permutation(n)
    return [order[i : i + size] for i in range(0, n, size)]


def _loss(forward: Any, seqs: list[np.ndarray], rows: np.ndarray, cfg: Training, dev: torch.device) -> torch.Tensor:
    """The mean next-token cross-entropy of a batch of sequences (padding ignored), as ``transformers`` computes it."""
    ids, mask = pad([seqs[i] for i in rows], 0)
    labels = ids if mask is None else ids.masked_fill(mask == 0, IGNORE)
    ids, labels = ids.to(dev), labels.to(dev)
    with autocast(cfg.precision, dev):
        return forward(input_ids=ids, attention_mask=None if mask is None else mask.to(dev), labels=labels).loss


def train(
    model: Any,
    seqs: list[np.ndarray],
    cfg: Training,
    steps: int,
    lr: float,
    rng: np.random.Generator,
    dev: torch.device,
    validation: list[np.ndarray] | None = None,
) -> dict[str, int]:
    """Fit ``model`` to ``seqs`` by AdamW on the next-token loss; return what it cost.

    ``steps`` optimizer steps (:meth:`Training.steps_for`: the same under every mixer by
    default); batches are drawn without replacement within a pass over ``seqs``. With
    ``cfg.by_epoch`` every epoch is instead exactly one pass over ``seqs`` (the last batch
    smaller), the schedule steps once per epoch or per step, and with ``validation`` the weights
    of the epoch with the lowest mean validation loss are kept (Lightning's
    ``ModelCheckpoint(monitor="val_loss")``). The cost: ``optimizer_steps`` and ``tokens`` (the
    tokens of every batch, padding not counted).
    """
    model.to(dev).train()
    # The loss this loop trains on; transformers warns on every run when the class name
    # (GPT2LMHeadModel) does not name it and no loss_type is set.
    model.loss_type = "ForCausalLM"
    if cfg.by_epoch:
        epochs = [_epoch(len(seqs), cfg.batch_size, rng) for _ in range(int(cfg.epochs))]
    else:
        epochs = [list(_batches(len(seqs), cfg.batch_size, steps, rng))]
    per_epoch = cfg.schedule_interval == "epoch"
    total = len(epochs) if per_epoch else sum(map(len, epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _lr_factor(step, total, cfg, lr))
    forward = torch.compile(model) if cfg.compile else model
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    step = tokens = 0
    for batches in epochs:
        for rows in batches:
            loss = _loss(forward, seqs, rows, cfg, dev)
            tokens += sum(len(seqs[i]) for i in rows)
            if not torch.isfinite(loss):  # fails the cell (recorded, the others go on) instead of training on garbage
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}; lower lr")
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if not per_epoch:
                schedule.step()
        if per_epoch:
            schedule.step()
        if validation is not None:
            value = validation_loss(model, validation, cfg, dev)
            if best is None or value < best[0]:
                best = (value, {k: v.detach().clone() for k, v in model.state_dict().items()})
            model.train()
    if best is not None:
        model.load_state_dict(best[1])
    model.eval()
    return {"optimizer_steps": step, "tokens": tokens}


@torch.inference_mode()
def validation_loss(model: Any, seqs: list[np.ndarray], cfg: Training, dev: torch.device) -> float:
    """Mean next-token cross-entropy over every predicted token of ``seqs`` (the sequences' own
    losses weighted by their predicted tokens: Lightning's batch-size-weighted epoch mean of the
    per-batch losses when every sequence has the same length)."""
    nll = token_nll(model, seqs, cfg, dev)
    return float(np.concatenate(nll).mean())


@torch.inference_mode()
def token_nll(model: Any, seqs: list[np.ndarray], cfg: Training, dev: torch.device) -> list[np.ndarray]:
    """NLL in nats of every token but the first (BOS) of each sequence, in large batches.

    Sequences are scored in order of length, so that a batch pads little.
    """
    model.to(dev).eval()
    out: list[np.ndarray] = [np.empty(0)] * len(seqs)
    order = np.argsort([len(s) for s in seqs], kind="stable")
    for start in range(0, len(seqs), cfg.eval_batch_size):
        rows = order[start : start + cfg.eval_batch_size]
        ids, mask = pad([seqs[i] for i in rows], 0)
        ids = ids.to(dev)
        with autocast(cfg.precision, dev):
            logits = model(input_ids=ids, attention_mask=None if mask is None else mask.to(dev)).logits
        nll = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), ids[:, 1:], reduction="none").cpu().numpy()
        for j, i in enumerate(rows):
            out[i] = nll[j, : len(seqs[i]) - 1].astype(np.float64)
    return out
