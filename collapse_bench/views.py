"""Which values the views show, read from run manifests: nothing here names a metric.

Every metric declares its headline values (``Metric.headline``) and the manifest records them,
by metric label, beside each value's direction. A protocol's ``[leaderboard]`` table may choose
the ranking value and the columns; each entry there names a value (``tail.type_coverage``) or a
metric (``tail``), which stands for that metric's headline values. So a plugin metric shows up
in the console summary, ``show``, leaderboards and plots like a built-in one.
"""

from __future__ import annotations

from typing import Any

Manifest = dict[str, Any]


def headline(manifest: Manifest) -> dict[str, list[str]]:
    """Headline values by metric label, as the run recorded them.

    Runs recorded before metrics declared headline values get what the installed metric of that
    label declares now, or every value of a metric that is no longer installed.
    """
    if "headline" in manifest:
        return dict(manifest["headline"])  # stored as [label, values] pairs, in the run's metric order
    labels = dict.fromkeys(label for labels in manifest.get("metrics", {}).values() for label in labels)
    values = list(manifest.get("directions", {}))
    return {
        label: _declared(label) or [v for v in values if v.split(".")[0] == label.partition(":")[0]] for label in labels
    }


def _declared(label: str) -> list[str]:
    """The headline values the installed metric ``label`` declares; none when it is not installed."""
    from collapse_bench.errors import UserError
    from collapse_bench.plan import choose
    from collapse_bench.plugins import get_registry

    try:
        return choose(get_registry(), "metric", label).make().headlines()
    except UserError:
        return []


def expand(name: str, manifest: Manifest) -> list[str]:
    """The values ``name`` stands for: itself when a metric reports it, else the headline values of metric ``name``."""
    if name in manifest.get("directions", {}):
        return [name]
    return [v for vs in headline(manifest).values() for v in vs if v.startswith(name + ".")]


def _chosen(manifest: Manifest) -> list[str]:
    names = manifest["protocol"].get("leaderboard", {}).get("columns") or []
    return list(dict.fromkeys(v for name in names for v in expand(name, manifest)))


def columns(manifest: Manifest) -> list[str]:
    """The values a leaderboard and its plots show: the protocol's columns, else every headline value."""
    return _chosen(manifest) or list(dict.fromkeys(v for vs in headline(manifest).values() for v in vs))


def lead(manifest: Manifest) -> list[str]:
    """The values the console summary shows: the protocol's columns, else each metric's first headline value."""
    return _chosen(manifest) or list(dict.fromkeys(vs[0] for vs in headline(manifest).values() if vs))


def ranking(manifest: Manifest) -> str:
    """The value that ranks a leaderboard: the protocol's ``[leaderboard] metric`` where the run
    reports it, else the first value :func:`columns` gives (a run scored with ``--metric`` only)."""
    named = expand(manifest["protocol"].get("leaderboard", {}).get("metric", ""), manifest)
    shown = columns(manifest)
    return named[0] if named else shown[0] if shown else ""


def merge(manifests: list[Manifest]) -> Manifest:
    """One manifest for runs pooled into one table: the first's protocol, every run's values."""
    merged = dict(manifests[0])
    merged["directions"] = {k: v for m in manifests for k, v in m.get("directions", {}).items()}
    merged["headline"] = list({k: v for m in manifests for k, v in headline(m).items()}.items())
    return merged
