"""Built-in metrics on small cases whose values can be computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from collapse_bench import RealData
from collapse_bench.builtin.metrics import register_metrics
from collapse_bench.builtin.metrics.counting import ngram_ids, unigram_counts
from collapse_bench.builtin.metrics.divergence import UnigramDivergenceMetric
from collapse_bench.builtin.metrics.paper_perplexity import PaperPerplexityMetric
from collapse_bench.builtin.metrics.perplexity import PerplexityMetric
from collapse_bench.builtin.metrics.reference_perplexity import ReferencePerplexityMetric, percentile
from collapse_bench.builtin.metrics.repetition import ORDERS, RepetitionMetric
from collapse_bench.builtin.metrics.tail import TailMetric, tail_types
from collapse_bench.builtin.metrics.variance import VarianceMetric
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.models.gaussian import GaussianModel
from collapse_bench.components import Metric, Model
from collapse_bench.contexts import FitContext, MetricContext
from collapse_bench.errors import ConfigError, DataError
from collapse_bench.specs import Spec, resolve_params
from collapse_bench.testing import protocol_with


def rows(*values: list[int]) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def text_data(train: np.ndarray, test: np.ndarray | None = None, test_chars: int | None = None) -> RealData:
    test = train if test is None else test
    return RealData(modality="text", train=train, test=test, pool=train[:0], tokenizer=None, test_chars=test_chars)


def fitted(model: Model, data: np.ndarray, vocab_size: int | None = None) -> Model:
    model.fit(data, FitContext(seed=0, generation=0, rng=np.random.default_rng(0), training={}, vocab_size=vocab_size))
    return model


def score(metric: Metric, real: RealData, samples: np.ndarray, model: Model | None = None, base: Model | None = None):
    """Run one metric and check that it returns exactly the values it declares."""
    ctx = MetricContext(model=model, base=base or model, real=real, samples=samples, generation=1)
    out = metric.compute(ctx)
    assert set(out) == set(metric.outputs)
    assert all(isinstance(v, float) for v in out.values())
    return out


def test_all_metrics_register_with_summaries():
    registered = []
    register_metrics(registered.append)
    assert [cls.name for cls in registered] == [
        "perplexity", "paper-perplexity", "reference-perplexity", "tail", "repetition", "unigram-divergence",
        "variance", "zipf", "self-bleu", "evaluate", "regression",
    ]  # fmt: skip
    # `evaluate` learns its outputs from the module it is given, so it declares them per instance
    assert all(cls.summary() and (cls.outputs or cls.name == "evaluate") for cls in registered)
    assert PerplexityMetric.qualified("perplexity") == "perplexity"
    assert RepetitionMetric.qualified("seq_rep_4") == "repetition.seq_rep_4"


# --- counting helpers ---------------------------------------------------------------------------


def test_unigram_counts_have_the_requested_length():
    assert unigram_counts(rows([2, 2], [0, 2]), 5).tolist() == [1, 0, 3, 0, 0]
    assert unigram_counts(rows([7]), 3).tolist() == [0] * 7 + [1]


def test_ngram_ids_equal_exactly_when_tokens_equal():
    data = rows([1, 2, 1, 2], [2, 1, 2, 3])
    (uni, d1), (bi, d2), (tri, d3) = ngram_ids(data, 3)
    assert (uni.shape, bi.shape, tri.shape) == ((2, 4), (2, 3), (2, 2))
    assert (d1, d2, d3) == (3, 3, 3)  # {1,2,3}; {12,21,23}; {121,212,123}
    assert bi[0, 0] == bi[0, 2] == bi[1, 1] and bi[0, 1] == bi[1, 0] != bi[0, 0]
    assert tri[0, 1] == tri[1, 0] and len({tri[0, 0], tri[0, 1], tri[1, 1]}) == 3


def test_ngram_ids_do_not_overflow_with_a_huge_vocabulary():
    big = 2**40  # big**4 would overflow int64 if n-grams were keyed by raw ids
    data = np.array([[big, 1, big, 1, big]], dtype=np.int64)
    *_, (four, distinct) = ngram_ids(data, 4)
    assert distinct == 2 and four[0, 0] != four[0, 1]


# --- perplexity -----------------------------------------------------------------------------------


def test_uniform_model_has_perplexity_equal_to_vocab_size():
    vocab = 8
    train = np.arange(2 * vocab, dtype=np.int32).reshape(2, vocab) % vocab
    test = rows([0, 3, 5, 7], [1, 1, 2, 6])
    model = fitted(CategoricalModel(), train, vocab)
    out = score(PerplexityMetric(), text_data(train, test, test_chars=12), test, model)
    assert out["perplexity"] == pytest.approx(vocab)
    assert out["bits_per_char"] == pytest.approx(8 * 3 / 12)  # 8 tokens of 3 bits over 12 characters
    assert out["zero_prob_rate"] == 0.0


def test_bits_per_char_is_total_nll_in_bits_over_characters():
    train = rows([0, 0, 0, 1])  # p(0) = 3/4, p(1) = 1/4
    test = rows([0, 1], [1, 1])
    model = fitted(CategoricalModel(), train, 2)
    out = score(PerplexityMetric(), text_data(train, test, test_chars=5), test, model)
    bits = -math.log2(0.75) - 3 * math.log2(0.25)
    assert out["bits_per_char"] == pytest.approx(bits / 5)
    assert out["perplexity"] == pytest.approx(2 ** (bits / 4))


def test_zero_probability_test_token_makes_perplexity_infinite():
    train = rows([0, 1, 2, 3])
    test = rows([0, 1, 2, 3], [0, 5, 1, 2])  # token 5 never seen: probability 0 at alpha = 0
    model = fitted(CategoricalModel(alpha=0.0), train, 8)
    with np.errstate(all="raise"):
        out = score(PerplexityMetric(), text_data(train, test, test_chars=20), test, model)
    assert out["zero_prob_rate"] == pytest.approx(1 / 8)
    assert out["perplexity"] == math.inf and out["bits_per_char"] == math.inf


@pytest.mark.parametrize("test_chars", [None, 0])
def test_perplexity_refuses_an_unknown_test_character_count(test_chars):
    train = rows([0, 1])
    with pytest.raises(DataError, match=rf"metric 'perplexity' needs .* character count .* it is {test_chars} \("):
        score(PerplexityMetric(), text_data(train, test_chars=test_chars), train, fitted(CategoricalModel(), train, 2))


# --- paper perplexity -----------------------------------------------------------------------------


def test_paper_perplexity_is_exp_of_the_mean_of_per_batch_losses_over_predicted_tokens():
    model = fitted(CategoricalModel(), rows([0, 0, 0, 1]), 2)  # p(0) = 3/4, p(1) = 1/4
    test = rows([1, 0, 0], [0, 1, 1], [1, 1, 0])  # the first token of each row is not predicted
    a, b = -math.log(0.75), -math.log(0.25)
    # batches of 2 rows: [row 0, row 1], [row 2]; each batch's loss is its mean over predicted tokens
    first, last = (a + a + b + b) / 4, (b + a) / 2
    out = score(PaperPerplexityMetric(batch_size=2), text_data(rows([0, 1]), test), rows([0, 1]), model)
    assert out["paper-perplexity"] == pytest.approx(math.exp((first + last) / 2))
    whole = score(PaperPerplexityMetric(batch_size=3), text_data(rows([0, 1]), test), rows([0, 1]), model)
    assert whole["paper-perplexity"] == pytest.approx(math.exp((3 * a + 3 * b) / 6))  # one batch: every token alike


def test_reference_perplexity_skip_first_leaves_each_rows_first_token_out():
    base = fitted(CategoricalModel(), rows([0, 0, 0, 1]), 2)  # p(0) = 3/4, p(1) = 1/4
    samples = rows([1, 0, 0], [0, 1, 1])  # without the first token: 4/3 and 4
    out = score(ReferencePerplexityMetric(skip_first=True), text_data(rows([0, 1])), samples, model=base, base=base)
    assert out["mean"] == pytest.approx((4 / 3 + 4) / 2)


# --- reference perplexity -------------------------------------------------------------------------


def test_reference_perplexity_scores_rows_under_the_base_model():
    train = rows([0, 0, 0, 1])  # base: p(0) = 3/4, p(1) = 1/4
    base = fitted(CategoricalModel(), train, 2)
    samples = rows([1, 1], [0, 0], [0, 1])
    out = score(ReferencePerplexityMetric(), text_data(train), samples, model=base, base=base)
    low, mid, high = 4 / 3, 1 / math.sqrt(0.75 * 0.25), 4.0
    assert out["mean"] == pytest.approx((low + mid + high) / 3)
    # ranks h = 2q/100: 0.1, 1 and 1.9, interpolated between neighbours
    expected = (low + 0.1 * (mid - low), mid, mid + 0.9 * (high - mid))
    assert (out["p05"], out["p50"], out["p95"]) == pytest.approx(expected)


def test_reference_perplexity_keeps_impossible_rows_infinite():
    train = rows([0, 0, 1, 1])
    base = fitted(CategoricalModel(), train, 3)
    samples = np.zeros((40, 4), dtype=np.int32)
    samples[-1, 0] = 2  # one row the base model gives probability 0
    with np.errstate(divide="ignore"):  # CategoricalModel.nll takes log(0) itself
        out = score(ReferencePerplexityMetric(), text_data(train), samples, model=base, base=base)
    assert out["p05"] == out["p50"] == pytest.approx(2.0)
    assert out["p95"] == 2.0 and out["mean"] == math.inf  # 1 row in 40 is above the 95th percentile


def test_reference_perplexity_p50_is_the_median_not_the_lower_median():
    base = fitted(CategoricalModel(), rows([0, 0, 0, 1]), 2)  # p(0) = 3/4, p(1) = 1/4
    samples = rows([0, 0], [0, 1], [1, 1], [1, 1])  # row perplexities 4/3, 4/sqrt(3), 4, 4
    out = score(ReferencePerplexityMetric(), text_data(rows([0, 1])), samples, model=base, base=base)
    low, mid, high = 4 / 3, 4 / math.sqrt(3), 4.0
    assert out["p50"] == pytest.approx((mid + high) / 2)  # the lower median would be mid
    assert out["p05"] == pytest.approx(low + 0.15 * (mid - low))  # rank 3 x 0.05 = 0.15
    assert out["p95"] == pytest.approx(high)  # rank 2.85, between two rows of 4
    assert out["mean"] == pytest.approx((low + mid + 2 * high) / 4)


def test_reference_perplexity_percentiles_reach_infinite_rows_without_nan():
    base = fitted(CategoricalModel(alpha=0.0), rows([0, 0, 0, 1]), 3)  # token 2: probability 0
    samples = rows([0, 0], [0, 1], [2, 2])  # 4/3, 4/sqrt(3), inf
    with np.errstate(divide="ignore"):  # CategoricalModel.nll takes log(0) itself
        out = score(ReferencePerplexityMetric(), text_data(rows([0, 1])), samples, model=base, base=base)
    assert out["p50"] == pytest.approx(4 / math.sqrt(3))  # weight 0 on the infinite row
    assert out["p95"] == math.inf and out["mean"] == math.inf  # interpolated towards it


@pytest.mark.parametrize("size", [1, 2, 5, 256, 1001])
def test_percentile_is_numpys_default_on_finite_values(size):
    values = np.sort(np.random.default_rng(size).lognormal(size=size))
    for q in (5, 50, 95):
        assert percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-12)


# --- tail -----------------------------------------------------------------------------------------


def corpus(counts: dict[int, int]) -> np.ndarray:
    tokens = np.repeat(list(counts), list(counts.values())).astype(np.int32)
    return tokens.reshape(10, -1)


TRAIN = corpus({0: 50, 1: 30, 2: 10, 3: 5, 4: 3, 5: 2})  # 100 tokens; rarest 10%: types 5, 4, 3


def test_tail_is_the_rarest_types_making_up_the_mass():
    types, share = tail_types(TRAIN, 0.1)
    assert types.tolist() == [5, 4, 3] and share == pytest.approx(0.1)
    samples = rows([0] * 18 + [5, 3])  # 2 of 20 tokens in the tail, as in real data; 2 of 3 types
    out = score(TailMetric(mass=0.1), text_data(TRAIN), samples)
    assert out == pytest.approx({"share_ratio": 1.0, "type_coverage": 2 / 3})


def test_tail_coverage_drops_when_samples_lose_tail_types():
    full = score(TailMetric(), text_data(TRAIN), rows([0, 3, 4, 5, 1, 2]))
    lost = score(TailMetric(), text_data(TRAIN), rows([0, 3, 3, 3, 1, 2]))
    gone = score(TailMetric(), text_data(TRAIN), rows([0, 1, 2, 0, 1, 2]))
    assert full["type_coverage"] == 1.0 and lost["type_coverage"] == pytest.approx(1 / 3)
    assert full["share_ratio"] == lost["share_ratio"] == pytest.approx(0.5 / 0.1)
    assert gone == {"share_ratio": 0.0, "type_coverage": 0.0}


def test_tail_never_exceeds_the_mass():
    types, share = tail_types(TRAIN, 0.12)  # type 2 (10 more tokens) would overshoot to 20%
    assert types.tolist() == [5, 4, 3] and share == pytest.approx(0.1)
    assert tail_types(TRAIN, 0.2)[0].tolist() == [5, 4, 3, 2]
    assert tail_types(TRAIN, 1.0)[1] == 1.0


def test_tail_ties_are_broken_by_token_id():
    assert tail_types(corpus({0: 96, 7: 2, 3: 2}), 0.03)[0].tolist() == [3]


def test_tail_refuses_a_mass_no_type_fits_in():
    with pytest.raises(DataError, match="rarest token type"):
        score(TailMetric(mass=0.1), text_data(rows([0, 0, 1, 1])), rows([0]))


@pytest.mark.parametrize("mass", [0.0, -0.1, 1.5])
def test_tail_mass_is_validated(mass):
    with pytest.raises(ConfigError):
        TailMetric(mass=mass)


def test_tail_mass_is_settable_from_a_spec():
    assert resolve_params(TailMetric, Spec.parse("tail:mass=0.2"), "metric") == {"mass": 0.2}


# --- repetition -----------------------------------------------------------------------------------


def test_repetition_of_a_repeating_row():
    out = score(RepetitionMetric(), text_data(TRAIN), rows([1, 2, 1, 2]))
    expected_rep = [1 - 2 / 4, 1 - 2 / 3, 0.0, 0.0]
    expected_distinct = [2 / 4, 2 / 4, 2 / 4, 1 / 4]  # distinct n-grams over the row's 4 tokens
    for n in range(1, 5):
        assert out[f"seq_rep_{n}"] == pytest.approx(expected_rep[n - 1])
        assert out[f"distinct_{n}"] == pytest.approx(expected_distinct[n - 1])


def test_seq_rep_2_of_a_b_a_b_a_b_is_three_fifths():
    out = score(RepetitionMetric(), text_data(TRAIN), rows([0, 1, 0, 1, 0, 1]))
    assert out["seq_rep_2"] == pytest.approx(1 - 2 / 5)  # 5 bigrams, 2 distinct: the audit's hand check


def test_repetition_averages_rows_and_pools_distinct_ngrams():
    out = score(RepetitionMetric(), text_data(TRAIN), rows([1, 2, 1, 2], [1, 2, 3, 4]))
    assert out["seq_rep_1"] == pytest.approx((0.5 + 0.0) / 2)
    assert out["seq_rep_2"] == pytest.approx((1 / 3 + 0.0) / 2)
    assert out["distinct_1"] == pytest.approx(4 / 8)  # {1, 2, 3, 4} over 8 tokens
    assert out["distinct_2"] == pytest.approx(4 / 8)  # {12, 21, 23, 34}; 12 is shared across rows
    assert out["distinct_4"] == pytest.approx(2 / 8)


def test_distinct_n_is_li_et_al_distinct_ngrams_over_generated_tokens():
    # Li et al. 2016: "the number of distinct unigrams and bigrams divided by total number of generated words"
    samples = rows([5, 6, 7, 5, 6], [6, 7, 5, 6, 7], [5, 5, 5, 5, 5])  # 15 generated tokens
    out = score(RepetitionMetric(), text_data(TRAIN), samples)
    # bigrams: {56, 67, 75} from row 1, 67 56 from row 2 (nothing new), 55 from row 3: 4 distinct
    # trigrams: {567, 675, 756} + {} + {555}: 4; 4-grams: {5675, 6756} + {6756, 7567} + {5555}: 4
    assert [out[f"distinct_{n}"] for n in ORDERS] == pytest.approx([3 / 15, 4 / 15, 4 / 15, 4 / 15])
    for n in ORDERS:  # the same formula with Python sets
        grams = {tuple(row[i : i + n]) for row in samples.tolist() for i in range(len(row) - n + 1)}
        assert out[f"distinct_{n}"] == len(grams) / samples.size


def test_repetition_refuses_sequences_shorter_than_its_orders():
    with pytest.raises(ConfigError, match="block_tokens"):
        RepetitionMetric().check(protocol_with("smoke", data={"train_size": 10, "test_size": 10, "block_tokens": 3}))
    RepetitionMetric().check(protocol_with("smoke", data={"train_size": 10, "test_size": 10, "block_tokens": 4}))


# --- unigram divergence ---------------------------------------------------------------------------


def test_js_is_zero_for_identical_and_one_for_disjoint_distributions():
    real = text_data(rows([0, 1, 1, 2]))
    same = score(UnigramDivergenceMetric(), real, rows([1, 0, 2, 1], [2, 1, 1, 0]))
    disjoint = score(UnigramDivergenceMetric(), real, rows([3, 4, 5, 3]))
    assert same["js"] == pytest.approx(0.0, abs=1e-12)
    assert disjoint["js"] == pytest.approx(1.0)
    assert math.isfinite(disjoint["kl"]) and disjoint["kl"] > same["kl"]


def test_kl_is_smoothed_by_epsilon():
    real = text_data(rows([0, 1]))  # p = (1/2, 1/2)
    out = score(UnigramDivergenceMetric(epsilon=0.5), real, rows([0, 0]))  # q' = (2.5/3, 0.5/3)
    assert out["kl"] == pytest.approx(0.5 * math.log2(0.5 / (2.5 / 3)) + 0.5 * math.log2(0.5 / (0.5 / 3)))
    # m = (3/4, 1/4): JS = 1/2 [1/2 log2(2/3) + 1/2 log2 2] + 1/2 log2(4/3)
    assert out["js"] == pytest.approx(0.25 * math.log2(2 / 3) + 0.25 + 0.5 * math.log2(4 / 3))


@pytest.mark.parametrize("epsilon", [0.0, -1.0])
def test_epsilon_is_validated(epsilon):
    with pytest.raises(ConfigError):
        UnigramDivergenceMetric(epsilon=epsilon)


# --- variance -------------------------------------------------------------------------------------


def vector_data(train: np.ndarray) -> RealData:
    return RealData(modality="vector", train=train, test=train, pool=train[:0])


def test_w2_between_identical_gaussians_is_zero():
    train = np.random.default_rng(0).normal(size=(200, 3)) @ np.array([[2, 0, 0], [1, 1, 0], [0, 3, 1]])
    model = fitted(GaussianModel(), train)
    out = score(VarianceMetric(), vector_data(train), train, model)
    assert out["w2"] == pytest.approx(0.0, abs=1e-6)
    assert out["ratio"] == pytest.approx(1.0)


def test_w2_between_unit_gaussians_three_apart_is_three():
    train = np.array([[-1.0], [1.0]])  # N(0, 1) by maximum likelihood
    model = fitted(GaussianModel(), train + 3.0)  # N(3, 1)
    assert score(VarianceMetric(), vector_data(train), train, model)["w2"] == pytest.approx(3.0)


def test_w2_between_n_3_4_and_n_0_1_is_the_square_root_of_ten():
    train = np.array([[-1.0], [1.0]])  # N(0, 1)
    model = fitted(GaussianModel(), np.array([[1.0], [5.0]]))  # N(3, 4)
    w2 = score(VarianceMetric(), vector_data(train), train, model)["w2"]
    assert w2 == pytest.approx(math.sqrt(3**2 + (2 - 1) ** 2))  # sqrt(10), the audit's hand check


def test_w2_of_commuting_covariances_matches_the_closed_form():
    corners = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    train = corners * [2.0, 1.0]  # mean 0, covariance diag(4, 1)
    model = fitted(GaussianModel(), corners * [1.0, 2.0] + [3.0, 0.0])  # mean (3, 0), diag(1, 4)
    w2 = score(VarianceMetric(), vector_data(train), train, model)["w2"]
    assert w2 == pytest.approx(math.sqrt(3**2 + (2 - 1) ** 2 + (1 - 2) ** 2))


def test_w2_of_non_commuting_covariances_matches_the_2x2_closed_form():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(500, 2)) @ np.array([[1.0, 0.8], [0.0, 0.6]])
    model = fitted(GaussianModel(), rng.normal(size=(500, 2)) * [1.0, 2.0] + [0.5, -1.0])
    (m1, s1), m2, s2 = model.moments(), train.mean(axis=0), np.cov(train, rowvar=False, ddof=0)
    # For 2x2 PSD M, tr(M^1/2) = sqrt(tr M + 2 sqrt(det M)); (S2^1/2 S1 S2^1/2) has the trace and det of S1 S2.
    root_trace = math.sqrt(np.trace(s1 @ s2) + 2 * math.sqrt(np.linalg.det(s1) * np.linalg.det(s2)))
    expected = math.sqrt(np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * root_trace)
    assert score(VarianceMetric(), vector_data(train), train, model)["w2"] == pytest.approx(expected)


def test_variance_ratio_of_a_halved_covariance_is_one_half():
    train = np.random.default_rng(1).normal(size=(100, 2))
    base = fitted(GaussianModel(), train)
    halved = fitted(GaussianModel(), train / math.sqrt(2))
    assert score(VarianceMetric(), vector_data(train), train, halved, base)["ratio"] == pytest.approx(0.5)


# --- edge inputs: a defined value or a refusal naming the cause, never NaN or a crash ------------


def text_metric_cases() -> list[tuple[Metric, Model | None]]:
    """Every built-in text metric, with a generation-0 model (categorical on TRAIN) where it needs one."""
    model = fitted(CategoricalModel(), TRAIN, 8)
    return [
        (PerplexityMetric(), model),
        (ReferencePerplexityMetric(), model),
        (TailMetric(), None),
        (RepetitionMetric(), None),
        (UnigramDivergenceMetric(), None),
    ]


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0, 0)])
@pytest.mark.parametrize("case", range(5))
def test_every_text_metric_refuses_empty_inputs_by_name(case, shape):
    metric, model = text_metric_cases()[case]
    empty = np.zeros(shape, dtype=np.int32)
    # perplexity scores the test split, not S_g: an empty test split is its empty input
    real = text_data(TRAIN, empty, test_chars=1) if metric.name == "perplexity" else text_data(TRAIN, test_chars=1)
    what = "the real test split" if metric.name == "perplexity" else "synthetic rows S_g"
    with pytest.raises(DataError, match=rf"metric {metric.name!r} got {what} of shape \({shape[0]}, {shape[1]}\)"):
        score(metric, real, empty, model)


@pytest.mark.parametrize("case", [2, 4])  # the metrics that read the real training split
def test_metrics_refuse_an_empty_real_training_split(case):
    metric, model = text_metric_cases()[case]
    with pytest.raises(DataError, match="the real training split"):
        score(metric, text_data(np.zeros((0, 4), dtype=np.int32)), rows([1, 2, 3, 4]), model)


@pytest.mark.filterwarnings("error")  # no 0/0 or log(0) along the way
def test_a_single_row_of_one_repeated_token_has_defined_values():
    sample = rows([3, 3, 3, 3])
    model = fitted(CategoricalModel(), TRAIN, 8)  # p(3) = 5 / 100
    ref = score(ReferencePerplexityMetric(), text_data(TRAIN), sample, model)
    assert ref == pytest.approx(dict.fromkeys(["mean", "p05", "p50", "p95"], 20.0))  # one row: all its ppl
    tail = score(TailMetric(), text_data(TRAIN), sample)  # type 3 is in the tail {5, 4, 3} (10% of TRAIN)
    assert tail == pytest.approx({"share_ratio": 1.0 / 0.1, "type_coverage": 1 / 3})
    rep = score(RepetitionMetric(), text_data(TRAIN), sample)
    assert [rep[f"seq_rep_{n}"] for n in ORDERS] == pytest.approx([3 / 4, 2 / 3, 1 / 2, 0.0])
    assert [rep[f"distinct_{n}"] for n in ORDERS] == pytest.approx([1 / 4] * 4)
    div = score(UnigramDivergenceMetric(), text_data(TRAIN), sample)
    p = np.array([50, 30, 10, 5, 3, 2]) / 100  # TRAIN's unigram distribution; q puts all mass on 3
    q_smoothed = (np.array([0, 0, 0, 4, 0, 0]) + 0.5) / (4 + 0.5 * 6)
    m = (p + np.eye(6)[3]) / 2
    assert div["kl"] == pytest.approx(np.sum(p * np.log2(p / q_smoothed)))
    assert div["js"] == pytest.approx(0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.log2(1 / m[3]))


@pytest.mark.filterwarnings("error")
def test_metrics_other_than_repetition_take_rows_of_one_token():
    samples = rows([3], [0], [3])
    model = fitted(CategoricalModel(), TRAIN, 8)  # p(3) = 5 / 100, p(0) = 50 / 100
    ref = score(ReferencePerplexityMetric(), text_data(TRAIN), samples, model)
    assert ref["p50"] == pytest.approx(20.0) and ref["p05"] == pytest.approx(2.0 + 0.1 * (20.0 - 2.0))
    assert score(TailMetric(), text_data(TRAIN), samples)["share_ratio"] == pytest.approx((2 / 3) / 0.1)
    assert math.isfinite(score(UnigramDivergenceMetric(), text_data(TRAIN), samples)["kl"])
    with pytest.raises(ConfigError, match="sequences have 1 tokens"):
        score(RepetitionMetric(), text_data(TRAIN), samples)


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (0, 0)])
def test_paper_perplexity_refuses_an_empty_test_split_by_name(shape):
    empty = np.zeros(shape, dtype=np.int32)
    model = fitted(CategoricalModel(), TRAIN, 8)
    with pytest.raises(DataError, match=rf"metric 'paper-perplexity' got the real test split of shape \({shape[0]}, "):
        score(PaperPerplexityMetric(), text_data(TRAIN, empty, test_chars=1), empty, model)


def test_the_metrics_that_skip_a_rows_first_token_refuse_rows_of_one_token():
    """docs/metrics.md's edge table: nothing is left to score after the first token."""
    model = fitted(CategoricalModel(), TRAIN, 8)
    one = rows([3], [0])
    with pytest.raises(DataError, match="'paper-perplexity' needs rows of at least 2 tokens"):
        score(PaperPerplexityMetric(), text_data(TRAIN, one, test_chars=1), one, model)
    with pytest.raises(DataError, match=r"'reference-perplexity' got synthetic rows S_g without their first token"):
        score(ReferencePerplexityMetric(skip_first=True), text_data(TRAIN), one, model)


