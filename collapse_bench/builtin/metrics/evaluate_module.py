"""Any Hugging Face ``evaluate`` module as a collapse-bench metric, on each generation's decoded text."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from collapse_bench.components import Direction, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError

if TYPE_CHECKING:
    import evaluate

#: The texts a module is run on once when it is chosen, to learn its numeric outputs.
PROBE = ["the king is dead and the queen is gone", "a horse, a horse, my kingdom for a horse"]


class EvaluateMetric(Metric):
    """An `evaluate` measurement or metric run on S_g's decoded rows; its numeric outputs, with a declared direction.

    ``module`` is a local module (a ``.py`` file, or a folder holding ``<folder>.py``), which works
    offline, or a name on the Hugging Face hub (``word_length``, ``bleu``), fetched where the hub is
    reachable. Up to ``rows`` rows of S_g are taken evenly spaced (rows ``i·n // k``) and decoded
    with the run's tokenizer: they are the module's ``predictions``. A module whose inputs include
    ``references`` gets as many rows of the real test split, decoded the same way (row ``j`` of the
    test split for prediction ``j``, cycling when the split is shorter).

    Each numeric output becomes a value ``evaluate.<module>.<key>``: a number as it is, a list of
    numbers (one per prediction, say) as its mean. ``keys`` (``a+b``) chooses outputs; without it,
    the module is run once on two fixed sentences when the metric is chosen, and every output that
    is a number there is taken. `evaluate` does not say which way is better, so ``direction`` does,
    for every value; all of them are headline values.
    """

    name = "evaluate"
    modalities = frozenset({"text"})
    outputs: dict[str, Direction] = {}

    def __init__(
        self, *, module: str, direction: Literal["higher", "lower"] = "higher", keys: str = "", rows: int = 256
    ) -> None:
        """``module``: path or hub name; ``direction``: which way is better; ``keys``: outputs, joined by ``+``
        (default: every numeric one); ``rows``: most synthetic rows scored per generation."""
        if rows < 1:
            raise ConfigError(f"evaluate rows is {rows}", "score at least one row, e.g. evaluate:module=...,rows=256")
        self.module, self.rows = module, rows
        self._module, self.references, numeric, other = _load(module)
        chosen = [k for k in keys.split("+") if k] or list(numeric)
        if not chosen:
            shown = ", ".join(f"{k}: {t}" for k, t in other.items()) or "nothing"
            raise ConfigError(
                f"evaluate module {module!r} returns no number ({shown})",
                "pick a module that scores text with numbers, e.g. the measurement word_length",
            )
        unknown = [k for k in chosen if k not in numeric]
        if unknown:
            what = f"returns {other[unknown[0]]} for" if unknown[0] in other else "has no output"
            raise ConfigError(
                f"evaluate module {module!r} {what} {unknown[0]!r}, not a number",
                f"its numeric outputs are: {', '.join(numeric) or 'none'}",
            )
        stem = _stem(module)
        self._keys = chosen
        self.outputs = {f"{stem}.{k}": direction for k in chosen}

    def dependencies(self) -> list[str | os.PathLike]:
        """A local module's file or folder (hashed by content): an edited module is never served from the cache."""
        return [Path(self.module)] if Path(self.module).exists() else []

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        n = len(ctx.samples)
        k = min(self.rows, n)
        inputs: dict[str, Any] = {"predictions": ctx.real.decode(ctx.samples[[i * n // k for i in range(k)]])}
        if self.references:
            test = ctx.real.test
            inputs["references"] = ctx.real.decode(test[[j % len(test) for j in range(k)]])
        result = self._module.compute(**inputs) or {}
        out = {}
        for key, name in zip(self._keys, self.outputs, strict=True):
            value = _number(result.get(key))
            if value is None:
                raise ConfigError(
                    f"evaluate module {self.module!r} returned {result.get(key)!r} for {key!r}, not a number",
                    "choose numeric outputs with keys=...",
                )
            out[name] = value
        return out


def _stem(module: str) -> str:
    """A module's short name: the file or folder name, or the hub name without its owner."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", Path(module.rstrip("/")).stem) or "module"


def _number(value: Any) -> float | None:
    """A number as a float, a non-empty list of numbers as its mean; ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.number):
        return float(value)
    if isinstance(value, list | tuple | np.ndarray) and len(value):
        array = np.asarray(value)
        if array.dtype.kind in "iuf":
            return float(array.mean())
    return None


@functools.cache
def _load(module: str) -> tuple[evaluate.EvaluationModule, bool, tuple[str, ...], dict[str, str]]:
    """The loaded module, whether it takes references, and on :data:`PROBE` its numeric outputs and
    the type of every other output. Loaded once per process: the harness makes a metric several times."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")  # evaluate ignores HF_HUB_OFFLINE
    import evaluate

    local = Path(module).exists()
    try:
        loaded = evaluate.load(module)
    except Exception as exc:
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fix = (
            "install what the module imports, or fix it (it must define an evaluate.Measurement or evaluate.Metric)"
            if local
            else "give the path of a local module (module=./my_module.py), or make the Hugging Face hub "
            "reachable; HF_EVALUATE_OFFLINE=1 keeps evaluate from trying the hub"
        )
        raise ConfigError(f"evaluate module {module!r} cannot be loaded: {cause}", fix) from None
    features = loaded.features if isinstance(loaded.features, list) else [loaded.features]
    takes = [f for f in features if set(f) <= {"predictions", "references"}]
    if not takes:
        wanted = sorted(set().union(*map(set, features)) - {"predictions", "references"})
        raise ConfigError(
            f"evaluate module {module!r} needs inputs {wanted} that collapse-bench cannot give",
            "use a module that scores predictions (decoded synthetic text) and, optionally, references",
        )
    # Prefer the form without references, when the module offers one.
    form = min(takes, key=len)
    not_text = [k for k, v in form.items() if getattr(v, "dtype", None) != "string"]
    if not_text:
        raise ConfigError(
            f"evaluate module {module!r} takes {not_text[0]} of type {getattr(form[not_text[0]], 'dtype', '?')}, "
            "not text, so it cannot score generated text",
            "use a module whose inputs are strings",
        )
    needs_references = "references" in form
    probe: dict[str, Any] = {"predictions": PROBE} | ({"references": PROBE[::-1]} if needs_references else {})
    try:
        result = loaded.compute(**probe) or {}
    except Exception as exc:
        raise ConfigError(
            f"evaluate module {module!r} failed on two test sentences: {type(exc).__name__}: {exc}".splitlines()[0],
            "check the module with evaluate.load(...).compute(predictions=[...]) outside collapse-bench",
        ) from None
    numeric = tuple(k for k, v in result.items() if _number(v) is not None)
    return loaded, needs_references, numeric, {k: type(v).__name__ for k, v in result.items() if k not in numeric}
