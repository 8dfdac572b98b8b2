"""The ``collapse-bench`` command line: run, list, show, leaderboard, export, publish.

Every error a user can cause ends in two lines on stderr (``error:`` cause, ``fix:``) and exit code 2.
"""

from __future__ import annotations

import re
import shlex
import signal
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from collapse_bench.errors import ComponentError, UserError
from collapse_bench.hookspecs import KINDS
from collapse_bench.progress import PipedProgress


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
            if isinstance(exc, ComponentError):  # raised before any cell ran: no failures.jsonl holds it
                exc.fix = f"{exc.fix}; the traceback is in {exc.save_traceback()}"
            _fail(exc)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="collapse-bench")
@click.option(
    "--plugins-dir",
    "plugins_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Also load every .py file in DIR as a plugin (repeatable).",
)
def cli(plugins_dirs: tuple[Path, ...]) -> None:
    """Benchmark model collapse: train, sample, retrain on samples, measure every generation."""
    from collapse_bench import plugins
    from collapse_bench.cache import adopt_homeless_defaults

    plugins.PLUGIN_DIRS[:] = list(plugins_dirs)
    warnings.showwarning = _show_warning
    note = adopt_homeless_defaults()
    if note:
        click.echo(f"collapse-bench: {note}", err=True)


_python_showwarning = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (a damaged run skipped, say) as one plain line; others as Python shows them."""
    if category.__module__.startswith("collapse_bench"):
        click.echo(f"collapse-bench: warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


#: Free space below which a run is refused before it starts.
MIN_FREE_BYTES = 200 * 2**20


def _writable(folder: Path, what: str) -> None:
    """Refuse a folder that could not be created or written, or a disk that is nearly full.

    Nothing is created: a refused run leaves no trace.
    """
    import os
    import shutil

    existing = folder.resolve()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        problem = "is not a folder" if not existing.is_dir() else "is not writable"
        raise UserError(
            f"cannot write the {what} {str(folder)!r}: {str(existing)!r} {problem}", f"choose a writable {what}"
        )
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        raise UserError(
            f"only {free // 2**20} MiB free on the disk of {str(folder)!r}",
            "free some space (`collapse-bench cache prune` removes cached steps) or choose another folder",
        )


def _plain_name(run_id: str | None) -> None:
    """Refuse a ``--run-id`` that is not a plain name: the run must land inside ``--out``."""
    if run_id is None:
        return
    if not run_id.strip() or run_id in (".", "..") or any(c in run_id for c in "/\\\0") or run_id.startswith("."):
        raise UserError(
            f"--run-id {run_id!r} is not a plain name",
            "give a name without slashes or a leading dot (e.g. --run-id trial-1); choose the folder with --out",
        )


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
        _writable(out, "output folder")
        _plain_name(run_id)
    cache = Cache(cache_dir, log=lambda msg: notes.print(f"[yellow]{msg}[/]", highlight=False))
    _writable(cache.root, "cache folder")
    result = run_grid(
        config, out, run_id=run_id, rundir=retry_failed, cache=cache, executor=options, retry=bool(retry_failed),
        argv=sys.argv, progress=_Progress(console, notes),
    )  # fmt: skip
    rundir = result.rundir
    notes.print(
        f"steps reused from the cache ({cache.root}): {result.reused}; computed: {result.computed}", highlight=False
    )
    if not quiet:
        click.echo(report.summary(rundir))
        click.echo(f"\nrun directory: {rundir.path}  ({time.perf_counter() - started:.1f} s)")
        click.echo(f"next: collapse-bench show {shlex.quote(str(rundir.path))} --samples")
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


class _Progress:
    """The run's progress: a bar counting finished steps (across workers) on a terminal, else sparse lines."""

    def __init__(self, console, notes) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console, self.notes = console, notes
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console, disable=not console.is_terminal,
        )  # fmt: skip
        self.task = None
        self.piped: PipedProgress | None = None  # sparse lines for a pipe or log, made when the run starts
        self.status = None  # the spinner while the data is loaded and split

    def preparing(self, plan, step: str) -> None:
        if self.status is None:
            self.status = self.console.status(f"loading {plan.dataset.label}")
            self.status.start()
        self.status.update(f"{step} ({plan.dataset.label})")

    def start(self, plan, rundir, real, steps: int, resumed: bool) -> None:
        self._stop_status()
        for note in real.notes:
            self.notes.print(note, highlight=False, markup=False)
        (self.notes if resumed else self.console).print(
            f"[bold]{plan.protocol.label}[/] on {plan.dataset.label}: {len(real.train)} train rows, "
            f"{len(real.test)} test rows; {len(plan.models)} model(s) x {len(plan.mixers)} mixer(s) x "
            f"{len(plan.seeds)} seed(s), {plan.protocol.generations} generations -> {rundir.path}"
            + (" (resumed)" if resumed else "")
        )
        self.task = self.bar.add_task("training", total=steps)
        self.piped = PipedProgress(
            steps, plan.protocol.generations, lambda line: self.console.print(line, highlight=False)
        )
        self.bar.start()

    def step(self, text: str, failed: bool = False) -> None:
        if self.console.is_terminal:
            self.bar.update(self.task, advance=0 if failed else 1, description=text)
        else:
            self.piped.step(text)

    def stop(self) -> None:
        self._stop_status()
        self.bar.stop()

    def interrupted(self, rundir) -> None:
        self.notes.print(
            f"interrupted: the same command resumes {rundir.path}; finished steps are kept", highlight=False
        )

    def _stop_status(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


@cli.group()
def cache() -> None:
    """Inspect or prune the content-addressed cache of finished steps."""


@cache.command(name="info")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), help="Cache folder.")
def cache_info(cache_dir: Path | None) -> None:
    """Where the cache is, how many steps it holds and how large it is."""
    from collapse_bench.cache import Cache

    info = Cache(cache_dir).info()
    click.echo(
        f"cache: {info['root']}\nsteps: {info['steps']}\n"
        f"disk space used: {info['bytes'] / 2**20:.1f} MiB in {info['files']} files"
    )


