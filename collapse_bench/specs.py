"""SPEC strings (``name`` or ``name:key=value,key=value``) and their validated parameters.

A component's parameters are the keyword-only arguments of its ``__init__``; their annotations
(``int``, ``float``, ``bool``, ``str`` or a ``Literal`` of choices) say how a SPEC's text is
converted, so ``keep-real:fraction=abc`` fails before anything runs.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from collapse_bench.errors import ConfigError


@dataclass(frozen=True)
class Spec:
    """A component name with its parameters, as the user wrote them or as resolved."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Spec:
        """Parse ``name`` or ``name:key=value,key=value`` (values stay strings)."""
        name, _, rest = text.strip().partition(":")
        if not name:
            raise ConfigError(f"empty component name in spec {text!r}", "write NAME or NAME:key=value")
        params: dict[str, Any] = {}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise ConfigError(
                    f"parameter {item!r} in spec {text!r} is not key=value",
                    "write parameters as name:key=value,key=value",
                )
            params[key.strip()] = value.strip()
        return cls(name, params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(self.params.items()))


def _fmt(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def declared_params(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters a component class declares in its ``__init__``."""
    sig = inspect.signature(cls.__init__)
    return {p.name: p for p in sig.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def resolve_params(cls: type, spec: Spec, kind: str) -> dict[str, Any]:
    """Convert and check ``spec.params`` against ``cls``; return every parameter, defaults filled."""
    declared = declared_params(cls)
    hints = typing.get_type_hints(cls.__init__)
    resolved: dict[str, Any] = {}
    for key, raw in spec.params.items():
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise ConfigError(
                f"{kind} {spec.name!r} has no parameter {key!r}",
                f"its parameters are: {known}",
            )
        resolved[key] = _convert(raw, hints.get(key, str), f"{kind} {spec.name!r} parameter {key!r}")
    for key, param in declared.items():
        if key not in resolved:
            if param.default is inspect.Parameter.empty:
                raise ConfigError(
                    f"{kind} {spec.name!r} needs parameter {key!r}",
                    f"write {spec.name}:{key}=VALUE",
                )
            resolved[key] = param.default
    return resolved


def _convert(raw: Any, hint: Any, where: str) -> Any:
    """Turn a SPEC's text (or a TOML value) into the annotated type."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if str(raw) == str(choice):
                return choice
        raise ConfigError(f"{where} is {raw!r}", "choose one of: " + ", ".join(map(str, choices)))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if raw is None or str(raw).lower() == "none":
            return None
        return _convert(raw, args[0], where)
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).lower()
            if text not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return text in {"true", "1", "yes"}
        if hint is int:
            if isinstance(raw, float) and not raw.is_integer():
                raise ValueError
            return int(str(raw)) if not isinstance(raw, int | float) else int(raw)
        if hint is float:
            return float(raw)
        if hint is str:
            return str(raw)
    except ValueError:
        raise ConfigError(f"{where} is {raw!r}, not a valid {hint.__name__}", f"give a {hint.__name__}") from None
    return raw
