"""Protocols: the named, versioned recipe that makes results comparable.

A protocol is a TOML file (see ``docs/protocol.md`` for every field). Results are comparable only
when the protocol's name and major version match and nothing but the seeds was overridden; the
:attr:`Protocol.fingerprint` captures exactly that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapse_bench.errors import ConfigError
from collapse_bench.specs import Spec


@dataclass(frozen=True)
class DataSpec:
    """How real data is split and tokenized."""

    train_size: int
    test_size: int
    block_tokens: int = 64
    vocab_size: int = 4096
    test_fraction: float = 0.1
    split_seed: int = 0


@dataclass(frozen=True)
class LeaderboardSpec:
    """Which value ranks a leaderboard, and whether by drift (last/first) or last value."""

    metric: str = "perplexity"
    by: str = "drift"


@dataclass(frozen=True)
class Protocol:
    """A resolved protocol: the file's fields, plus any command-line overrides."""

    name: str
    version: str
    description: str
    dataset: Spec
    data: DataSpec
    generations: int
    samples: int
    seeds: int
    metrics: tuple[str, ...]
    models: tuple[str, ...]
    mixers: tuple[str, ...]
    decoding: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    leaderboard: LeaderboardSpec = field(default_factory=LeaderboardSpec)
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def major(self) -> int:
        """The major version: results pool only within one name and major version."""
        return int(self.version.split(".")[0])

    @property
    def label(self) -> str:
        """``name@version``, as shown in leaderboard headings."""
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as stored in a run's manifest."""
        out = dataclasses.asdict(self)
        out["dataset"] = str(self.dataset)
        return out

    @property
    def fingerprint(self) -> str:
        """Hash of everything that decides comparability (all but seeds and provenance)."""
        d = self.to_dict()
        for key in ("seeds", "source", "overrides", "description", "models", "mixers"):
            d.pop(key)
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def override(self, **changes: Any) -> Protocol:
        """A copy with command-line overrides applied and recorded."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        recorded = dict(self.overrides)
        recorded.update(
            {k: list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Spec) else v for k, v in changes.items()}
        )
        return dataclasses.replace(self, overrides=recorded, **changes)


def _need(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise ConfigError(f"protocol {where} has no field {key!r}", f"add `{key} = ...` (see docs/protocol.md)")
    return _typed(table[key], key, kind, where)


def _typed(value: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(
            f"protocol {where} field {key!r} is {value!r}, not a {names}",
            f"write `{key}` as a {names} (see docs/protocol.md)",
        )
    return value


def _positive(value: int, key: str, where: str) -> int:
    if value < 1:
        raise ConfigError(f"protocol {where} field {key!r} is {value}, not positive", f"set `{key}` to 1 or more")
    return value


def _specs(value: Any, key: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else _typed(value, key, list, where)
    for item in items:
        _typed(item, key, str, where)
    return tuple(items)


def parse_protocol(table: dict[str, Any], source: str) -> Protocol:
    """Validate a protocol table read from TOML and build a :class:`Protocol`."""
    where = repr(source)
    known = {
        "name", "version", "description", "dataset", "data", "generations", "samples", "seeds",
        "metrics", "defaults", "decoding", "training", "leaderboard",
    }  # fmt: skip
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"protocol {where} has unknown field {unknown[0]!r}", f"known fields: {', '.join(sorted(known))}"
        )
    name = _need(table, "name", str, where)
    version = _need(table, "version", str, where)
    if not version.split(".")[0].isdigit():
        raise ConfigError(
            f"protocol {where} version {version!r} does not start with a major number", 'write e.g. version = "1.0"'
        )

    raw_ds = _need(table, "dataset", (str, dict), where)
    if isinstance(raw_ds, str):
        dataset = Spec.parse(raw_ds)
    else:
        params = dict(raw_ds)
        dataset = Spec(_need(params, "name", str, f"{where} [dataset]"), params)
        params.pop("name")

    data_table = _need(table, "data", dict, where)
    data_fields = {f.name: f for f in dataclasses.fields(DataSpec)}
    extra = sorted(set(data_table) - set(data_fields))
    if extra:
        raise ConfigError(f"protocol {where} [data] has unknown field {extra[0]!r}", f"known: {', '.join(data_fields)}")
    data_kw: dict[str, Any] = {}
    for key, f in data_fields.items():
        if key in data_table or f.default is dataclasses.MISSING:
            kind = float if f.type == "float" else int
            value = _need(data_table, key, (int, float) if kind is float else int, f"{where} [data]")
            data_kw[key] = (
                float(value) if kind is float else value if key == "split_seed" else _positive(value, key, where)
            )
    data = DataSpec(**data_kw)
    if not 0 < data.test_fraction < 1:
        raise ConfigError(
            f"protocol {where} [data] test_fraction is {data.test_fraction}", "choose a fraction between 0 and 1"
        )

    defaults = _typed(table.get("defaults", {}), "defaults", dict, where)
    board = _typed(table.get("leaderboard", {}), "leaderboard", dict, where)
    leaderboard = LeaderboardSpec(
        metric=_typed(board.get("metric", "perplexity"), "metric", str, f"{where} [leaderboard]"),
        by=_typed(board.get("by", "drift"), "by", str, f"{where} [leaderboard]"),
    )
    if leaderboard.by not in ("drift", "last"):
        raise ConfigError(f"protocol {where} [leaderboard] by is {leaderboard.by!r}", 'choose "drift" or "last"')
    generations = _positive(_need(table, "generations", int, where), "generations", where)
    if generations < 2:
        raise ConfigError(
            f"protocol {where} has generations = {generations}", "set generations to 2 or more: collapse needs a chain"
        )
    return Protocol(
        name=name,
        version=version,
        description=_typed(table.get("description", ""), "description", str, where),
        dataset=dataset,
        data=data,
        generations=generations,
        samples=_positive(_need(table, "samples", int, where), "samples", where),
        seeds=_positive(_need(table, "seeds", int, where), "seeds", where),
        metrics=_specs(_need(table, "metrics", (list, str), where), "metrics", where),
        models=_specs(_need(defaults, "models", (list, str), f"{where} [defaults]"), "models", where),
        mixers=_specs(_need(defaults, "mixers", (list, str), f"{where} [defaults]"), "mixers", where),
        decoding=dict(_typed(table.get("decoding", {}), "decoding", dict, where)),
        training=dict(_typed(table.get("training", {}), "training", dict, where)),
        leaderboard=leaderboard,
        source=source,
    )


def load_protocol_file(path: Path) -> Protocol:
    """Read and validate one protocol TOML file."""
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(
            f"protocol file {str(path)!r} does not exist", "give a registered protocol name or an existing .toml path"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"protocol file {str(path)!r} is not valid TOML: {exc}", "fix the TOML syntax") from None
    return parse_protocol(table, str(path))


def resolve_protocol(name_or_path: str) -> Protocol:
    """A protocol by registered name (``quick``) or by path to a TOML file."""
    from collapse_bench.plugins import get_registry

    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        return load_protocol_file(path)
    return load_protocol_file(Path(get_registry().get("protocol", name_or_path).obj))