@cache.command(name="prune")
@click.option("--cache", "cache_dir", type=click.Path(file_okay=False, path_type=Path), help="Cache folder.")
@click.option("--older-than", type=click.FloatRange(min=0), metavar="DAYS", help="Only steps unused for DAYS days.")
@click.option("--all", "everything", is_flag=True, help="Remove every cached step.")
def cache_prune(cache_dir: Path | None, older_than: float | None, everything: bool) -> None:
    """Remove cached steps; runs already written keep their records."""
    from collapse_bench.cache import Cache

    if older_than is None and not everything:
        raise UserError("cache prune needs --older-than DAYS or --all", "say which steps to remove")
    if older_than is not None and older_than != older_than:  # NaN passes FloatRange and every comparison
        raise UserError("--older-than nan is not a number of days", "give a number of days, e.g. --older-than 30")
    removed, freed = Cache(cache_dir).prune(None if everything else older_than)
    click.echo(f"removed {removed} step(s), {freed / 2**20:.1f} MiB")


@cli.command(name="plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_command(as_json: bool) -> None:
    """Show every plugin: its distribution and version, its hooks and the components it registers."""
    import json

    from collapse_bench.plugins import get_registry

    registry = get_registry()
    rows = []
    for info in registry.plugins:
        components = {kind: [r.name for r in registry.entries(kind) if r.plugin == info.name] for kind in KINDS}
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "source": info.source,
                "hooks": info.hooks,
                "components": {k: v for k, v in components.items() if v},
                "problem": info.problem,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        origin = f"{row['distribution']} {row['version']}" if row["distribution"] else row["source"]
        click.echo(f"{row['name']}  ({origin})")
        if row["problem"]:
            click.echo(f"    NOT LOADED: {row['problem']}")
        if row["hooks"]:
            click.echo(f"    hooks: {', '.join(row['hooks'])}")
        for kind, names in row["components"].items():
            click.echo(f"    {kind}s: {', '.join(names)}")


@cli.command(name="list")
@click.argument("kind", required=False, type=click.Choice(list(KINDS)))
def list_components(kind: str | None) -> None:
    """Show every registered dataset, model, mixer, metric and protocol, with its plugin of origin."""
    from tabulate import tabulate

    from collapse_bench.plugins import get_registry
    from collapse_bench.specs import declared_params

    registry = get_registry()
    for k, base in KINDS.items():
        if kind and k != kind:
            continue
        rows = []
        for r in registry.entries(k):
            if base is None:  # a protocol: where its file is
                detail = str(r.obj)
            else:
                detail = ", ".join(
                    f"{p.name}={p.default!r}" if p.default is not p.empty else f"{p.name} (required)"
                    for p in declared_params(r.obj).values()
                )
            rows.append((r.name, r.description, detail, r.origin))
        headers = ["name", "description", "file" if base is None else "parameters", "from"]
        click.echo(f"{k.capitalize()}s\n" + tabulate(rows, headers=headers) + "\n")


@cli.group()
def protocol() -> None:
    """Inspect protocols."""


@protocol.command(name="show")
@click.argument("name")
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="Override a field, as `run --set` does.")
def protocol_show(name: str, sets: tuple[str, ...]) -> None:
    """Print the resolved protocol NAME (a registered name or a .toml path) and its fingerprint."""
    import json

    from collapse_bench.plugins import get_registry

    resolved = get_registry().protocol(name, sets)
    click.echo(f"{resolved.label}  fingerprint {resolved.fingerprint}  ({resolved.source})")
    click.echo(json.dumps(resolved.to_dict(), indent=2, default=str))