@pytest.mark.filterwarnings("error")
def test_repetition_of_rows_exactly_n_tokens_long():
    out = score(RepetitionMetric(), text_data(TRAIN), rows([1, 2, 3, 4], [1, 2, 3, 5]))
    assert out["seq_rep_4"] == 0.0 and out["distinct_4"] == pytest.approx(2 / 8)  # one 4-gram per row


def test_variance_refuses_a_zero_variance_generation_0_fit_naming_the_model():
    real = np.array([[1.0, 2.0], [3.0, 5.0]])
    flat = fitted(GaussianModel(), np.array([[4.0, 4.0], [4.0, 4.0]]))  # covariance 0
    with pytest.raises(DataError, match="model 'gaussian' fitted a covariance of trace 0 at generation 0"):
        score(VarianceMetric(), vector_data(real), real, flat)


@pytest.mark.filterwarnings("error")
def test_variance_of_a_model_collapsed_to_a_point_is_zero_with_a_finite_w2():
    real = np.array([[-1.0], [1.0]])  # N(0, 1)
    base = fitted(GaussianModel(), real)
    point = fitted(GaussianModel(), np.array([[2.0], [2.0]]))  # N(2, 0)
    out = score(VarianceMetric(), vector_data(real), real, point, base)
    assert out == pytest.approx({"ratio": 0.0, "w2": math.sqrt(2**2 + 1**2)})  # W2 in 1-D: (mu, sigma) distance


def test_variance_refuses_an_empty_real_training_split():
    model = fitted(GaussianModel(), np.array([[0.0], [1.0]]))
    with pytest.raises(DataError, match="metric 'variance' got the real training split of shape"):
        score(VarianceMetric(), vector_data(np.zeros((0, 1))), np.zeros((2, 1)), model)
