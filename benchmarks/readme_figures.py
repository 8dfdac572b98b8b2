"""Measure every run time, memory and cache figure that README.md and docs/ quote, and write them in.

Run on a quiet machine, from the repository root, in the environment the README sets up::

    python benchmarks/readme_figures.py                # default, theory and curation runs (minutes)
    python benchmarks/readme_figures.py --slow         # also shakespeare-gpt and quick with gpt-tiny
    python benchmarks/readme_figures.py --tests        # also the test suite (`pytest -q`)

Each command runs in a fresh process with a fresh cache (``COLLAPSE_BENCH_CACHE`` in a temporary
folder) and a temporary output folder, so nothing of the repository or the user's cache is
touched or reused: "cold" is a first run, "rerun" the same command again on the cache the first
one filled. Wall seconds, CPU seconds of the command and its children and peak resident memory
are taken from the operating system; cache size is the disk space the cache occupies, counted
as ``collapse-bench cache info`` counts it (allocated blocks of files and folders, so many small
files count as what they take, not their lengths).

Results go to ``benchmarks/results/readme_figures.json``, with the machine, after each
measurement (each with its time); figures not measured in this invocation keep their earlier
values there. Then every marker ``<!--fig:NAME-->...<!--/fig-->`` in README.md and docs/*.md is
rewritten with the figure NAME from that file, so a quoted figure is always the last measured one.
``--no-write`` only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "readme_figures.json"
MARKER = re.compile(r"<!--fig:([a-z0-9_]+)-->(.*?)<!--/fig-->", re.S)

#: The runs measured every time, by figure name: their arguments to ``collapse-bench run``.
GRID = {
    "default": [],
    "theory": ["--protocol", "theory"],
    "shakespeare_curation": ["--protocol", "shakespeare-curation"],
}
#: The runs measured with ``--slow`` (minutes each).
SLOW = {
    "shakespeare_gpt": ["--protocol", "shakespeare-gpt"],
    "quick_gpt_tiny": ["--model", "gpt-tiny", "--mixer", "replace", "--generations", "3"],
}

#: Prints the wall seconds, CPU seconds and peak RSS (KiB on Linux) of the command in argv.
TIMER = """
import resource, subprocess, sys, time
start = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
wall = time.perf_counter() - start
use = resource.getrusage(resource.RUSAGE_CHILDREN)
print(code, wall, use.ru_utime + use.ru_stime, use.ru_maxrss)
"""


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Wall and CPU seconds and peak memory of one command, in a process of its own."""
    out = subprocess.run([sys.executable, "-c", TIMER, *argv], capture_output=True, text=True, env=env, cwd=cwd)
    code, wall, cpu, rss_kib = out.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {code}; run it by hand to see why")
    return {"wall_s": round(float(wall), 1), "cpu_s": round(float(cpu), 1), "peak_rss_mib": round(int(rss_kib) / 1024)}


def disk_usage(folder: Path) -> dict[str, float]:
    """Disk space ``folder`` occupies and its file count, as ``collapse-bench cache info`` counts them."""
    from collapse_bench.cache import disk_usage as blocks_and_files

    used, files = blocks_and_files([folder, *folder.rglob("*")])
    return {"disk_mib": round(used / 2**20, 1), "files": files}


def run_twice(name: str, args: list[str], scratch: Path) -> dict[str, dict]:
    """A run with an empty cache, then the same run again on the cache it filled."""
    cache = scratch / f"cache-{name}"
    env = {**os.environ, "COLLAPSE_BENCH_CACHE": str(cache)}
    command = ["collapse-bench", "run", *args, "--out", str(scratch / "runs"), "-q"]
    cold = timed(command, env, scratch)
    stored = disk_usage(cache)
    rerun = timed(command, env, scratch)
    return {"command": " ".join(command[:-3]), "cold": cold, "rerun": rerun, "cache": stored}


def figures(results: dict) -> dict[str, str]:
    """The text of every figure the docs quote, by marker name, from the measured results."""
    out: dict[str, str] = {}
    for name, r in results["runs"].items():
        out[f"{name}_cold"] = f"{r['cold']['wall_s']:g} s ({r['cold']['cpu_s']:g} s of CPU)"
        out[f"{name}_rerun"] = f"{r['rerun']['wall_s']:g} s"
        out[f"{name}_memory"] = f"{r['cold']['peak_rss_mib']:,} MiB"
        out[f"{name}_cache"] = f"{r['cache']['disk_mib']:g} MiB in {r['cache']['files']:,} files"
    if "tests" in results:
        out["tests"] = f"{results['tests']['wall_s']:g} s"
    return out


def rewrite(texts: dict[str, str]) -> list[Path]:
    """Put the figures into every marker of README.md and docs/*.md; the files changed."""
    changed = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        new = MARKER.sub(lambda m: f"<!--fig:{m[1]}-->{texts.get(m[1], m[2])}<!--/fig-->", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def now() -> str:
    """The time of a measurement, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def save(results: dict) -> None:
    """Write what has been measured so far to :data:`RESULTS`."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--slow", action="store_true", help="also shakespeare-gpt and 3 generations of quick with gpt-tiny (replace)"
    )
    parser.add_argument("--tests", action="store_true", help="also time the test suite (pytest -q)")
    parser.add_argument("--no-write", action="store_true", help="measure only; leave README.md and docs/ alone")
    args = parser.parse_args()
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "runs": dict(previous.get("runs", {})),
    }
    grid = GRID | (SLOW if args.slow else {})
    if "tests" in previous:
        results["tests"] = previous["tests"]
    with tempfile.TemporaryDirectory(prefix="readme-figures-") as tmp:
        for name, run_args in grid.items():
            results["runs"][name] = run_twice(name, run_args, Path(tmp)) | {"measured": now()}
            print(name, json.dumps(results["runs"][name]), flush=True)
            save(results)  # a later measurement that fails loses none of the earlier ones
    if args.tests:
        results["tests"] = timed([sys.executable, "-m", "pytest", "-q"], dict(os.environ), ROOT) | {"measured": now()}
        print("tests", json.dumps(results["tests"]), flush=True)
        save(results)
    if not args.no_write:
        for path in rewrite(figures(results)):
            print(f"rewrote figures in {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
