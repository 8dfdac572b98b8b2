"""Typed settings: one converter from a mapping (a TOML table) or SPEC text to annotated types.

Every table of a protocol (the top level, ``[data]``, ``[decoding]``, ``[training]``,
``[leaderboard]``) is a dataclass built by :func:`build`, and every SPEC parameter is converted by
:func:`convert`. A field's annotation says what it accepts (``int``, ``float``, ``bool``, ``str``,
a ``Literal`` of choices, ``tuple[str, ...]``, a :class:`~collapse_bench.specs.Spec`, a nested
settings dataclass, a ``dict`` or any of these ``| None``); :func:`setting` adds a range check.

Two modes: *strict* for TOML, where a value must already have its type (an ``int`` is a
``float`` too), and *lenient* for command-line text, where ``"3"`` is an ``int`` and ``"yes"`` a
``bool``. Every refusal is one :class:`~collapse_bench.errors.ConfigError` naming the setting,
the value and what to write instead.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from collapse_bench.errors import ConfigError

_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def setting(default: Any = dataclasses.MISSING, *, check: Callable[[Any], bool], allowed: str) -> Any:
    """A dataclass field whose value must pass ``check`` (``allowed`` says which values do)."""
    return dataclasses.field(default=default, metadata={"check": check, "allowed": allowed})


def convert(value: Any, hint: Any, subject: str, *, lenient: bool) -> Any:
    """``value`` as the annotated type ``hint``, or a ``ConfigError`` about ``subject``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (lenient and str(value).lower() == "none"):
            return None
        return convert(value, next(a for a in args if a is not type(None)), subject, lenient=lenient)
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (lenient and str(value) == str(choice)):
                return choice
        raise ConfigError(f"{subject} is {value!r}", "choose one of: " + ", ".join(map(str, args)))
    if origin is tuple:  # tuple[str, ...]: one string or a list of them
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(f"{subject} is {value!r}, not a list of strings", "write a string or a list of strings")
        return tuple(convert(item, args[0], subject, lenient=lenient) for item in items)
    from_setting = getattr(hint, "from_setting", None)  # a type that reads itself (a SPEC)
    if from_setting is not None:
        return from_setting(value, subject)
    if dataclasses.is_dataclass(hint):
        return build(hint, _kind(value, dict, subject), subject, lenient=lenient)
    return _scalar(value, hint if origin is None else origin, subject, lenient)


def _scalar(value: Any, hint: type, subject: str, lenient: bool) -> Any:
    if lenient and isinstance(value, str) and hint in (bool, int, float):
        text = value.strip().lower()
        try:
            if hint is bool and text in _TRUE | _FALSE:
                return text in _TRUE
            if hint is int:
                return int(text)
            if hint is float:
                return float(text)
        except ValueError:
            pass
        raise ConfigError(f"{subject} is {value!r}, not a valid {hint.__name__}", f"give {_a(hint.__name__)}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and lenient and isinstance(value, float) and value.is_integer():
        return int(value)
    return _kind(value, hint, subject)


def _kind(value: Any, hint: type, subject: str) -> Any:
    if isinstance(value, hint) and not (isinstance(value, bool) and hint is not bool):
        return value
    name = "a table" if hint is dict else _a(hint.__name__)
    raise ConfigError(f"{subject} is {value!r}, not {name}", f"give {name}")


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def build(cls: type, table: Mapping[str, Any], where: str, *, lenient: bool = False, fixed: Mapping = {}) -> Any:
    """The dataclass ``cls`` from ``table``: unknown keys, ill-typed and out-of-range values refused.

    ``fixed`` gives fields that do not come from the table (a key of the table naming one is
    unknown). Checks across fields belong in the class's ``__post_init__``.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name not in fixed}
    for key in table:
        if key not in fields:
            raise ConfigError(f"{where} has no setting {key!r}", f"known settings: {', '.join(fields)}")
    values = dict(fixed)
    for key, f in fields.items():
        if key not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{where} has no field {key!r}", f"add `{key} = ...` (see docs/protocol.md)")
            continue
        subject = f"{where} [{key}]" if dataclasses.is_dataclass(hints[key]) else f"{where} setting {key!r}"
        values[key] = _in_range(f, convert(table[key], hints[key], subject, lenient=lenient), where)
    return cls(**values)


def _in_range(f: dataclasses.Field, value: Any, where: str) -> Any:
    check = f.metadata.get("check")
    if check is not None and value is not None and not check(value):
        raise ConfigError(f"{where} setting {f.name!r} is {value!r}", f"give a value {f.metadata['allowed']}")
    return value


def replace(settings: Any, where: str, **changes: Any) -> Any:
    """A copy of a settings dataclass with ``changes`` (already typed), range-checked like :func:`build`."""
    fields = {f.name: f for f in dataclasses.fields(settings)}
    return dataclasses.replace(settings, **{k: _in_range(fields[k], v, where) for k, v in changes.items()})


def changed(settings: Any) -> dict[str, Any]:
    """The fields of a settings dataclass that differ from their defaults (what a table must say)."""
    return {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.default is dataclasses.MISSING or getattr(settings, f.name) != f.default
    }
