"""What `zipf` and `self-bleu` add to the default `quick` run's wall time.

Run by hand (a few minutes on 2 CPU cores)::

    python benchmarks/new_metrics_time.py [--protocol quick] [--repeats 1] [--out benchmarks/results]

Runs ``collapse-bench run --protocol PROTOCOL`` with the protocol's own metrics ("off") and with
``zipf`` and ``self-bleu`` added ("on"), each in a fresh cache so everything is computed, and
prints the wall time of each and the growth in percent, and writes them to ``new_metrics_time.json``
in ``--out``. Besides the end-to-end times it reads
the per-metric seconds the runs record (``collapse-bench show`` lists them too).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from collapse_bench import report
from collapse_bench.plugins import get_registry
from collapse_bench.store import RunDir


def timed_run(protocol: str, metrics: list[str], root: Path) -> tuple[float, Path]:
    """Seconds of one run in a fresh cache under ``root``, and its run directory."""
    args = [sys.executable, "-c", "from collapse_bench.cli import main; main()", "run", "-p", protocol, "-q"]
    args += [a for m in metrics for a in ("--metric", m)] + ["--out", str(root / "runs")]
    env = os.environ | {"COLLAPSE_BENCH_CACHE": str(root / "cache")}
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env)
    seconds = time.perf_counter() - start
    (run,) = (root / "runs").iterdir()
    return seconds, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="quick")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    results: dict = {"protocol": args.protocol, "cpus": os.cpu_count(), "machine": platform.platform(), "repeats": []}
    base = list(get_registry().protocol(args.protocol).metrics)
    for repeat in range(args.repeats):
        times = {}
        for label, metrics in (("off", base), ("on", [*base, "zipf", "self-bleu"])):
            with tempfile.TemporaryDirectory() as tmp:
                seconds, run = timed_run(args.protocol, metrics, Path(tmp))
                activity = report.timings(RunDir(run))
                extra = {k: round(v, 2) for k, v in activity.items() if k in ("metric:zipf", "metric:self-bleu")}
            times[label] = seconds
            print(f"repeat {repeat}: metrics {label}: {seconds:.1f} s {extra}")
        growth = 100 * (times["on"] / times["off"] - 1)
        print(f"repeat {repeat}: growth {growth:.1f}%")
        results["repeats"].append(
            {"off_s": round(times["off"], 1), "on_s": round(times["on"], 1), "growth_pct": round(growth, 1)}
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "new_metrics_time.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out / 'new_metrics_time.json'}")


if __name__ == "__main__":
    main()