@cli.command()
@click.argument("rundir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--samples", is_flag=True, help="Print decoded synthetic samples.")
@click.option("--generation", type=int, help="With --samples: only this generation.")
def show(rundir: Path, samples: bool, generation: int | None) -> None:
    """Summarize a run: headline metrics by generation, timings, and optionally its samples."""
    from collapse_bench import report
    from collapse_bench.protocol import label_of
    from collapse_bench.results import damage, damaged
    from collapse_bench.store import RunDir

    run_ = RunDir(rundir)
    if not (rundir / RunDir.MANIFEST).is_file():
        raise UserError(f"{str(rundir)!r} holds no run (no {RunDir.MANIFEST})", "give a run directory, e.g. runs/<id>")
    problem = damage(run_)
    if problem:
        raise damaged(run_, problem)
    m = run_.manifest()
    status = m.get("status", "unknown") + (f" ({m['error']})" if m.get("error") else "")
    proto = m["protocol"]
    label = label_of(proto["name"], proto["version"], proto.get("overrides", {}))
    click.echo(f"{m['run_id']}: {label}, status {status}")
    click.echo(f"dataset {proto['dataset']}, {proto['generations']} generations, {len(m['seeds'])} seed(s)\n")
    click.echo(report.summary(run_))
    click.echo("\nseconds by activity; " + report.threads(run_) + "\n" + report.timings(run_).round(2).to_string())
    if samples:
        click.echo("\n" + report.samples(run_, generation))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write markdown (and PNG plots beside it)."
)
@click.option("--strict", is_flag=True, help="A damaged run is an error instead of being skipped with a warning.")
def leaderboard(paths: tuple[Path, ...], out: Path | None, strict: bool) -> None:
    """Aggregate runs into ranked markdown tables with 95% intervals, one per protocol."""
    from collapse_bench import leaderboard as lb

    boards = lb.build(list(paths), strict)
    plots: dict[str, str] = {}
    if out:
        from collapse_bench.figures import values_panel

        with _writing_out(out):
            out.parent.mkdir(parents=True, exist_ok=True)
            for b in boards:
                name = re.sub(r"[^A-Za-z0-9.+_]+", "-", b.label.split(" (")[0])  # quick@1.0 -> quick-1.0
                png = out.with_name(f"{out.stem}-{name}-{b.fingerprint}.png")
                png.write_bytes(values_panel(b.standing)[0])
                plots[b.fingerprint] = png.name
            out.write_text(lb.to_markdown(boards, plots), encoding="utf-8")
        click.echo(f"wrote {out} ({len(boards)} table(s), {len(plots)} plot(s))")
    else:
        click.echo(lb.to_markdown(boards, plots))


