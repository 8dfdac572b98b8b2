"""The metric audit as a regression test: every built-in metric recomputed independently on real runs.

Small smoke and theory runs go through the real harness; then every recorded value is computed
again from the cached synthetic sets and the real data, with none of collapse-bench's metric
code: token NLLs by torch cross-entropy over each model's full next-token distribution (the
categorical and Gaussian models re-estimated from their training sets, which under ``replace``
are the previous generation's samples), n-grams as Python tuples in sets, counts with
``collections.Counter``, the median and percentiles by ``numpy``, and W2 between 1-D Gaussians by
its closed form; the metrics added since (zipf, self-bleu, paper-perplexity, reference-perplexity
with skip_first) by ``scipy.stats.linregress`` over the counts, sacrebleu's own ``sentence_score``
of each sampled row against the others, per-batch torch cross-entropy and by hand. Each value must
agree to floating-point precision.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sacrebleu.metrics import BLEU
from scipy.stats import linregress

from collapse_bench.builtin.models.ngram import NgramModel
from collapse_bench.cache import Cache
from collapse_bench.data import RealData
from collapse_bench.engine.prepared import load_data
from collapse_bench.plan import make_plan
from collapse_bench.plugins import get_registry
from collapse_bench.testing import run_protocol

REL = 1e-12


def run(
    tmp_path: Path, protocol: str, models: list[str], metrics: tuple[str, ...] = (), **overrides
) -> tuple[RealData, list[dict], Cache]:
    """Run ``protocol`` under ``replace`` through the harness (its own metrics, or ``metrics``).

    Returns its real data, records and cache.
    """
    out = tmp_path / protocol
    run_protocol(out, protocol, models, ["replace"], metrics, **overrides)
    plan = make_plan(
        get_registry(), get_registry().protocol(protocol).override(**overrides), models, ["replace"], metrics
    )
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return load_data(plan), records, Cache(out / "cache")


def samples_of(cache: Cache, records: list[dict], model: str, generation: int) -> np.ndarray:
    (record,) = [r for r in records if r["model"] == model and r["generation"] == generation]
    return cache.load_step(record["step"]).samples


def next_token_logprobs(model: str, step_dir: Path, training: np.ndarray, vocab: int, rows: np.ndarray) -> np.ndarray:
    """``log p(v | context)`` for every position of ``rows`` and every token ``v``: shape (n, L, vocab)."""
    if model == "categorical":  # maximum likelihood (alpha = 0): the training set's unigram frequencies
        counts = np.bincount(training.ravel(), minlength=vocab).astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.broadcast_to(np.log(counts / counts.sum()), (*rows.shape, vocab))
    ngram = NgramModel()  # the smoke default, order 3, read back from the cache
    ngram.load(step_dir)
    context = (ngram._keys(rows) >> ngram.bits) << ngram.bits
    probs = ngram._prob(context[..., None] | np.arange(vocab))
    assert np.allclose(probs.sum(axis=-1), 1.0, rtol=1e-12)  # a full, normalized distribution
    return np.log(probs)


def token_nll(logprobs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cross-entropy of each token of ``rows`` under its position's distribution, by torch."""
    logits = torch.from_numpy(np.ascontiguousarray(logprobs)).reshape(-1, logprobs.shape[-1])
    targets = torch.from_numpy(rows.astype(np.int64)).reshape(-1)
    return F.cross_entropy(logits, targets, reduction="none").reshape(rows.shape).numpy()


def text_values(real: RealData, samples: np.ndarray, test_nll: np.ndarray, base_nll: np.ndarray) -> dict[str, float]:
    """Every built-in text metric, from the definitions in docs/metrics.md."""
    vocab, out = real.vocab_size, {}
    out["perplexity"] = math.exp(test_nll.sum() / test_nll.size)
    out["perplexity.bits_per_char"] = test_nll.sum() / math.log(2) / real.test_chars
    out["perplexity.zero_prob_rate"] = float(np.mean(test_nll == np.inf))

    row_ppl = np.exp(base_nll.mean(axis=1))
    out["reference-perplexity.mean"] = row_ppl.mean()
    out["reference-perplexity.p50"] = np.median(row_ppl)
    out["reference-perplexity.p05"], out["reference-perplexity.p95"] = np.percentile(row_ppl, [5, 95])

    real_counts = Counter(real.train.ravel().tolist())
    total = sum(real_counts.values())
    tail, mass = set(), 0
    for token in sorted(real_counts, key=lambda t: (real_counts[t], t)):
        if (mass + real_counts[token]) / total > 0.1:
            break
        tail.add(token)
        mass += real_counts[token]
    synthetic = samples.ravel().tolist()
    out["tail.share_ratio"] = (sum(t in tail for t in synthetic) / len(synthetic)) / (mass / total)
    out["tail.type_coverage"] = len(tail & set(synthetic)) / len(tail)

    for n in range(1, 5):
        grams = [[tuple(row[i : i + n]) for i in range(len(row) - n + 1)] for row in samples.tolist()]
        out[f"repetition.seq_rep_{n}"] = np.mean([1 - len(set(g)) / len(g) for g in grams])
        out[f"repetition.distinct_{n}"] = len({g for row in grams for g in row}) / samples.size  # Li et al. 2016

    syn_counts, size = Counter(synthetic), len(synthetic)
    p = {t: c / total for t, c in real_counts.items()}
    q = {t: c / size for t, c in syn_counts.items()}
    out["unigram-divergence.kl"] = sum(
        pt * math.log2(pt / ((syn_counts[t] + 0.5) / (size + 0.5 * vocab))) for t, pt in p.items()
    )
    m = {t: (p.get(t, 0) + q.get(t, 0)) / 2 for t in p.keys() | q.keys()}
    out["unigram-divergence.js"] = 0.5 * sum(pt * math.log2(pt / m[t]) for t, pt in p.items()) + 0.5 * sum(
        qt * math.log2(qt / m[t]) for t, qt in q.items()
    )
    return out


