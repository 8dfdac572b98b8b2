"""SPEC strings (``name`` or ``name:key=value,key=value``) and their validated parameters.

A component's parameters are the keyword-only arguments of its ``__init__``; their annotations
(``int``, ``float``, ``bool``, ``str`` or a ``Literal`` of choices) say how a SPEC's text is
converted (by :func:`collapse_bench.settings.convert`, leniently), so ``keep-real:fraction=abc``
fails before anything runs. A value holding a comma is quoted: ``text-files:path="a,b.txt"``.
"""

from __future__ import annotations

import inspect
import shlex
import typing
from dataclasses import dataclass, field
from typing import Any

from collapse_bench.errors import ConfigError
from collapse_bench.settings import convert


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
        for item in _items(rest, text):
            key, eq, value = item.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ConfigError(
                    f"parameter {item!r} in spec {text!r} is not key=value",
                    'write parameters as name:key=value,key=value, and quote a value that holds a comma: key="a,b"',
                )
            if key in params:
                raise ConfigError(f"parameter {key!r} is given twice in spec {text!r}", "give each parameter once")
            params[key] = value.strip()
        return cls(name, params)

    @classmethod
    def from_setting(cls, value: Any, subject: str) -> Spec:
        """A SPEC written in a protocol: ``"name:key=value"`` or a table with ``name`` and parameters."""
        if isinstance(value, str):
            return cls.parse(value)
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ConfigError(f"{subject} is {value!r}", 'write a SPEC string or a table with name = "..."')
        params = dict(value)
        return cls(params.pop("name"), params)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={_fmt(v)}" for k, v in sorted(self.params.items()))


def _items(rest: str, text: str) -> list[str]:
    """The ``key=value`` items of a SPEC's parameter text: split at commas outside quotes, quotes removed."""
    lexer = shlex.shlex(rest, posix=True)
    lexer.whitespace, lexer.whitespace_split, lexer.escape, lexer.commenters = ",", True, "", ""
    try:
        return [item for item in (i.strip() for i in lexer) if item]
    except ValueError:
        raise ConfigError(f"spec {text!r} has an unclosed quote", "close every quote you open") from None


def _fmt(value: Any) -> str:
    """A parameter value as SPEC text, quoted where it holds a comma or a quote (see docs/cli.md)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if not any(c in text for c in ",\"'"):
        return text
    return f"'{text}'" if '"' in text else f'"{text}"'


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
        resolved[key] = convert(raw, hints.get(key, str), f"{kind} {spec.name!r} parameter {key!r}", lenient=True)
    for key, param in declared.items():
        if key not in resolved:
            if param.default is inspect.Parameter.empty:
                raise ConfigError(
                    f"{kind} {spec.name!r} needs parameter {key!r}",
                    f"write {spec.name}:{key}=VALUE",
                )
            resolved[key] = param.default
    return resolved
