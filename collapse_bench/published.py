"""The bundles published in a leaderboard folder, read and grouped into one standing per protocol.

A leaderboard folder holds ``results/`` (the bundles, the only input) and what
:func:`collapse_bench.publish.render` makes from them (:mod:`collapse_bench.pages`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from collapse_bench.boards import Standing, standing
from collapse_bench.bundle import Bundle, load
from collapse_bench.results import COLUMNS

#: The folder of a leaderboard folder that holds its bundles.
RESULTS = "results"


@dataclass
class Published:
    """The bundles of one protocol and the standing made from them."""

    name: str
    bundles: list[tuple[str, Bundle]]  # (file name under results/, bundle)
    standing: Standing


def published_bundles(root: Path) -> list[tuple[str, Bundle]]:
    """Every bundle under ``root/results/``, by file name."""
    folder = root / RESULTS
    return [(p.name, load(p)) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def tidy(bundles: Sequence[Bundle]) -> pd.DataFrame:
    """The bundles' values in the columns of :func:`collapse_bench.results.load_results`."""
    rows = [
        (
            b.runs[0].run_id,
            b.protocol.name,
            b.protocol.version,
            b.protocol.fingerprint,
            r.model,
            r.mixer,
            r.seed,
            r.generation,
            value,
            x,
            b.directions.get(value, ""),
        )
        for b in bundles
        for r in b.records
        for value, x in r.scores.items()
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def page_groups(items: Sequence[tuple[str, Bundle]]) -> dict[str, list[tuple[str, Bundle]]]:
    """Bundles by the page they make: one per protocol name and fingerprint, named ``name`` (``name-fingerprint``
    when results of an earlier version sit beside the current one)."""
    groups: dict[tuple[str, str], list[tuple[str, Bundle]]] = {}
    for file, b in items:
        groups.setdefault((b.protocol.name, b.protocol.fingerprint), []).append((file, b))
    names = [name for name, _ in groups]
    return {
        name if names.count(name) == 1 else f"{name}-{fingerprint}": group
        for (name, fingerprint), group in sorted(groups.items())
    }


def protocols(root: Path) -> list[Published]:
    """The published protocols of ``root``, each with its standing (one per protocol name and fingerprint)."""
    out = []
    for name, items in page_groups(published_bundles(root)).items():
        bundles = [b for _, b in items]
        directions: dict[str, str] = {}
        columns: list[str] = []
        for b in bundles:
            directions.update(b.directions)
            columns += [c for c in b.columns if c not in columns]
        first = bundles[0].protocol
        out.append(
            Published(
                name,
                items,
                standing(tidy(bundles), first.settings, first.fingerprint, directions, columns, bundles[0].ranking),
            )
        )
    return out
