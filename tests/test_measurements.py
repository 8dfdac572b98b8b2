"""collapse-bench's text metrics as `evaluate` measurements: the harness's numbers, loaded offline too."""

from __future__ import annotations

import evaluate
import numpy as np
import pytest

from collapse_bench.contexts import MetricContext
from collapse_bench.data import RealData
from collapse_bench.errors import ConfigError
from collapse_bench.measurements import measurement, module_file
from collapse_bench.plugins import get_registry

TEXT_METRICS = ["repetition", "tail", "unigram-divergence", "zipf", "self-bleu"]


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    docs = get_registry().get("dataset", "shakespeare").obj(genres="roman").load()
    return docs[:12], docs[12:40]  # predictions, real


def harness(name: str, predictions: list[str], real: list[str], tokenizer, length: int) -> dict[str, float]:
    """The metric as a run computes it: each prediction a set of rows, the real text one stream of rows."""
    rows = []
    for text in predictions:
        ids = tokenizer.encode(text).ids
        rows += [ids[i : i + length] for i in range(0, len(ids) - length + 1, length)]
    stream = [i for text in real for i in tokenizer.encode(text + "\n\n").ids]
    real_rows = np.array(stream[: len(stream) // length * length]).reshape(-1, length)
    data = RealData(modality="text", train=real_rows, test=real_rows, pool=real_rows[:0], tokenizer=tokenizer)
    metric = get_registry().component("metric", name)()
    return metric.compute(MetricContext(None, None, data, np.array(rows), 0))


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_a_measurement_gives_the_harness_numbers(name, texts, tiny_corpus):
    predictions, real = texts
    got = measurement(name)().compute(predictions=predictions, real=real, tokenizer=tiny_corpus.tokenizer)
    assert got == harness(name, predictions, real, tiny_corpus.tokenizer, 32)


def test_evaluate_loads_the_module_file_offline(texts, tmp_path):
    predictions, real = texts
    path = module_file("unigram-divergence", tmp_path)
    assert path == tmp_path / "unigram_divergence" / "unigram_divergence.py"
    loaded = evaluate.load(str(path.parent))
    assert type(loaded).__name__ == "UnigramDivergenceMeasurement"
    direct = measurement("unigram-divergence")().compute(predictions=predictions, real=real, epsilon=0.25)
    assert loaded.compute(predictions=predictions, real=real, epsilon=0.25) == direct
    assert direct["js"] > 0 and set(direct) == {"kl", "js"}


def test_repetition_needs_no_real_text_and_params_are_checked(texts):
    predictions, _ = texts
    out = measurement("repetition")().compute(predictions=predictions, block_tokens=16)
    assert set(out) == {f"{k}_{n}" for k in ("seq_rep", "distinct") for n in (1, 2, 3, 4)}
    with pytest.raises(ConfigError, match="has no parameter 'bogus'"):
        measurement("repetition")().compute(predictions=predictions, bogus=1)


def test_what_a_measurement_cannot_do_is_one_clear_error(texts):
    predictions, _ = texts
    with pytest.raises(ConfigError, match="compares the texts with real text"):
        measurement("tail")().compute(predictions=predictions)
    with pytest.raises(ConfigError, match="needs a model"):
        measurement("perplexity")().compute(predictions=predictions, real=predictions)
    with pytest.raises(ConfigError, match="no prediction has 32 tokens"):
        measurement("repetition")().compute(predictions=["too short"])
    with pytest.raises(ConfigError, match="scores vectors"):
        measurement("variance")
