"""The decoding settings of a protocol (``[decoding]``): a public object every model reads.

``Protocol.decoding`` and ``SampleContext.decoding`` are a :class:`Decoding`, validated when the
protocol is read. A model that samples ancestrally at a temperature only (the n-gram,
categorical and Gaussian models, and most plugin models) calls :meth:`Decoding.ancestral` in
its ``check`` and ``sample``; the transformer models honour every setting.

Sampling at temperature T draws from P^(1/T), normalized: T < 1 favours likely outputs, the
sampling bias that speeds up collapse (Alemohammad et al. 2023). Options a model does not
implement are refused before the run, never ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from collapse_bench.errors import ConfigError
from collapse_bench.settings import build, changed, setting

#: Settings that ask for nothing beyond plain sampling at these values.
NEUTRAL: dict[str, tuple[Any, ...]] = {"strategy": ("sample",), "top_k": (None, 0), "top_p": (None, 1.0)}


@dataclass(frozen=True)
class Decoding:
    """How a model draws its synthetic rows: a protocol's ``[decoding]`` table (docs/models.md).

    ``strategy`` is ``sample`` (ancestral, with ``temperature``, ``top_k``, ``top_p``),
    ``greedy`` or ``beam`` (``num_beams`` beams). ``repetition_penalty`` divides the positive
    logits and multiplies the negative ones of tokens already in the sequence (Keskar et al.
    2019, as in ``transformers``). ``min_new_tokens``/``max_new_tokens`` bound the new tokens
    of the model's own tokenizer. ``prompt = "train"`` continues the generation's training rows
    and keeps only the new tokens, ``"real"`` the original real training rows every generation
    (Shumailov et al. 2024); ``"none"`` samples unconditionally. ``keep_prompts``: that share of
    the synthetic rows are prompt rows returned unchanged instead of continued (their 10% setting).
    A setting that does not apply to the strategy is refused, never ignored.
    """

    strategy: Literal["sample", "greedy", "beam"] = "sample"
    temperature: float | None = setting(None, check=lambda v: v > 0, allowed="above 0")
    top_k: int | None = setting(None, check=lambda v: v >= 0, allowed="0 (off) or more")
    top_p: float | None = setting(None, check=lambda v: 0 < v <= 1, allowed="in (0, 1]")
    num_beams: int | None = setting(None, check=lambda v: v >= 2, allowed="2 or more")
    repetition_penalty: float = setting(1.0, check=lambda v: v > 0, allowed="above 0 (1 is off)")
    min_new_tokens: int | None = setting(None, check=lambda v: v >= 0, allowed="0 or more")
    max_new_tokens: int | None = setting(None, check=lambda v: v >= 1, allowed="1 or more")
    prompt: Literal["none", "train", "real"] = "none"
    keep_prompts: float = setting(0.0, check=lambda v: 0 <= v <= 1, allowed="in [0, 1]")

    def __post_init__(self) -> None:
        only = {"temperature": "sample", "top_k": "sample", "top_p": "sample", "num_beams": "beam"}
        for key, strategy in only.items():
            if getattr(self, key) is not None and self.strategy != strategy:
                raise ConfigError(
                    f"decoding {key} applies to strategy {strategy!r}, not {self.strategy!r}",
                    f'remove {key} or set strategy = "{strategy}"',
                )
        if self.keep_prompts and self.prompt == "none":
            raise ConfigError(
                f'decoding keep_prompts = {self.keep_prompts} keeps prompt rows, but prompt = "none"',
                'set prompt = "real" or "train", or remove keep_prompts',
            )
        if (self.min_new_tokens or 0) > (self.max_new_tokens or math.inf):
            raise ConfigError(
                f"decoding min_new_tokens {self.min_new_tokens} exceeds max_new_tokens {self.max_new_tokens}",
                "make min_new_tokens <= max_new_tokens",
            )

    @classmethod
    def parse(cls, table: dict[str, Any], where: str = "[decoding]") -> Decoding:
        """The settings of a ``[decoding]`` table, validated (strictly, as TOML values)."""
        return build(cls, table, where)

    @property
    def beams(self) -> int:
        """Beams of beam search (5 unless ``num_beams`` says otherwise)."""
        return self.num_beams or 5

    def ancestral(self, model: str, *, at_most_one: bool = False) -> float:
        """The temperature of plain ancestral sampling (1 by default), refusing any other setting.

        For models that sample at a temperature only: call it in ``check`` (the refusal names
        ``model`` and the setting) and in ``sample`` (for the temperature). ``at_most_one``
        refuses temperatures above 1, for models that cannot flatten their distribution.
        """
        for key, value in changed(self).items():
            if key == "temperature":
                continue
            if key not in NEUTRAL:
                raise ConfigError(
                    f"{model} does not support decoding option {key!r}",
                    f"remove it; {model} samples ancestrally, with a temperature only",
                )
            if value not in NEUTRAL[key]:
                raise ConfigError(
                    f"{model} supports only ancestral sampling, not decoding {key} = {value!r}",
                    'use strategy = "sample" with a temperature and no top_k/top_p',
                )
        temperature = 1.0 if self.temperature is None else self.temperature
        if at_most_one and temperature > 1:
            raise ConfigError(f"{model} cannot sample at temperature {temperature!r}", "use a temperature in (0, 1]")
        return temperature
