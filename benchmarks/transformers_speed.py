"""Training and sampling speed of the transformer models against the transformers defaults.

Run by hand (minutes on 2 CPU cores), after ``pip install -e '.[bench]'`` (the ``Trainer`` needs accelerate)::

    python benchmarks/transformers_speed.py [--steps 60] [--out benchmarks/results]

On the same network (the ``gpt`` model's default size: GPT-2, 4 layers, 256 wide), the same
batches of the same data (the ``quick`` protocol's Shakespeare blocks) and in one process, it
measures

* training tokens/s: ``collapse_bench``'s loop (bf16 autocast where fast, with and without
  ``torch.compile``) against ``transformers.Trainer`` with its default (fp32) settings;
* sampling tokens/s at batch 32, 64 new tokens from BOS with top-k 50: ours (``precision =
  "auto"``, which decodes in fp32 on a CPU, and forced bf16) against
  ``model.generate(do_sample=True)`` with its other defaults (fp32, KV cache).

Each timing follows a warm-up on the same shapes. Results go to ``transformers_speed.json``
and ``transformers_speed.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collapse_bench.builtin.datasets import Shakespeare
from collapse_bench.builtin.models import torch_decoding, torch_support, torch_training
from collapse_bench.builtin.models.gpt import GptModel
from collapse_bench.builtin.models.torch_lm import Training
from collapse_bench.data import prepare
from collapse_bench.decoding import Decoding
from collapse_bench.plugins import get_registry

BATCH = 32
SAMPLE_BATCH = 32
NEW_TOKENS = 64
LR = 1e-3


def fresh_model(vocab_size: int, length: int) -> Any:
    """The same initial network every time."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(GptModel()._config(vocab_size, length))


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_ours(seqs: list[np.ndarray], vocab: int, length: int, steps: int, compile_: bool) -> float:
    """Tokens/s of torch_training.train, after a warm-up run (which pays for compiling)."""
    model = fresh_model(vocab, length)
    cfg = Training(steps=steps, batch_size=BATCH, compile=compile_, schedule="constant")
    dev = torch_support.device("auto")
    torch_training.train(model, seqs, Training(batch_size=BATCH, compile=compile_), 3, LR, rng(0), dev)
    return steps * BATCH * len(seqs[0]) / timed(lambda: torch_training.train(model, seqs, cfg, steps, LR, rng(1), dev))


def train_trainer(seqs: list[np.ndarray], vocab: int, length: int, steps: int) -> float:
    """Tokens/s of transformers.Trainer with default arguments (fp32), after a warm-up run."""
    from transformers import Trainer, TrainingArguments

    model = fresh_model(vocab, length)
    rows = [{"input_ids": s.tolist(), "labels": s.tolist()} for s in seqs]
    with tempfile.TemporaryDirectory() as tmp:

        def trainer(n: int) -> Trainer:
            args = TrainingArguments(
                output_dir=tmp, per_device_train_batch_size=BATCH, max_steps=n, learning_rate=LR,
                lr_scheduler_type="constant", report_to=[], save_strategy="no", logging_strategy="no",
                disable_tqdm=True,
            )  # fmt: skip
            return Trainer(model=model, args=args, train_dataset=rows)

        trainer(3).train()
        run = trainer(steps)
        return steps * BATCH * len(seqs[0]) / timed(run.train)


def sample_ours(model: Any, bos: int, precision: str) -> float:
    decoding = Decoding(top_k=50)
    cfg = Training(eval_batch_size=SAMPLE_BATCH, precision=precision)
    prompts = [np.array([bos])] * SAMPLE_BATCH
    span = (NEW_TOKENS, NEW_TOKENS)

    def go() -> None:
        torch_decoding.generate(
            model,
            prompts,
            decoding,
            span,
            eos=None,
            banned=[bos],
            rng=rng(0),
            cfg=cfg,
            dev=torch_support.device("auto"),
        )

    go()
    return SAMPLE_BATCH * NEW_TOKENS / min(timed(go) for _ in range(3))


def sample_generate(model: Any, bos: int) -> float:
    ids = torch.full((SAMPLE_BATCH, 1), bos)

    def go() -> None:
        with torch.no_grad():
            model.generate(input_ids=ids, do_sample=True, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)

    go()
    return SAMPLE_BATCH * NEW_TOKENS / min(timed(go) for _ in range(3))


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps timed per contender")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    real = prepare(Shakespeare(), get_registry().protocol("quick"))
    vocab, length = real.vocab_size, real.train.shape[1]
    model = GptModel()
    model.module = fresh_model(vocab, length)
    seqs = model._sequences(real.train)
    results: dict[str, Any] = {
        "setup": {
            "model": "gpt (GPT-2, 4 layers, 256 wide)",
            "parameters": sum(p.numel() for p in model.module.parameters()),
            "train_batch": f"{BATCH} x {len(seqs[0])} tokens",
            "train_steps": args.steps,
            "sample": f"batch {SAMPLE_BATCH}, {NEW_TOKENS} new tokens, top-k 50",
            "bf16_fast": torch_support.bf16_fast(torch_support.device("auto")),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    }
    train = {
        "trainer_fp32": train_trainer(seqs, vocab, length, args.steps),
        "ours": train_ours(seqs, vocab, length, args.steps, compile_=False),
        "ours_compiled": train_ours(seqs, vocab, length, args.steps, compile_=True),
    }
    trained = fresh_model(vocab, length).eval()
    sample = {
        "generate_defaults": sample_generate(trained, model.bos),
        "ours_bf16": sample_ours(trained, model.bos, "bf16"),
        "ours": sample_ours(trained, model.bos, "auto"),
    }
    results["train_tokens_per_s"] = train
    results["sample_tokens_per_s"] = sample
    results["speedup"] = {
        "train": max(train["ours"], train["ours_compiled"]) / train["trainer_fp32"],
        "train_without_compile": train["ours"] / train["trainer_fp32"],
        "sample": sample["ours"] / sample["generate_defaults"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "transformers_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "| measure | transformers default | collapse-bench | speed-up |",
        "|---|---|---|---|",
        f"| training tokens/s (Trainer, fp32) | {train['trainer_fp32']:.0f} | {train['ours']:.0f} "
        f"({train['ours_compiled']:.0f} compiled) | {results['speedup']['train']:.2f}x |",
        f"| sampling tokens/s (generate, batch {SAMPLE_BATCH}) | {sample['generate_defaults']:.0f} | "
        f"{sample['ours']:.0f} ({sample['ours_bf16']:.0f} bf16) | {results['speedup']['sample']:.2f}x |",
    ]
    (args.out / "transformers_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
