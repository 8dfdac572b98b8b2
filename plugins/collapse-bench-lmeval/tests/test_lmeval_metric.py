"""The next-word task, the model adapter and the metric, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("lm_eval", reason="lm-evaluation-harness is not installed: pip install 'lm-eval<0.5'")

from collapse_bench_lmeval.lm import CollapseBenchLM
from collapse_bench_lmeval.metric import DownstreamMetric
from collapse_bench_lmeval.next_word import questions

from collapse_bench.builtin.models import NgramModel
from collapse_bench.contexts import FitContext, MetricContext
from collapse_bench.errors import ConfigError


class Request:
    def __init__(self, *args: str) -> None:
        self.args = args


@pytest.fixture(scope="module")
def ngram(tiny_corpus_module):
    model = NgramModel()
    real = tiny_corpus_module
    ctx = FitContext(seed=0, generation=0, rng=np.random.default_rng(0), training={}, vocab_size=real.vocab_size)
    model.fit(real.train, ctx)
    return model


@pytest.fixture(scope="module")
def tiny_corpus_module():
    from collapse_bench.contract import real_data

    return real_data("text")


def test_questions_by_hand():
    docs = questions("a b c\n\nd e f\n", count=4, choices=3, seed=1)
    assert [(d["context"], d["choices"][d["label"]]) for d in docs] == [
        ("a", "b"), ("a b", "c"), ("a b c\nd", "e"), ("a b c\nd e", "f"),
    ]  # fmt: skip
    for d in docs:
        answer = d["choices"][d["label"]]
        assert len(set(d["choices"])) == 3 and set(d["choices"]) <= set("abcdef")
        assert d["choices"].count(answer) == 1
    assert questions("a b c\nd e f", count=4, choices=3, seed=1) == questions("a b c\nd e f", 4, 3, seed=1)
    assert questions("one two", count=4, choices=3) == []  # two distinct words cannot make three choices


def test_the_adapter_sums_the_models_nll_over_the_continuation(ngram, tiny_corpus_module):
    tok = tiny_corpus_module.tokenizer
    lm = CollapseBenchLM(ngram, tok, length=32)
    requests = [("Friends, Romans, countrymen,", " lend"), ("Friends,", " me your ears"), ("", " Brutus")]
    long = (" the" * 40, " end")  # longer than a row: the context is cut from the left
    got = lm.loglikelihood([Request(*r) for r in [*requests, long]])
    for (context, continuation), (ll, _) in zip([*requests, long], got, strict=True):
        cont = tok.encode(continuation).ids
        row = ((tok.encode(context).ids if context else []) + cont)[-32:]
        expected = -ngram.nll(np.array([row]))[0, len(row) - len(cont) :].sum()
        assert ll == pytest.approx(expected, rel=1e-12)


def test_accuracy_is_the_share_of_questions_whose_answer_scores_highest(ngram, tiny_corpus_module):
    real = tiny_corpus_module
    metric = DownstreamMetric(questions=120, choices=4)
    out = metric.compute(MetricContext(model=ngram, base=ngram, real=real, samples=real.train, generation=0))
    docs = questions(real.decode(real.test.reshape(1, -1))[0], 120, 4)
    lm = CollapseBenchLM(ngram, real.tokenizer, real.test.shape[1])
    right = [
        int(np.argmax([ll for ll, _ in lm.loglikelihood([Request(d["context"], " " + c) for c in d["choices"]])]))
        == d["label"]
        for d in docs
    ]
    acc = sum(right) / len(right)
    assert out == {"next-word.acc": acc, "next-word.acc_stderr": pytest.approx((acc * (1 - acc) / 119) ** 0.5)}
    assert metric.headlines() == ["downstream.next-word.acc"]


def test_an_unknown_lm_eval_task_suggests_the_closest():
    with pytest.raises(ConfigError) as err:
        DownstreamMetric(task="hellaswg")
    assert "lm-eval has no task 'hellaswg'" in str(err.value) and "did you mean 'hellaswag'" in str(err.value)
    with pytest.raises(ConfigError, match="choices is 1"):
        DownstreamMetric(choices=1)
