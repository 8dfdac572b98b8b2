"""The ``collapse-bench`` command line: the group, its error handling and its entry point.

The subcommands live in :mod:`collapse_bench.commands`, one module per group of jobs. Every
error a user can cause ends in two lines on stderr (``error:`` cause, ``fix:``) and exit code 2.
"""

from __future__ import annotations

import signal
import sys
import warnings
from pathlib import Path

import click

from collapse_bench.commands import cache, registry, results
from collapse_bench.commands.run import run
from collapse_bench.errors import ComponentError, UserError


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


for command in (
    run, cache.cache, registry.plugins_command, registry.list_components, registry.protocol,
    results.show, results.leaderboard, results.export, results.publish,
):  # fmt: skip
    cli.add_command(command)


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
