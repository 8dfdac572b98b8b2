"""What is registered: ``collapse-bench plugins``, ``list`` and ``protocol show``."""

from __future__ import annotations

import click

from collapse_bench.hookspecs import KINDS


@click.command(name="plugins")
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


@click.command(name="list")
@click.argument("kind", required=False, type=click.Choice([*KINDS, *(f"{k}s" for k in KINDS)]))
def list_components(kind: str | None) -> None:
    """Show every registered dataset, model, mixer, metric and protocol, with its plugin of origin.

    KIND narrows it to one kind, named in the singular or the plural (``mixer`` or ``mixers``).
    """
    kind = kind.removesuffix("s") if kind and kind not in KINDS else kind
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


@click.group()
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