def test_every_text_metric_agrees_with_an_independent_computation_on_a_smoke_run(tmp_path):
    models = ["ngram", "categorical"]
    real, records, cache = run(tmp_path, "smoke", models, generations=2, samples=64)
    assert {r["model"] for r in records} == set(models) and {r["generation"] for r in records} == {0, 1}
    vocab = real.vocab_size
    for record in records:
        model, g = record["model"], record["generation"]
        step = cache.load_step(record["step"])
        training = real.train if g == 0 else samples_of(cache, records, model, g - 1)  # replace: D_g = S_{g-1}
        base = cache.load_step(next(r for r in records if r["model"] == model and r["generation"] == 0)["step"])
        test_nll = token_nll(next_token_logprobs(model, step.model_dir, training, vocab, real.test), real.test)
        base_nll = token_nll(next_token_logprobs(model, base.model_dir, real.train, vocab, step.samples), step.samples)
        expected = text_values(real, step.samples, test_nll, base_nll)
        assert set(expected) == set(record["scores"])  # every value of every built-in text metric
        for name, value in expected.items():
            assert record["scores"][name] == pytest.approx(value, rel=REL, abs=1e-15), (model, g, name)


def zipf_of(rows: np.ndarray, types: int = 1000) -> float:
    """Minus the slope of the least-squares line of log count on log rank, over the most frequent types."""
    counts = sorted(Counter(rows.ravel().tolist()).values(), reverse=True)[:types]
    return -linregress(np.log(np.arange(1, len(counts) + 1)), np.log(counts)).slope


ADDED = ("zipf", "self-bleu:rows=16", "paper-perplexity:batch_size=5", "reference-perplexity:skip_first=true")


def test_the_metrics_added_since_the_audit_agree_with_independent_computations_on_a_smoke_run(tmp_path):
    models = ["ngram", "categorical"]
    real, records, cache = run(tmp_path, "smoke", models, ADDED, generations=2, samples=64)
    assert len(records) == 4 and len(real.test) % 5 != 0  # a smaller last batch, weighed like a full one
    vocab, real_zipf = real.vocab_size, zipf_of(real.train)
    finite = 0
    for record in records:
        model, g = record["model"], record["generation"]
        step, samples = cache.load_step(record["step"]), cache.load_step(record["step"]).samples
        training = real.train if g == 0 else samples_of(cache, records, model, g - 1)
        base = cache.load_step(next(r for r in records if r["model"] == model and r["generation"] == 0)["step"])
        expected = {"zipf": zipf_of(samples)}
        expected["zipf.gap"] = abs(expected["zipf"] - real_zipf)

        chosen = [samples[i * len(samples) // 16] for i in range(16)]  # the documented even spacing, k = 16
        texts = [real.tokenizer.decode(row.tolist()) for row in chosen]
        bleu = BLEU(effective_order=True)
        scores = [bleu.sentence_score(t, texts[:i] + texts[i + 1 :]).score for i, t in enumerate(texts)]
        expected["self-bleu"] = np.mean(scores) / 100

        test_nll = token_nll(next_token_logprobs(model, step.model_dir, training, vocab, real.test), real.test)
        batches = [test_nll[i : i + 5, 1:].mean() for i in range(0, len(test_nll), 5)]
        expected["paper-perplexity"] = math.exp(sum(batches) / len(batches))
        finite += math.isfinite(expected["paper-perplexity"])

        base_nll = token_nll(next_token_logprobs(model, base.model_dir, real.train, vocab, samples), samples)
        row_ppl = [math.exp(sum(row[1:]) / (len(row) - 1)) for row in base_nll.tolist()]  # tokens 1..L-1
        expected["reference-perplexity.mean"] = sum(row_ppl) / len(row_ppl)
        expected["reference-perplexity.p50"] = np.median(row_ppl)
        expected["reference-perplexity.p05"], expected["reference-perplexity.p95"] = np.percentile(row_ppl, [5, 95])

        assert set(expected) == set(record["scores"])
        for name, value in expected.items():
            assert record["scores"][name] == pytest.approx(value, rel=REL, abs=1e-15), (model, g, name)
    assert finite == 2  # the n-gram model's paper perplexity is a number, not only the categorical's inf


def test_the_variance_metric_agrees_with_the_gaussian_closed_forms_on_a_theory_run(tmp_path):
    real, records, cache = run(tmp_path, "theory", ["gaussian"], generations=4, seeds=1)
    real_mean, real_sd = real.train.mean(), real.train.std()
    first_var = real.train.var()
    assert len(records) == 4
    for record in records:
        g = record["generation"]
        training = real.train if g == 0 else samples_of(cache, records, "gaussian", g - 1)
        mean, var = training.mean(), training.var()  # the MLE refit, ddof = 0
        assert record["scores"]["variance.ratio"] == pytest.approx(var / first_var, rel=REL)
        w2_squared = (mean - real_mean) ** 2 + (math.sqrt(var) - real_sd) ** 2  # W2 of 1-D Gaussians
        assert record["scores"]["variance.w2"] ** 2 == pytest.approx(w2_squared, rel=1e-9, abs=1e-12)
