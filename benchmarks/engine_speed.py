"""Speed of the run engine: executors on a grid of real work (P5), and a cold run against its rerun (P3).

Run by hand, on a quiet machine (every figure is a wall-clock time of the ``collapse-bench``
command, with a cache of its own)::

    python benchmarks/engine_speed.py [--out benchmarks/results]
    python benchmarks/engine_speed.py --tiny       # the same sequence on a tiny grid, to check it runs

P5 runs one grid (default: ngram and gpt-tiny on ``quick`` with 2 seeds and 2 mixers: 8 chains of
3 generations, on 1024 training rows and 1024 samples)
with ``--executor local``, with ``--jobs 2``, on a local 2-CPU Ray cluster, and, for the Ray
executor's own overhead, on a 1-CPU Ray cluster against ``local``, each twice in mirrored order;
the clusters are started beforehand (their start-up is not the run's). It checks that every executor gives the same
records. P3 runs the default run (``collapse-bench run``) cold, then again into a new run
directory over the same cache. Results go to ``engine_speed.json`` and ``engine_speed.md`` in ``--out``.
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
from typing import Any

GRID = ["--protocol", "quick", "--model", "ngram", "--model", "gpt-tiny", "--seeds", "2"]
GRID += ["--mixer", "replace", "--mixer", "accumulate", "--generations", "3"]
# quick's 4096 rows make one gpt-tiny step a minute on 2 cores; a quarter of the data keeps the
# whole benchmark (four executors) near ten minutes with the same shape of work.
GRID += ["--set", "data.train_size=1024", "--set", "samples=1024"]
TINY = ["--protocol", "smoke", "--model", "ngram", "--model", "categorical", "--seeds", "2", "--generations", "2"]


def cli(root: Path, name: str, *args: str, cache: str | None = None) -> float:
    """Seconds that ``collapse-bench run ARGS`` takes, into ``root/runs/name`` with the cache ``cache``."""
    env = {**os.environ, "COLLAPSE_BENCH_CACHE": str(root / (cache or f"cache-{name}")), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [sys.executable, "-c", "from collapse_bench.cli import main; main()", "run", *args]
    start = time.perf_counter()
    done = subprocess.run([*command, "--run-id", name, "-q"], cwd=root, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    return seconds


def numbers(root: Path, name: str) -> dict:
    """What must not depend on the executor: scores and training-set sizes, by cell and generation."""
    out = {}
    for line in (root / "runs" / name / "records.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[(r["model"], r["mixer"], r["seed"], r["generation"])] = (r["scores"], r["train_rows"])
    return out


def on_ray_cluster(cpus: int, root: Path, name: str, grid: list[str]) -> float:
    """Seconds of the grid on a local Ray cluster of ``cpus`` CPUs, started (and timed) apart from the run."""
    import ray

    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    try:
        address = ray.get_runtime_context().gcs_address
        return cli(root, name, *grid, "--executor", "ray", "--ray-address", address)
    finally:
        ray.shutdown()


EXECUTORS = {
    "local": lambda root, name, grid: cli(root, name, *grid),
    "jobs2": lambda root, name, grid: cli(root, name, *grid, "--jobs", "2"),
    "ray2": lambda root, name, grid: on_ray_cluster(2, root, name, grid),
    "ray1": lambda root, name, grid: on_ray_cluster(1, root, name, grid),
}


def p5(root: Path, grid: list[str]) -> dict[str, Any]:
    """Each executor twice, in mirrored order (local, jobs2, ray2, ray1, ray1, ray2, jobs2, local).

    The host's speed drifts between minutes; the mean of a mirrored pair cancels a steady drift,
    so ratios of means compare executors at the same moment on average.
    """
    order = [*EXECUTORS, *reversed(EXECUTORS)]
    runs: dict[str, list[float]] = {name: [] for name in EXECUTORS}
    for name in order:
        run_id = f"{name}-{len(runs[name]) + 1}"
        runs[name].append(EXECUTORS[name](root, run_id, grid))
        print(f"{run_id}: {runs[name][-1]:.1f} s", flush=True)
    seconds = {name: sum(times) / len(times) for name, times in runs.items()}
    reference = numbers(root, "local-1")
    names = [f"{name}-{i}" for name in EXECUTORS for i in (1, 2)]
    return {
        "order": order,
        "runs": runs,
        "seconds": seconds,
        "speedup_jobs2": seconds["local"] / seconds["jobs2"],
        "speedup_ray2": seconds["local"] / seconds["ray2"],
        "ray_overhead_one_worker": seconds["ray1"] / seconds["local"] - 1,
        "identical_records": all(numbers(root, n) == reference for n in names),
        "records": len(reference),
    }


def p3(root: Path, default: list[str]) -> dict[str, Any]:
    """The default run cold, then rerun over its cache, twice (fresh caches), keeping the mean."""
    cold = [cli(root, f"cold-{i}", *default, cache=f"cache-p3-{i}") for i in (1, 2)]
    rerun = [cli(root, f"rerun-{i}", *default, cache=f"cache-p3-{i}") for i in (1, 2)]
    cold_s, rerun_s = sum(cold) / 2, sum(rerun) / 2
    return {"cold": cold, "rerun": rerun, "cold_s": cold_s, "rerun_s": rerun_s, "rerun_fraction": rerun_s / cold_s}


def markdown(results: dict[str, Any]) -> str:
    s, r = results["p5"]["seconds"], results["p5"]

    def times(name: str) -> str:
        return ", ".join(f"{t:.1f}" for t in r["runs"][name])

    overhead = r["ray_overhead_one_worker"]

    lines = [
        f"# Engine speed ({results['setup']['machine']}, {results['setup']['cpus']} CPUs)",
        "",
        f"P5: `collapse-bench run {' '.join(results['setup']['grid'])}` ({r['records']} records)",
        "",
        "Each executor ran twice in mirrored order (local, jobs2, ray2, ray1, then back), so a steady drift",
        "of the host's speed cancels in the means.",
        "",
        "| executor | runs (s) | mean (s) | speed-up over local |",
        "|---|---|---|---|",
        f"| local | {times('local')} | {s['local']:.1f} | 1.00x |",
        f"| --jobs 2 | {times('jobs2')} | {s['jobs2']:.1f} | {r['speedup_jobs2']:.2f}x |",
        f"| ray, 2-CPU local cluster | {times('ray2')} | {s['ray2']:.1f} | {r['speedup_ray2']:.2f}x |",
        f"| ray, 1-CPU local cluster | {times('ray1')} | {s['ray1']:.1f} | overhead {overhead:+.1%} |",
        "",
        f"Identical records across executors: {r['identical_records']}.",
        "",
        f"P3: the default run cold {results['p3']['cold_s']:.1f} s, rerun {results['p3']['rerun_s']:.2f} s "
        f"({results['p3']['rerun_fraction']:.1%} of cold; means of two).",
        "",
        f"Measured {results['setup']['measured']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--tiny", action="store_true", help="a tiny grid, to check the benchmark runs (no figures)")
    args = parser.parse_args()
    grid = TINY if args.tiny else GRID
    default = ["--protocol", "smoke"] if args.tiny else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {
            "setup": {
                "grid": grid,
                "cpus": os.cpu_count(),
                "machine": platform.processor() or platform.machine(),
                "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "p5": p5(root, grid),
            "p3": p3(root, default),
        }
    name = "engine_speed_tiny" if args.tiny else "engine_speed"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(markdown(results))
    print(markdown(results))
    if not results["p5"]["identical_records"]:
        raise SystemExit("the executors gave different records")


if __name__ == "__main__":
    main()
