"""``collapse-bench run``: its options, and the run from a parsed command line to the summary printed."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

import click

from collapse_bench.commands.folders import plain_name, writable
from collapse_bench.errors import UserError


@click.command()
@click.option("--protocol", "-p", default="quick", show_default=True, help="Protocol name or path to a .toml file.")
@click.option("--model", "models", multiple=True, metavar="SPEC", help="Model SPEC, e.g. ngram:order=4 (repeatable).")
@click.option(
    "--mixer", "mixers", multiple=True, metavar="SPEC", help="Mixer SPEC, e.g. keep-real:fraction=0.1 (repeatable)."
)
@click.option(
    "--metric", "metrics", multiple=True, metavar="SPEC", help="Metric SPEC (repeatable); default: the protocol's."
)
@click.option("--dataset", metavar="SPEC", help="Replace the protocol's dataset (makes a protocol variant).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="FIELD=VALUE",
    help="Override a protocol field, e.g. data.test_size=512 (repeatable; makes a protocol variant).",
)
@click.option("--seeds", type=click.IntRange(min=1), help="Number of seeds (0..N-1); default: the protocol's.")
@click.option("--generations", type=click.IntRange(min=2), help="Generations per chain, generation 0 included.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Folder that receives the run directory.",
)
@click.option("--run-id", help="Name of the run directory; an unfinished run of that name is resumed.")
@click.option(
    "--retry-failed",
    type=click.Path(file_okay=False, path_type=Path),
    metavar="RUN_DIR",
    help="Rerun the failed cells of RUN_DIR (finished ones come from the cache).",
)
@click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache folder [default: $COLLAPSE_BENCH_CACHE or ~/.cache/collapse-bench].",
)
@click.option(
    "--executor",
    metavar="NAME",
    help="Who runs the steps: local (one process), processes (--jobs N) or ray. [default: local, "
    "or processes with --jobs above 1]",
)
@click.option("--jobs", "-j", type=int, default=1, show_default=True, help="Worker processes (--executor processes).")
@click.option("--ray-address", metavar="ADDRESS", help="Ray cluster to join [default: $RAY_ADDRESS, else a local one].")
@click.option("--gpus-per-task", type=float, metavar="N", help="GPUs each Ray task asks for (default: the model's).")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary.")
def run(
    protocol, models, mixers, metrics, dataset, sets, seeds, generations, out, run_id, retry_failed, cache_dir,
    executor, jobs, ray_address, gpus_per_task, quiet,
) -> None:  # fmt: skip
    """Run a protocol over the grid of models x mixers x seeds and write a run directory.

    Every finished step (a trained generation and its scores) is kept in a content-addressed
    cache, so the same command run again, after a crash or with more seeds or metrics,
    recomputes nothing it already has. Steps run in this process, in --jobs worker processes,
    or on a Ray cluster (docs/scale-out.md), with the same numbers.
    """
    from collapse_bench.interrupts import stop_signals_interrupt

    with stop_signals_interrupt():
        _run(
            protocol, models, mixers, metrics, dataset, sets, seeds, generations, out, run_id, retry_failed, cache_dir,
            executor, jobs, ray_address, gpus_per_task, quiet,
        )  # fmt: skip


def _run(
    protocol, models, mixers, metrics, dataset, sets, seeds, generations, out, run_id, retry_failed, cache_dir,
    executor, jobs, ray_address, gpus_per_task, quiet,
):  # fmt: skip
    from rich.console import Console

    from collapse_bench import report
    from collapse_bench.cache import Cache
    from collapse_bench.engine.driver import run as run_grid
    from collapse_bench.engine.executors import ExecutorOptions
    from collapse_bench.plan import RunConfig
    from collapse_bench.progress import ConsoleProgress
    from collapse_bench.store import RunDir

    console = Console(stderr=True, quiet=quiet, soft_wrap=True)  # a long line stays whole in a pipe or log
    notes = Console(stderr=True, soft_wrap=True)  # warnings and what was reused show even with --quiet
    started = time.perf_counter()
    options = ExecutorOptions(executor or ("processes" if jobs > 1 else "local"), jobs, ray_address, gpus_per_task)
    if retry_failed:
        ctx = click.get_current_context()
        extra = [
            p.opts[0]
            for p in ctx.command.params
            if p.name not in ("retry_failed", "cache_dir", "quiet", "executor", "jobs", "ray_address", "gpus_per_task")
            and ctx.get_parameter_source(p.name) is not click.core.ParameterSource.DEFAULT
        ]
        if extra:
            raise UserError(
                f"--retry-failed reruns a run exactly as it was configured; {', '.join(extra)} would change it",
                "drop those flags, or start a new run with them (finished steps come from the cache)",
            )
        if not (Path(retry_failed) / RunDir.MANIFEST).is_file():
            raise UserError(
                f"{str(retry_failed)!r} holds no run", "give the directory of an earlier run to --retry-failed"
            )
        config = RunConfig.from_dict(RunDir(retry_failed).manifest().get("config", {}))
    else:
        if protocol.endswith(".toml") or Path(protocol).is_file():
            protocol = str(Path(protocol).resolve())
        config = RunConfig(protocol, models, mixers, metrics, dataset, seeds, generations, sets=sets)
        writable(out, "output folder")
        plain_name(run_id)
    cache = Cache(cache_dir, log=lambda msg: notes.print(f"[yellow]{msg}[/]", highlight=False))
    writable(cache.root, "cache folder")
    result = run_grid(
        config, out, run_id=run_id, rundir=retry_failed, cache=cache, executor=options, retry=bool(retry_failed),
        argv=sys.argv, progress=ConsoleProgress(console, notes),
    )  # fmt: skip
    rundir = result.rundir
    notes.print(
        f"steps reused from the cache ({cache.root}): {result.reused}; computed: {result.computed}", highlight=False
    )
    if not quiet:
        click.echo(report.summary(rundir))
        click.echo(f"\nrun directory: {rundir.path}  ({time.perf_counter() - started:.1f} s)")
        text = result.real is not None and result.real.modality == "text"  # vector samples are pages of numbers
        click.echo(f"next: collapse-bench show {shlex.quote(str(rundir.path))}{' --samples' if text else ''}")
    failures = list(rundir.failures())  # this attempt's and those an earlier attempt's merge kept
    if failures:
        lines = [
            f"  {f['model']} / {f['mixer']} / seed {f['seed']} at generation {f['generation']}: {f['error']}"
            for f in failures
        ]
        raise UserError(
            f"{len(failures)} cell(s) failed; the others finished:\n" + "\n".join(lines),
            f"tracebacks are in {rundir.path / RunDir.FAILURES}; after fixing the cause, "
            f"`collapse-bench run --retry-failed {rundir.path}` reruns only those cells",
        )
