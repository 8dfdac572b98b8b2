"""The decoding settings the built-in models implement: ancestral sampling at a temperature.

Sampling at temperature T draws from P^(1/T), normalized: T < 1 favours likely outputs, the
sampling bias that speeds up collapse (Alemohammad et al. 2023). Options a model does not
implement (greedy, beam search, top-k, top-p) are refused before the run, never ignored.
"""

from __future__ import annotations

from typing import Any

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
