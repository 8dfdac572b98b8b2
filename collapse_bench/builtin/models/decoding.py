"""The decoding settings the built-in models implement, and how they are validated.

The n-gram, categorical and Gaussian models sample ancestrally at a temperature only
(:func:`temperature`); the transformer models take every setting of :class:`Decoding`.

Sampling at temperature T draws from P^(1/T), normalized: T < 1 favours likely outputs, the
sampling bias that speeds up collapse (Alemohammad et al. 2023). Options a model does not
implement are refused before the run, never ignored.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

from collapse_bench.errors import ConfigError

#: Options that are accepted when they ask for nothing beyond plain sampling.
NEUTRAL = {"strategy": ("sample",), "top_k": (None, 0), "top_p": (None, 1)}


def temperature(decoding: dict[str, Any], model: str, *, at_most_one: bool = False) -> float:
    """The temperature ``decoding`` asks for (1 by default), or a ``ConfigError`` naming the option."""
    for key, value in decoding.items():
        if key == "temperature":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
            if not ok or (at_most_one and value > 1):
                allowed = "in (0, 1]" if at_most_one else "above 0"
                raise ConfigError(f"{model} cannot sample at temperature {value!r}", f"use a temperature {allowed}")
        elif key not in NEUTRAL:
            raise ConfigError(
                f"{model} does not support decoding option {key!r}",
                f"remove it; {model} samples ancestrally, with a temperature only",
            )
        elif value not in NEUTRAL[key]:
            raise ConfigError(
                f"{model} supports only ancestral sampling, not decoding {key} = {value!r}",
                'use strategy = "sample" with a temperature and no top_k/top_p',
            )
    return float(decoding.get("temperature", 1.0))


def parse_table(cls: type, table: dict[str, Any], where: str) -> Any:
    """Build the dataclass ``cls`` from a protocol table, refusing unknown keys and ill-typed values.

    Each field's annotation says what it accepts: ``int``, ``float`` (an ``int`` too), ``bool``,
    a ``Literal`` of choices, or any of these ``| None``.
    """
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in table:
        if key not in hints:
            raise ConfigError(f"{where} has no setting {key!r}", f"known settings: {', '.join(known)}")
    return cls(**{key: _typed(value, hints[key], f"{where} setting {key!r}") for key, value in table.items()})


def _typed(value: Any, hint: Any, where: str) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = args[0]
    if typing.get_origin(hint) is typing.Literal:
        choices = typing.get_args(hint)
        if value in choices:
            return value
        raise ConfigError(f"{where} is {value!r}", "choose one of: " + ", ".join(map(repr, choices)))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
    }.get(hint, isinstance(value, hint))
    if not ok:
        raise ConfigError(f"{where} is {value!r}, not a {hint.__name__}", f"give a {hint.__name__}")
    return float(value) if hint is float else value


@dataclass(frozen=True)
class Decoding:
    """The decoding settings of the transformer models (``[decoding]``); see docs/models.md.

    ``strategy`` is ``sample`` (ancestral, with ``temperature``, ``top_k``, ``top_p``),
    ``greedy`` or ``beam`` (``num_beams`` beams). ``repetition_penalty`` divides the positive
    logits and multiplies the negative ones of tokens already in the sequence (Keskar et al.
    2019, as in ``transformers``). ``min_new_tokens``/``max_new_tokens`` bound the new tokens
    of the model's own tokenizer. ``prompt = "train"`` continues the generation's training rows
    and keeps only the new tokens (Shumailov et al. 2024); ``"none"`` samples unconditionally.
    A setting that does not apply to the strategy is refused, never ignored.
    """

    strategy: Literal["sample", "greedy", "beam"] = "sample"
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    num_beams: int | None = None
    repetition_penalty: float = 1.0
    min_new_tokens: int | None = None
    max_new_tokens: int | None = None
    prompt: Literal["none", "train"] = "none"

    def __post_init__(self) -> None:
        only = {"temperature": "sample", "top_k": "sample", "top_p": "sample", "num_beams": "beam"}
        for key, strategy in only.items():
            if getattr(self, key) is not None and self.strategy != strategy:
                raise ConfigError(
                    f"decoding {key} applies to strategy {strategy!r}, not {self.strategy!r}",
                    f'remove {key} or set strategy = "{strategy}"',
                )
        checks = [
            ("temperature", self.temperature is None or self.temperature > 0, "above 0"),
            ("top_k", self.top_k is None or self.top_k >= 0, "0 (off) or more"),
            ("top_p", self.top_p is None or 0 < self.top_p <= 1, "in (0, 1]"),
            ("num_beams", self.num_beams is None or self.num_beams >= 2, "2 or more"),
            ("repetition_penalty", self.repetition_penalty > 0, "above 0 (1 is off)"),
            ("min_new_tokens", self.min_new_tokens is None or self.min_new_tokens >= 0, "0 or more"),
            ("max_new_tokens", self.max_new_tokens is None or self.max_new_tokens >= 1, "1 or more"),
        ]
        for key, ok, allowed in checks:
            if not ok:
                raise ConfigError(f"decoding {key} is {getattr(self, key)!r}", f"give a value {allowed}")
        if (self.min_new_tokens or 0) > (self.max_new_tokens or math.inf):
            raise ConfigError(
                f"decoding min_new_tokens {self.min_new_tokens} exceeds max_new_tokens {self.max_new_tokens}",
                "make min_new_tokens <= max_new_tokens",
            )

    @classmethod
    def parse(cls, table: dict[str, Any]) -> Decoding:
        """The settings of a protocol's ``[decoding]`` table, validated."""
        return parse_table(cls, table, "[decoding]")

    @property
    def beams(self) -> int:
        """Beams of beam search (5 unless ``num_beams`` says otherwise)."""
        return self.num_beams or 5
