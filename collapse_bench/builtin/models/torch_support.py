"""The torch plumbing the transformer models share: device, precision, threads, seeding, loading, padding.

The torch side of the transformer models is imported only when one trains, scores or samples
(see :mod:`torch_lm`): this module, :mod:`torch_training` (the training loop and likelihood
passes) and :mod:`torch_decoding` (sampling). Speed comes from doing less than the general
tools: a plain AdamW loop under bf16 autocast (no ``Trainer`` bookkeeping), likelihood passes
in large batches under ``torch.inference_mode``, and a sampling loop that feeds one token per
step through the KV cache with nothing but the logit processing the protocol asks for. A
model's ``device`` says where it runs (CUDA when present, by default); nothing needs a GPU, and
weights are saved so that a CPU-only machine loads what a GPU trained.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.utils import logging as hf_logging

from collapse_bench.errors import ConfigError

hf_logging.disable_progress_bar()  # save_pretrained's per-shard bars would swamp the run's progress lines


def device(choice: str = "auto") -> torch.device:
    """The device a model asked for: ``cuda``, ``cpu``, or ``auto`` (CUDA when present, else the CPU)."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device=cuda was asked for, but torch sees no CUDA GPU on this machine",
            "use device=auto (or cpu), or run the steps on GPU machines (docs/scale-out.md)",
        )
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


def bf16_fast(dev: torch.device) -> bool:
    """Whether ``dev`` runs bf16 matrix products natively (CUDA with bf16, CPUs with AMX or AVX512-BF16)."""
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def autocast(precision: str, dev: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast when ``precision`` asks for it (or is ``auto`` and bf16 is fast), else nothing."""
    if precision == "bf16" or (precision == "auto" and bf16_fast(dev)):
        return torch.autocast(dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


#: Environment variables by which a user (or a worker's set-up) chooses how many threads to use.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_threads() -> None:
    """One intra-op thread for torch in this process, unless the user chose a count.

    Torch's default (one thread per core) is faster on an idle machine, but token-by-token
    decoding synchronises its threads at every token, and when other processes keep the cores
    busy it collapses: ``benchmarks/threads.py`` measured gpt-tiny sampling on 2 cores at 1.7x
    faster idle and 10.5x slower busy (``benchmarks/results/threads.json``). One thread never
    collapses. Setting ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``), as the engine does for each
    worker process, leaves the count to that setting. Runs record the count with every step.
    """
    if not any(os.environ.get(v) for v in THREAD_VARIABLES):
        torch.set_num_threads(1)


default_threads()


def seed(rng: np.random.Generator) -> None:
    """Seed torch from the run's random stream, so the same seed gives the same model."""
    torch.manual_seed(int(rng.integers(2**63)))


def generator(rng: np.random.Generator, dev: torch.device) -> torch.Generator:
    """A torch random stream on ``dev`` seeded from the run's stream."""
    return torch.Generator(device=dev).manual_seed(int(rng.integers(2**63)))


def load_causal_lm(path: str, **kwargs: Any) -> Any:
    """``AutoModelForCausalLM.from_pretrained`` in fp32 (the master weights; bf16 is autocast)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)


def pad(seqs: Sequence[np.ndarray], value: int, *, left: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sequences as one ``(n, longest)`` id tensor and its attention mask (``None`` if none is padded)."""
    longest = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), longest), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), longest), dtype=torch.long)
    for i, s in enumerate(seqs):
        span = slice(longest - len(s), longest) if left else slice(0, len(s))
        ids[i, span] = torch.as_tensor(np.asarray(s, dtype=np.int64))
        mask[i, span] = 1
    return ids, None if bool(mask.all()) else mask
