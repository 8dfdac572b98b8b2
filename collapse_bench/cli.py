"""The ``collapse-bench`` command line: run, list, show, leaderboard.

Every error a user can cause ends in one line on stderr (cause and fix) and exit code 2.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import click

from collapse_bench.errors import ComponentError, UserError

KIND_TITLES = {
    "dataset": "Datasets",
    "model": "Models",
    "mixer": "Mixers",
    "metric": "Metrics",
    "protocol": "Protocols",
}


def _fail(exc: UserError) -> None:
    msg = f"collapse-bench: error: {exc.cause}"
    if exc.fix:
        msg += f"\n  fix: {exc.fix}"
    click.echo(msg, err=True)
    sys.exit(2)


class Group(click.Group):
    """Turns :class:`UserError` raised by any command into a clean message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            _fail(exc)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="collapse-bench")
def cli() -> None:
    """Benchmark model collapse: train, sample, retrain on samples, measure every generation."""


@cli.command()
@click.option("--protocol", "-p", default="quick", show_default=True, help="Protocol name or path to a .toml file.")
@click.option("--model", "models", multiple=True, metavar="SPEC", help="Model SPEC, e.g. ngram:order=4 (repeatable).")
@click.option(
    "--mixer", "mixers", multiple=True, metavar="SPEC", help="Mixer SPEC, e.g. keep-real:fraction=0.1 (repeatable)."
)
@click.option(
    "--metric", "metrics", multiple=True, metavar="SPEC", help="Metric SPEC (repeatable); default: the protocol's."
)
@click.option("--dataset", metavar="SPEC", help="Replace the protocol's dataset (makes a protocol variant).")
@click.option("--seeds", type=click.IntRange(min=1), help="Number of seeds (0..N-1); default: the protocol's.")
@click.option("--generations", type=click.IntRange(min=2), help="Generations per chain, generation 0 included.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("runs"),
    show_default=True,
    help="Folder that receives the run directory.",
)
@click.option("--run-id", help="Name of the run directory (default: protocol, time and a random suffix).")
@click.option("--quiet", "-q", is_flag=True, help="No progress and no summary.")
def run(protocol, models, mixers, metrics, dataset, seeds, generations, out, run_id, quiet) -> None:
    """Run a protocol over the grid of models x mixers x seeds and write a run directory."""
    from rich.console import Console

    from collapse_bench import report
    from collapse_bench.plugins import get_registry
    from collapse_bench.protocol import resolve_protocol
    from collapse_bench.runner import Runner, finish, load_data, make_plan, manifest
    from collapse_bench.specs import Spec
    from collapse_bench.store import RunDir

    console = Console(stderr=True, quiet=quiet)
    started = time.perf_counter()
    proto = resolve_protocol(protocol).override(
        seeds=seeds, generations=generations, dataset=Spec.parse(dataset) if dataset else None
    )
    plan = make_plan(get_registry(), proto, models, mixers, metrics)
    run_id = run_id or f"{proto.name}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    rundir = RunDir(out / run_id)
    with console.status(f"loading {plan.dataset.label} and fitting the tokenizer"):
        real = load_data(plan)
    rundir.create()
    rundir.write_manifest(manifest(plan, run_id, sys.argv))
    if real.tokenizer is not None:
        real.tokenizer.save(str(rundir.path / RunDir.TOKENIZER))
    console.print(
        f"[bold]{proto.label}[/] on {plan.dataset.label}: {len(real.train)} train rows, {len(real.test)} test rows; "
        f"{len(plan.models)} model(s) x {len(plan.mixers)} mixer(s) x {len(plan.seeds)} seed(s), "
        f"{proto.generations} generations -> {rundir.path}"
    )
    _execute(Runner, plan, rundir, console, finish)
    if not quiet:
        click.echo(report.summary(rundir))
        click.echo(f"\nrun directory: {rundir.path}  ({time.perf_counter() - started:.1f} s)")


def _execute(runner_cls, plan, rundir, console, finish) -> None:
    """Run the plan with progress; on a plugin failure keep what finished and explain."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
        disable=not console.is_terminal,
    )  # fmt: skip
    task = progress.add_task("training", total=plan.steps)

    def on_step(text: str) -> None:
        if console.is_terminal:
            progress.update(task, advance=1, description=text)
        else:
            console.print(f"done: {text}", highlight=False)

    try:
        with progress:
            runner_cls(plan, rundir, on_step).execute()
    except ComponentError as exc:
        (rundir.path / "error.log").write_text(exc.traceback, encoding="utf-8")
        finish(rundir, "failed", str(exc))
        raise
    except KeyboardInterrupt:
        finish(rundir, "interrupted")
        raise
    finish(rundir, "complete")


@cli.command(name="list")
@click.argument("kind", required=False, type=click.Choice(list(KIND_TITLES)))
def list_components(kind: str | None) -> None:
    """Show every registered dataset, model, mixer, metric and protocol, with its plugin of origin."""
    from tabulate import tabulate

    from collapse_bench.plugins import get_registry
    from collapse_bench.specs import declared_params

    registry = get_registry()
    for k, title in KIND_TITLES.items():
        if kind and k != kind:
            continue
        rows = []
        for r in registry.entries(k):
            params = "" if k == "protocol" else ", ".join(
                f"{p.name}={p.default!r}" if p.default is not p.empty else f"{p.name} (required)"
                for p in declared_params(r.obj).values()
            )  # fmt: skip
            rows.append((r.name, r.description, params, r.origin))
        click.echo(f"{title}\n" + tabulate(rows, headers=["name", "description", "parameters", "from"]) + "\n")


@cli.command()
@click.argument("rundir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--samples", is_flag=True, help="Print decoded synthetic samples.")
@click.option("--generation", type=int, help="With --samples: only this generation.")
def show(rundir: Path, samples: bool, generation: int | None) -> None:
    """Summarize a run: headline metrics by generation, timings, and optionally its samples."""
    from collapse_bench import report
    from collapse_bench.store import RunDir

    run_ = RunDir(rundir)
    m = run_.manifest()
    click.echo(f"{m['run_id']}: {m['protocol']['name']}@{m['protocol']['version']}, status {m['status']}")
    click.echo(report.summary(run_))
    click.echo("\nseconds by activity\n" + report.timings(run_).round(2).to_string())
    if samples:
        click.echo("\n" + report.samples(run_, generation))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write markdown (and PNG plots beside it)."
)
def leaderboard(paths: tuple[Path, ...], out: Path | None) -> None:
    """Aggregate runs into ranked markdown tables, one per protocol."""
    from collapse_bench import leaderboard as lb

    boards = lb.build(list(paths))
    plots: dict[str, str] = {}
    if out:
        from collapse_bench.plots import plot_board

        out.parent.mkdir(parents=True, exist_ok=True)
        for b in boards:
            png = out.with_name(f"{out.stem}-{b.protocol.replace('@', '-')}-{b.fingerprint}.png")
            plots[b.fingerprint] = plot_board(b, png).name
    text = lb.to_markdown(boards, plots)
    if out:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out} ({len(boards)} table(s), {len(plots)} plot(s))")
    else:
        click.echo(text)


def main() -> None:
    """Console-script entry point."""
    cli()
