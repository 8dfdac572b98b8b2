"""``collapse-bench cache``: where the cache of finished steps is, how large, and pruning it."""

from __future__ import annotations

from pathlib import Path

import click

from collapse_bench.errors import UserError


@click.group()
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
