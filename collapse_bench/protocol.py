"""Protocols: the named, versioned recipe that makes results comparable.

A protocol is a TOML file (see ``docs/protocol.md`` for every field). Results are comparable only
when the protocol's name and major version match and nothing but the seeds was overridden; the
:attr:`Protocol.fingerprint` captures exactly that.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError
from collapse_bench.settings import build, changed, convert, replace, setting
from collapse_bench.specs import Spec

#: More seeds than any study needs; a larger count is a typo, refused before it is planned.
MAX_SEEDS = 10_000


def _positive(default: Any = dataclasses.MISSING) -> Any:
    return setting(default, check=lambda v: v >= 1, allowed="1 or more")


def _all_or_positive() -> Any:
    return setting(check=lambda v: v >= 0, allowed="0 (every block) or more")


@dataclass(frozen=True)
class DataSettings:
    """How real data is split and tokenized: a protocol's ``[data]`` table (see docs/protocol.md)."""

    #: Training rows; 0 = every block the training documents give.
    train_size: int = _all_or_positive()
    #: Test rows; 0 = every block the test documents give.
    test_size: int = _all_or_positive()
    block_tokens: int = _positive(64)
    #: The run BPE's size; its byte alphabet alone is 256 tokens.
    vocab_size: int = setting(4096, check=lambda v: v >= 256, allowed="256 or more (the byte alphabet)")
    test_fraction: float = setting(0.1, check=lambda v: 0 < v < 1, allowed="between 0 and 1")
    split_seed: int = setting(0, check=lambda v: v >= 0, allowed="0 or more")
    #: ``fit``: a byte-level BPE of ``vocab_size`` fitted on the training documents, each document
    #: followed by a blank line; else a pretrained tokenizer (hub id or directory) whose token ids
    #: are the run's, each document encoded as that tokenizer does (its special tokens included).
    tokenizer: str = "fit"
    #: ``stripped``: documents stripped of surrounding whitespace, empty ones dropped; ``raw``:
    #: every document exactly as the dataset gives it, empty ones included.
    rows: Literal["stripped", "raw"] = "stripped"
    #: ``shuffled``: documents and training blocks in a random order (``split_seed``); ``dataset``:
    #: in the dataset's order.
    order: Literal["shuffled", "dataset"] = "shuffled"


@dataclass(frozen=True)
class LeaderboardSettings:
    """What the views show and how leaderboards rank and summarize: a protocol's ``[leaderboard]`` table.

    ``metric`` and each of ``columns`` name a value (``tail.type_coverage``) or a metric, which
    stands for its headline values (see :mod:`collapse_bench.views`). An empty ``metric`` is the
    first headline value of the run's first metric; empty ``columns`` are every metric's
    headline values. ``metric`` ranks, by drift (last/first) or last value; ``reference`` is the
    mixer every entry's paired difference is taken against; ``min_seeds`` is what an entry needs
    to be published; ``thresholds`` map a value to the ratio to generation 0 that counts as
    collapsed (2.0: doubled, for a value where lower is better; 0.5: halved, where higher is
    better); ``distribution`` names a metric whose recorded quantiles (``.p05``, ``.p50``,
    ``.p95``) are drawn by generation on published pages.
    """

    metric: str = ""
    by: Literal["drift", "last"] = "drift"
    columns: tuple[str, ...] = ()
    reference: str = "replace"
    min_seeds: int = _positive(3)
    thresholds: dict[str, float] = field(default_factory=dict)
    distribution: str = ""


@dataclass(frozen=True)
class Defaults:
    """The grid run when the command line names none: a protocol's ``[defaults]`` table."""

    models: tuple[str, ...]
    mixers: tuple[str, ...]


#: ``[leaderboard]`` fields that only say how results are shown or published: outside the fingerprint.
PRESENTATION = ("columns", "reference", "min_seeds", "thresholds", "distribution")

#: Fields that decide what a result means; with the major version, the fingerprint hashes these.
RESULT_SHAPING = ("name", "dataset", "data", "generations", "samples", "metrics", "decoding", "training", "leaderboard")


