"""Publishing: validated bundles in ``results/``, and everything else of a leaderboard folder made from them.

A leaderboard folder holds ``results/`` (the bundles, the only input, read by
:mod:`collapse_bench.published`) and what :func:`render` makes from them: ``README.md`` (an index
of protocols and their leaders), one page per protocol ``<protocol>.md``, and the static site
``site/`` (``index.html``, its script and style, and the figures the pages share), whose text
:mod:`collapse_bench.pages` writes. :func:`publish` validates new bundles before anything is
written; :func:`check` says which generated file is out of date.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from pathlib import Path

from collapse_bench.bundle import Bundle, dumps, load
from collapse_bench.errors import UserError
from collapse_bench.pages import index, page, site
from collapse_bench.published import RESULTS, protocols, published_bundles
from collapse_bench.store import write_atomic

FIGURES = "site/figures"


def leaderboard_folder(root: Path) -> None:
    """Refuse a folder that is not a leaderboard folder (one with ``results/``, or a new or empty one)."""
    if root.exists() and not root.is_dir():
        raise UserError(f"{str(root)!r} is a file", "give a leaderboard folder, e.g. leaderboards/")
    if root.is_dir() and any(root.iterdir()) and not (root / RESULTS).is_dir():
        raise UserError(
            f"{str(root)!r} is not a leaderboard folder (it has no {RESULTS}/ folder and is not empty)",
            "publish into a leaderboard folder such as leaderboards/, or into a new folder",
        )


def validate(bundle: Bundle, source: str) -> None:
    """Refuse a bundle of an unknown protocol, a changed fingerprint, incomplete cells or too few seeds."""
    from collapse_bench.plugins import get_registry

    name, version, fingerprint = bundle.protocol.name, bundle.protocol.version, bundle.protocol.fingerprint
    registry = get_registry()
    if name not in {e.name for e in registry.entries("protocol")}:  # a registered name, never a path
        raise UserError(
            f"{source}: protocol {name!r} is not known to this collapse-bench",
            "publish results of a registered protocol (`collapse-bench list protocol`), or install its plugin",
        )
    known = registry.protocol(name)
    if fingerprint != known.fingerprint:
        what = f"version {version}" if version != known.version else "a variant (changed result-shaping settings)"
        raise UserError(
            f"{source}: protocol fingerprint {fingerprint} does not match {known.label}'s {known.fingerprint}: "
            f"the results are of {what}",
            f"rerun with the unchanged protocol {name!r} of this collapse-bench, then export again",
        )
    generations = set(range(known.generations))
    have: dict[tuple[str, str, int], set[int]] = {}
    for r in bundle.records:
        have.setdefault((r.model, r.mixer, r.seed), set()).add(r.generation)
    for (model, mixer, seed), gens in sorted(have.items()):
        if gens != generations:
            missing = sorted(generations - gens)
            raise UserError(
                f"{source}: {model} / {mixer} seed {seed} is incomplete: generations {missing} are missing",
                "finish the run (`collapse-bench run --retry-failed RUN_DIR`) and export it again",
            )
    seeds: dict[tuple[str, str], int] = {}
    for model, mixer, _ in have:
        seeds[(model, mixer)] = seeds.get((model, mixer), 0) + 1
    need = known.leaderboard.min_seeds
    for (model, mixer), n in sorted(seeds.items()):
        if n < need:
            raise UserError(
                f"{source}: {model} / {mixer} has {n} seed(s); protocol {name!r} needs at least {need}",
                f"run --seeds {need} (or more) and export again",
            )


def contradiction(bundle: Bundle, published: Sequence[tuple[str, Bundle]], source: str) -> None:
    """Refuse a bundle whose value for a cell and generation differs from one already published."""
    for file, other in published:
        if other.protocol.fingerprint != bundle.protocol.fingerprint:
            continue
        theirs = {(r.model, r.mixer, r.seed, r.generation): r.scores for r in other.records}
        for r in bundle.records:
            old = theirs.get((r.model, r.mixer, r.seed, r.generation))
            if old is None:
                continue
            for value, x in r.scores.items():
                y = old.get(value)
                if y is not None and not (x == y or math.isclose(x, y, rel_tol=1e-9)):
                    raise UserError(
                        f"{source}: {r.model} / {r.mixer} seed {r.seed} generation {r.generation} has "
                        f"{value} = {x:.6g}, but {RESULTS}/{file} published {y:.6g}",
                        "the same entry and seed must reproduce; find out why they differ before publishing",
                    )


def render(root: Path) -> dict[str, bytes]:
    """Every generated file of the leaderboard folder ``root``, by path relative to it."""
    from importlib.resources import files

    from collapse_bench import figures as figs

    published = protocols(root)
    out: dict[str, bytes] = {}
    shown: dict[str, dict[str, str]] = {}
    for p in published:
        names: dict[str, str] = {}
        panel, _ = figs.values_panel(p.standing)
        names["values"] = f"{FIGURES}/{p.name}-values.png"
        out[names["values"]] = panel
        dist = figs.distribution_figure(p.standing)
        if dist is not None:
            names["distribution"] = f"{FIGURES}/{p.name}-distribution.png"
            out[names["distribution"]] = dist[0]
        shown[p.name] = names
        out[f"{p.name}.md"] = page(p, names).encode()
    out["README.md"] = index(published).encode()
    out["site/index.html"] = site(published, shown).encode()
    for asset in ("table.js", "style.css"):
        out[f"site/{asset}"] = (files("collapse_bench") / "site" / asset).read_bytes()
    return out


def _same(path: str, new: bytes, old: bytes) -> bool:
    if path.endswith(".png"):
        from collapse_bench.figures import figure_hash

        return figure_hash(old) is not None and figure_hash(old) == figure_hash(new)
    return old == new


def check(root: Path) -> list[str]:
    """The generated files of ``root`` that are missing or out of date with its bundles."""
    leaderboard_folder(root)
    if not (root / RESULTS).is_dir():
        raise UserError(f"{str(root)!r} has no {RESULTS}/ folder", "publish bundles into it first")
    stale = []
    for path, content in sorted(render(root).items()):
        target = root / path
        if not target.is_file() or not _same(path, content, target.read_bytes()):
            stale.append(path)
    return stale


def write(root: Path) -> list[str]:
    """Regenerate every generated file of ``root``; the paths written."""
    written = []
    for path, content in render(root).items():
        target = root / path
        if target.is_file() and _same(path, content, target.read_bytes()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        tmp.replace(target)
        written.append(path)
    return written


def publish(paths: Sequence[Path], root: Path, note: Callable[[str], None]) -> list[str]:
    """Validate every bundle of ``paths``, store the new ones under ``root/results/`` and regenerate ``root``.

    Nothing is written unless every bundle passes.
    """
    leaderboard_folder(root)
    published = published_bundles(root)
    accepted: list[tuple[str, Bundle]] = []
    for path in paths:
        bundle = load(Path(path))
        source = Path(path).name
        validate(bundle, source)
        contradiction(bundle, published + accepted, source)
        results = [r.model_dump() for r in bundle.records]  # the name hashes the results, not when they were exported
        digest = hashlib.sha256(repr(results).encode()).hexdigest()[:12]
        file = f"{bundle.protocol.name}-{bundle.protocol.fingerprint}-{digest}.json"
        if any(f == file for f, _ in published + accepted):
            note(f"{source}: already published as {RESULTS}/{file}")
            continue
        accepted.append((file, bundle))
    (root / RESULTS).mkdir(parents=True, exist_ok=True)
    for file, bundle in accepted:
        write_atomic(root / RESULTS / file, dumps(bundle))
    return [f"{RESULTS}/{f}" for f, _ in accepted] + write(root)
