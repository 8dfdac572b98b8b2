"""Disk space a protocol's default run takes in a fresh cache: what `cache info` reports, and why.

Run by hand (minutes for ``quick``; ``theory`` writes thousands of small steps)::

    python benchmarks/cache_size.py [--protocol quick] [--out benchmarks/results]

It runs ``collapse-bench run --protocol P`` into a temporary run folder and cache, then measures
the cache three ways: the space the disk really holds (allocated blocks of files and folders,
what ``cache info`` and ``du`` report), the sum of the files' apparent sizes, and the number of
files, by kind (model, samples, metadata, scores). Results go to ``cache_size-<protocol>.json``
and ``.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from collapse_bench.cache import Cache, disk_usage


def _kind(path: Path) -> str:
    if "model" in path.parts:
        return "model"
    return {"samples.npy": "samples", "meta.json": "metadata", "scores.json": "scores"}.get(path.name, "other")


def measure(protocol: str) -> dict:
    """Run ``protocol`` into a fresh cache and measure it."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        env = {**os.environ, "COLLAPSE_BENCH_CACHE": str(cache)}
        cli = [sys.executable, "-c", "from collapse_bench.cli import main; main()"]
        subprocess.run([*cli, "run", "--protocol", protocol, "--out", tmp, "-q"], env=env, check=True)
        info = Cache(cache).info()
        kinds: dict[str, dict[str, int]] = {}
        for path in cache.rglob("*"):
            if path.is_file():
                entry = kinds.setdefault(_kind(path), {"files": 0, "apparent_bytes": 0, "disk_bytes": 0})
                entry["files"] += 1
                entry["apparent_bytes"] += path.stat().st_size
                entry["disk_bytes"] += disk_usage([path])[0]
        return {
            "protocol": protocol,
            "steps": info["steps"],
            "disk_bytes": info["bytes"],
            "files": info["files"],
            "apparent_bytes": sum(k["apparent_bytes"] for k in kinds.values()),
            "by_kind": kinds,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="quick")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    result = measure(args.protocol)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"cache_size-{args.protocol}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    mib = 2**20
    lines = [
        f"# Cache size of the `{args.protocol}` protocol's default run",
        "",
        f"{result['steps']} steps, {result['files']} files: {result['disk_bytes'] / mib:.1f} MiB on disk "
        f"(`cache info`), {result['apparent_bytes'] / mib:.1f} MiB of file content.",
        "",
        "| kind | files | content (MiB) | on disk (MiB) |",
        "|---|---|---|---|",
        *(
            f"| {k} | {v['files']} | {v['apparent_bytes'] / mib:.1f} | {v['disk_bytes'] / mib:.1f} |"
            for k, v in sorted(result["by_kind"].items())
        ),
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