@dataclass(frozen=True, kw_only=True)
class Protocol:
    """A resolved protocol: the file's fields, plus any command-line overrides."""

    name: str
    version: str = setting(check=lambda v: v.split(".")[0].isdigit(), allowed='that starts with a major number: "1.0"')
    description: str = ""
    dataset: Spec
    data: DataSettings
    generations: int = setting(check=lambda v: v >= 2, allowed="2 or more: collapse needs a chain")
    #: Synthetic rows per generation; 0 = one per training row (set once the data is loaded).
    samples: int = setting(check=lambda v: v >= 0, allowed="0 (one per training row) or more")
    #: Bounded so a mistyped count is refused before anything is planned (each seed is a chain).
    seeds: int = setting(check=lambda v: 1 <= v <= MAX_SEEDS, allowed=f"from 1 to {MAX_SEEDS:,}")
    metrics: tuple[str, ...]
    models: tuple[str, ...]
    mixers: tuple[str, ...]
    decoding: Decoding = field(default_factory=Decoding)
    training: dict[str, Any] = field(default_factory=dict)
    leaderboard: LeaderboardSettings = field(default_factory=LeaderboardSettings)
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def major(self) -> int:
        """The major version: results pool only within one name and major version."""
        return int(self.version.split(".")[0])

    @property
    def variant(self) -> list[str]:
        """The result-shaping fields command-line overrides changed: a variant has its own fingerprint."""
        return list(variant_of(self.overrides))

    @property
    def label(self) -> str:
        """``name@version``, with the changed fields when this is a variant: ``quick@1.0 (variant: samples=64)``."""
        return label_of(self.name, self.version, self.overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as stored in a run's manifest (decoding: only the settings that differ from the defaults)."""
        out = dataclasses.asdict(self)
        out["dataset"] = str(self.dataset)
        out["decoding"] = changed(self.decoding)
        return out

    @property
    def fingerprint(self) -> str:
        """Hash of what decides comparability: the result-shaping fields and the major version.

        Minor versions that change nothing result-shaping (a description, the default grid)
        share a fingerprint, so their results pool in one leaderboard table.
        """
        d = self.to_dict()
        shaping = {key: d[key] for key in RESULT_SHAPING} | {"major": self.major}
        for key in PRESENTATION:  # how results are shown or published changes no result
            shaping["leaderboard"].pop(key)
        return hashlib.sha256(json.dumps(shaping, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def override(self, **changes: Any) -> Protocol:
        """A copy with command-line overrides applied and recorded."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        recorded = dict(self.overrides)
        recorded.update(
            {k: list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Spec) else v for k, v in changes.items()}
        )
        return replace(self, f"protocol {self.name!r}", overrides=recorded, **changes)


def variant_of(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The result-shaping ones among recorded overrides (``--dataset``, ``--generations``, ``--set``; not seeds)."""
    return {key: value for key, value in overrides.items() if key.split(".")[0] in RESULT_SHAPING}


def label_of(name: str, version: str, overrides: Mapping[str, Any]) -> str:
    """``name@version``, followed for a variant by every overridden field and its value.

    ``quick@1.0 (variant: dataset=text-files:path=corpus.txt, generations=3)``: what ran, for
    headings, plot titles and ``show``; the manifest and ``load_results`` keep the same overrides.
    """
    changed_fields = variant_of(overrides)
    if not changed_fields:
        return f"{name}@{version}"
    text = ", ".join(f"{key}={_plain(value)}" for key, value in changed_fields.items())
    return f"{name}@{version} (variant: {text})"


def _plain(value: Any) -> str:
    """An override's value as written on the command line (a list as ``[a, b]``)."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(_plain, value)) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_protocol(table: dict[str, Any], source: str, sets: Sequence[str] = ()) -> Protocol:
    """Validate a protocol table read from TOML (with ``--set FIELD=VALUE`` overrides) into a :class:`Protocol`."""
    where = f"protocol {source!r}"
    changed, overrides = apply_sets(table, sets)  # a copy
    try:
        defaults = convert(changed.pop("defaults", {}), Defaults, f"{where} [defaults]", lenient=False)
        fixed = {"models": defaults.models, "mixers": defaults.mixers, "source": source, "overrides": overrides}
        return build(Protocol, changed, where, fixed=fixed)
    except ConfigError as exc:
        if not sets:
            raise
        parse_protocol(table, source)  # an error of the file itself is the file's
        cause = exc.cause.replace(f"{where} ", "", 1)
        raise ConfigError(f"--set {' --set '.join(sets)}: {cause}", exc.fix) from None


def apply_sets(table: dict[str, Any], sets: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``table`` with every ``FIELD=VALUE`` (``data.test_size=512``) applied, and the values set.

    A value is read as a TOML value (``512``, ``1.0``, ``true``, ``"text"``, ``[...]``); one that
    is not valid TOML is a string, so ``--set decoding.strategy=greedy`` needs no quotes.
    """
    table = copy.deepcopy(table)
    overrides: dict[str, Any] = {}
    for text in sets:
        path, eq, raw = text.partition("=")
        keys = path.strip().split(".")
        if not eq or not all(keys):
            raise ConfigError(f"--set {text!r} is not FIELD=VALUE", "write e.g. --set data.test_size=512")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()
        node = table
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(f"--set {text!r}: {where} is not a table", f"set {where}=VALUE itself")
        node[keys[-1]] = value
        overrides[".".join(keys)] = value
    return table, overrides


def load_protocol_file(path: Path, sets: Sequence[str] = ()) -> Protocol:
    """Read and validate one protocol TOML file, with ``--set FIELD=VALUE`` overrides applied."""
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"protocol file {str(path)!r} does not exist", "give a registered protocol name or an existing .toml path"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"protocol file {str(path)!r} is a folder", "give the path of a protocol .toml file inside it"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read protocol file {str(path)!r}: {exc.strerror}", "check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"protocol file {str(path)!r} is not UTF-8 text (a binary file?)", "give a protocol .toml file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"protocol file {str(path)!r} is not valid TOML: {exc}", "fix the TOML syntax") from None
    return parse_protocol(table, str(path), sets)
