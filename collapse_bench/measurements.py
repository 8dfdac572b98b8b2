"""collapse-bench's text metrics as Hugging Face ``evaluate`` measurements, for pipelines outside the harness.

Any installed metric (built-in or from a plugin) that reads text and needs no model becomes an
``evaluate.Measurement`` that scores a list of strings::

    from collapse_bench.measurements import measurement

    Repetition = measurement("repetition")
    Repetition().compute(predictions=texts)                   # {"seq_rep_1": ..., "distinct_4": ...}
    measurement("tail")().compute(predictions=texts, real=real_texts, mass=0.2)

and :func:`module_file` writes a module file that ``evaluate.load(path)`` loads, offline. The
text is tokenized as the harness does it: ``real`` (the real text, for metrics that compare with
it) is encoded into one stream cut into rows of ``block_tokens`` tokens, each prediction into its
own rows (a remainder shorter than a row is dropped, as a synthetic row never spans two
samples). The tokenizer is ``tokenizer`` (a ``tokenizers.Tokenizer`` or the path of a
``tokenizer.json``, such as the one in a run directory), else a byte-level BPE of
``vocab_size`` tokens fitted on the real text (or, without it, on the predictions) exactly as a
run fits its own. On the same rows the numbers are those the harness reports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from collapse_bench.components import Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.data import RealData, _blocks, fit_tokenizer
from collapse_bench.errors import ConfigError
from collapse_bench.specs import Spec, resolve_params

if TYPE_CHECKING:
    import evaluate
    from tokenizers import Tokenizer


def _rows(tokenizer: Tokenizer, texts: list[str], length: int) -> np.ndarray:
    """Each text's token ids cut into rows of ``length``; remainders shorter than a row are dropped."""
    rows = [
        np.asarray(enc.ids[: len(enc.ids) // length * length], dtype=np.int32).reshape(-1, length)
        for enc in tokenizer.encode_batch(texts)
    ]
    return np.concatenate(rows) if rows else np.zeros((0, length), dtype=np.int32)


def _tokenizer(tokenizer: Tokenizer | str | Path | None, texts: list[str], vocab_size: int) -> Tokenizer:
    from tokenizers import Tokenizer

    if tokenizer is None:
        return fit_tokenizer(texts, vocab_size)
    return tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer.from_file(str(tokenizer))


def score_texts(
    metric: type[Metric],
    predictions: list[str],
    real: list[str] | None = None,
    tokenizer: Tokenizer | str | Path | None = None,
    block_tokens: int = 32,
    vocab_size: int = 4096,
    **params: Any,
) -> dict[str, float]:
    """``metric`` (with ``params``) on ``predictions`` as synthetic rows and ``real`` as the real split."""
    if metric.requires:
        raise ConfigError(
            f"metric {metric.name!r} needs a model ({', '.join(sorted(metric.requires))}), not only text",
            "score it inside a run: collapse-bench run --metric " + metric.name,
        )
    if metric.reads_real and not real:
        raise ConfigError(
            f"metric {metric.name!r} compares the texts with real text, and none was given",
            "pass real=[...], a list of real texts",
        )
    tok = _tokenizer(tokenizer, list(real or predictions), vocab_size)
    samples = _rows(tok, list(predictions), block_tokens)
    if not len(samples):
        raise ConfigError(
            f"no prediction has {block_tokens} tokens, the length of one row",
            "pass longer texts or a smaller block_tokens",
        )
    real_rows = _blocks(tok, list(real), block_tokens) if real else samples[:0]
    data = RealData(modality="text", train=real_rows, test=real_rows, pool=real_rows[:0], tokenizer=tok)
    instance = metric(**resolve_params(metric, Spec(metric.name, params), "metric"))
    return instance.compute(MetricContext(model=None, base=None, real=data, samples=samples, generation=0))


def measurement(name: str) -> type[evaluate.Measurement]:
    """The installed text metric ``name`` as an ``evaluate.Measurement`` class."""
    import datasets
    import evaluate

    from collapse_bench.plugins import get_registry

    metric: type[Metric] = get_registry().component("metric", name)  # type: ignore[assignment]
    if "text" not in metric.modalities:
        raise ConfigError(f"metric {name!r} scores vectors, not text", "pick a text metric: collapse-bench list metric")

    class _Measurement(evaluate.Measurement):
        metric_class: ClassVar[type[Metric]] = metric

        def _info(self) -> evaluate.MeasurementInfo:
            return evaluate.MeasurementInfo(
                module_type="measurement",
                description=f"collapse-bench's `{name}` metric: {metric.summary()}",
                citation="",
                inputs_description=(
                    "predictions: list of str, the texts scored. Keyword arguments: real (list of str, real "
                    "text for metrics that compare with it), tokenizer, block_tokens, vocab_size, and the "
                    f"metric's own parameters. Returns: {', '.join(metric.outputs)}."
                ),
                features=datasets.Features({"predictions": datasets.Value("string")}),
                reference_urls=["https://pypi.org/project/collapse-bench/"],
            )

        def _compute(self, predictions: list[str], **kwargs: Any) -> dict[str, float]:
            return score_texts(self.metric_class, predictions, **kwargs)

    _Measurement.__name__ = _Measurement.__qualname__ = _class_name(name)
    return _Measurement


def _class_name(name: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^0-9A-Za-z]+", name) if part) + "Measurement"


def module_file(name: str, directory: Path | str) -> Path:
    """Write a module file for ``evaluate.load(path)`` that loads metric ``name``; return its path.

    The file is ``directory/<name>/<name>.py`` (``evaluate.load`` accepts the folder or the file)
    and only imports collapse-bench, so it loads with ``HF_EVALUATE_OFFLINE=1``.
    """
    measurement(name)  # refuse an unknown or non-text metric now, not at load time
    stem = re.sub(r"[^0-9A-Za-z]+", "_", name)
    folder = Path(directory) / stem
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.py"
    path.write_text(
        f'"""collapse-bench\'s `{name}` metric as an evaluate measurement."""\n\n'
        "from collapse_bench.measurements import measurement\n\n"
        f"{_class_name(name)} = measurement({name!r})\n",
        encoding="utf-8",
    )
    return path
