"""gpt-tiny sampling and training with torch's default thread count against one thread, idle and busy.

Run by hand on the machine whose defaults are in question::

    python benchmarks/threads.py [--rows 512] [--steps 20] [--out benchmarks/results]

For each of two conditions, *idle* (nothing else running) and *busy* (one more process per core
spinning in a loop, as other work on a shared machine does), it measures in fresh processes:

* sampling: ``gpt-tiny`` on the ``quick`` protocol's tokenizer, ``--rows`` rows of 64 tokens
  at temperature 0.8, by ``torch_decoding.generate`` with ``OMP_NUM_THREADS`` set to the
  CPU count (torch's default) and to 1, so the library's own choice does not interfere;
* training: ``--steps`` AdamW steps of batch 32 at the same two counts.

Each figure is the best of ``--repeats`` timings after a warm-up. The results, with the
machine, go to ``threads.json`` in ``--out``; docs that quote thread figures cite that file.
The library's default (one torch thread per process unless ``OMP_NUM_THREADS`` is set;
``torch_support.default_threads``) is chosen from it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

#: What one measuring process runs: prints seconds per sampling pass and per training run.
CHILD = """
import sys, time
import numpy as np
import torch
from collapse_bench.builtin.datasets import Shakespeare
from collapse_bench.builtin.models import torch_decoding, torch_training
from collapse_bench.builtin.models.gpt import GptTiny
from collapse_bench.builtin.models.torch_lm import Training
from collapse_bench.contexts import FitContext
from collapse_bench.data import prepare
from collapse_bench.decoding import Decoding
from collapse_bench.plugins import get_registry

rows, steps, repeats = (int(a) for a in sys.argv[1:4])
real = prepare(Shakespeare(), get_registry().protocol("quick"))
model = GptTiny()
fit = FitContext(0, 0, np.random.default_rng(0), {"steps": 1}, real.vocab_size, real.tokenizer)
model.fit(real.train[:64], fit)
bos = real.vocab_size
prompts = [np.array([bos])] * rows
cfg, dec = Training(eval_batch_size=256), Decoding(temperature=0.8)
span = (real.train.shape[1], real.train.shape[1])
cpu = torch.device("cpu")

def sample():
    rng = np.random.default_rng(0)
    torch_decoding.generate(model.module, prompts, dec, span, eos=None, banned=[bos], rng=rng, cfg=cfg, dev=cpu)

def train():
    seqs = model._sequences(real.train[: 32 * steps])
    torch_training.train(model.module, seqs, Training(batch_size=32), steps, 1e-3, np.random.default_rng(0), cpu)

def best(fn):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

print(best(sample), best(train), torch.get_num_threads())
"""


def spin(stop: multiprocessing.Event) -> None:
    """Keep one core busy until told to stop."""
    while not stop.is_set():
        sum(range(10_000))


def measure(threads: int, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    argv = [sys.executable, "-c", CHILD, str(args.rows), str(args.steps), str(args.repeats)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout.split()
    sample_s, train_s, used = float(out[0]), float(out[1]), int(out[2])
    return {"threads": used, "sample_seconds": sample_s, "train_seconds": train_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=512, help="rows sampled per timing")
    parser.add_argument("--steps", type=int, default=20, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    results: dict = {
        "setup": {
            "model": "gpt-tiny",
            "sample": f"{args.rows} rows x 64 tokens, temperature 0.8",
            "train": f"{args.steps} steps x batch 32",
            "cpus": cores,
            "machine": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        "idle": {},
        "busy": {},
    }
    counts = sorted({cores, 1}, reverse=True)
    for condition in ("idle", "busy"):
        stop = multiprocessing.Event()
        spinners = [
            multiprocessing.Process(target=spin, args=(stop,)) for _ in range(cores if condition == "busy" else 0)
        ]
        for p in spinners:
            p.start()
        try:
            for n in counts:
                results[condition][f"{n}_threads"] = measure(n, args)
                print(condition, n, results[condition][f"{n}_threads"], flush=True)
        finally:
            stop.set()
            for p in spinners:
                p.join()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "threads.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