@contextmanager
def _writing_out(out: Path) -> Iterator[None]:
    """Turn a failed write of ``leaderboard --out`` (read-only, full, a file in the way) into one clear line."""
    try:
        yield
    except OSError as exc:
        raise UserError(
            f"cannot write {str(out)!r}: {exc.strerror} ({exc.filename})", "choose a writable --out path"
        ) from None


@cli.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Bundle file.")
def export(runs: tuple[Path, ...], out: Path) -> None:
    """Export the results of RUNS (run directories or folders of them) as one result bundle (JSON).

    The bundle holds every value of every seed and generation, a few samples, the protocol and
    plugin versions and hashes of the run files; nothing private. docs/results.md has its schema.
    """
    from collapse_bench import bundle as bundles
    from collapse_bench.store import write_atomic

    made = bundles.export(list(runs))
    _writable(out.parent, "output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, bundles.dumps(made))
    cells = {(r.model, r.mixer, r.seed) for r in made.records}
    click.echo(
        f"wrote {out}: {made.protocol.name}@{made.protocol.version} ({made.protocol.fingerprint}), "
        f"{len(made.entries)} entries, {len(cells)} cells, {len(made.runs)} run(s)"
    )


@cli.command()
@click.argument("bundles", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--to",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("leaderboards"),
    show_default=True,
    help="The leaderboard folder.",
)
@click.option(
    "--check",
    "check_root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Only check that the generated files of this leaderboard folder match its bundles (exit 1 if not).",
)
@click.option(
    "--embed",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A markdown file whose <!--leaderboard:NAME--> markers get NAME's headline table (checked with --check).",
)
def publish(bundles: tuple[Path, ...], root: Path, check_root: Path | None, embed: tuple[Path, ...]) -> None:
    """Validate BUNDLES, store them in the leaderboard folder and regenerate its pages, figures and site."""
    from collapse_bench import publish as pub

    if check_root is not None:
        stale = pub.check(check_root, embed)
        if stale:
            again = "".join(f" --embed {f}" for f in embed)
            click.echo(f"out of date in {check_root}: {', '.join(stale)}", err=True)
            click.echo(f"  fix: run `collapse-bench publish --to {check_root}{again}` and commit the result", err=True)
            sys.exit(1)
        click.echo(f"{check_root} is up to date with its bundles")
        return
    written = pub.publish(list(bundles), root, note=lambda msg: click.echo(msg, err=True), embed=embed)
    click.echo(f"{root}: {len(written)} file(s) written" + "".join(f"\n  {w}" for w in written))


def main() -> None:
    """Console-script entry point: click's own usage errors get the same error/fix form as ours."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort as exc:
        from collapse_bench.interrupts import exit_code

        code = exit_code(exc)
        click.echo(f"collapse-bench: interrupted ({signal.Signals(code - 128).name})", err=True)
        sys.exit(code)
    except click.ClickException as exc:
        command = (
            f" {exc.ctx.command_path.split(' ', 1)[1]}"
            if getattr(exc, "ctx", None) and " " in exc.ctx.command_path
            else ""
        )
        click.echo(
            f"collapse-bench: error: {exc.format_message()}\n  fix: see `collapse-bench{command} --help`", err=True
        )
        sys.exit(2)
