"""What is done with finished runs: ``collapse-bench show``, ``leaderboard``, ``export`` and ``publish``."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from collapse_bench.commands.folders import writable
from collapse_bench.errors import UserError


@click.command()
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


@click.command()
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


@click.command()
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
    writable(out.parent, "output folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, bundles.dumps(made))
    cells = {(r.model, r.mixer, r.seed) for r in made.records}
    click.echo(
        f"wrote {out}: {made.protocol.name}@{made.protocol.version} ({made.protocol.fingerprint}), "
        f"{len(made.entries)} entries, {len(cells)} cells, {len(made.runs)} run(s)"
    )


@click.command()
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
