"""Publishing: validated bundles in ``results/``, and everything else of a leaderboard folder made from them.

A leaderboard folder holds ``results/`` (the bundles, the only input, read by
:mod:`collapse_bench.published`) and what :func:`render` makes from them: ``README.md`` (an index
of protocols and their leaders), one page per protocol ``<protocol>.md``, and the static site
``site/`` (``index.html``, its script and style, and the figures the pages share), whose text
:mod:`collapse_bench.pages` writes. :func:`publish` validates new bundles before anything is
written; :func:`check` says which generated file is out of date. Markdown files outside the folder
(the repository's README) may show a protocol's headline table between ``<!--leaderboard:NAME-->``
and ``<!--/leaderboard-->``: given as ``embed``, they are filled in and checked like generated files.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from collapse_bench import boards
from collapse_bench.bundle import Bundle, dumps, load
from collapse_bench.errors import UserError
from collapse_bench.pages import index, page, site
from collapse_bench.published import RESULTS, Published, page_groups, protocols, published_bundles
from collapse_bench.store import write_atomic

FIGURES = "site/figures"
#: Where a markdown file outside the folder shows the headline table of the published protocol NAME.
EMBED = re.compile(r"(<!--leaderboard:([^>\s]+)-->)(.*?)(<!--/leaderboard-->)", re.S)


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


def render(root: Path, published: Sequence[Published] | None = None) -> dict[str, bytes]:
    """Every generated file of the leaderboard folder ``root``, by path relative to it."""
    from importlib.resources import files

    from collapse_bench import figures as figs

    published = protocols(root) if published is None else published
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


def _embedding(file: Path, published: Sequence[str]) -> str:
    """The text of a markdown file to fill in; refused unless it has a marker and each names a ``published`` page."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {str(file)!r}: {exc.strerror}", "give a markdown file to --embed") from None
    names = [m[2] for m in EMBED.finditer(text)]
    if not names:
        raise UserError(
            f"{str(file)!r} has no <!--leaderboard:NAME--> ... <!--/leaderboard--> marker",
            "add one where the table goes (NAME: a published protocol, e.g. quick), or do not --embed it",
        )
    for name in names:
        if name not in published:
            raise UserError(
                f"{str(file)!r}: <!--leaderboard:{name}--> names a protocol not published here "
                f"(published: {', '.join(published) or 'none'})",
                "publish its bundles first, or name a published protocol in the marker",
            )
    return text


def targets(root: Path, embed: Sequence[Path] = ()) -> dict[Path, bytes]:
    """Every file made from the bundles of ``root``: its own, and each of ``embed`` with its tables filled in."""
    published = protocols(root)
    out = {root / path: content for path, content in render(root, published).items()}
    standings = {p.name: p.standing for p in published}

    def table(m: re.Match) -> str:
        return f"{m[1]}\n{boards.headline_table(standings[m[2]])}\n{m[4]}"

    for file in map(Path, embed):
        out[file] = EMBED.sub(table, _embedding(file, list(standings))).encode()
    return out


def _same(path: Path, new: bytes, old: bytes) -> bool:
    if path.suffix == ".png":
        from collapse_bench.figures import figure_hash

        return figure_hash(old) is not None and figure_hash(old) == figure_hash(new)
    return old == new


def _name(target: Path, root: Path) -> str:
    """A generated file as reports name it: relative to the leaderboard folder, an embedding file as given."""
    return str(target.relative_to(root)) if target.is_relative_to(root) else str(target)


def check(root: Path, embed: Sequence[Path] = ()) -> list[str]:
    """The files made from the bundles of ``root`` (``embed`` too) that are missing or out of date."""
    leaderboard_folder(root)
    if not (root / RESULTS).is_dir():
        raise UserError(f"{str(root)!r} has no {RESULTS}/ folder", "publish bundles into it first")
    stale = []
    for target, content in sorted(targets(root, embed).items()):
        if not target.is_file() or not _same(target, content, target.read_bytes()):
            stale.append(_name(target, root))
    return stale


def write(root: Path, embed: Sequence[Path] = ()) -> list[str]:
    """Regenerate every generated file of ``root`` and the tables embedded in ``embed``; the paths written."""
    written = []
    for target, content in targets(root, embed).items():
        if target.is_file() and _same(target, content, target.read_bytes()):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(content)
        tmp.replace(target)
        written.append(_name(target, root))
    return written


def publish(paths: Sequence[Path], root: Path, note: Callable[[str], None], embed: Sequence[Path] = ()) -> list[str]:
    """Validate every bundle of ``paths``, store the new ones under ``root/results/`` and regenerate ``root``.

    Several bundles of one protocol (grids with different entries) make one page together. Nothing
    is written unless every bundle passes.
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
    for file in embed:  # refused before anything is written, like a bad bundle
        _embedding(Path(file), list(page_groups(published + accepted)))
    (root / RESULTS).mkdir(parents=True, exist_ok=True)
    for file, bundle in accepted:
        write_atomic(root / RESULTS / file, dumps(bundle))
    return [f"{RESULTS}/{f}" for f, _ in accepted] + write(root, embed)
