"""Built-in metrics: test perplexity (ours and the paper's), reference perplexity, tail, repetition, divergence,
variance, Zipf, Self-BLEU, any `evaluate` module, and the regression error."""

from __future__ import annotations

from collapse_bench import hookimpl
from collapse_bench.builtin.metrics.divergence import UnigramDivergenceMetric
from collapse_bench.builtin.metrics.evaluate_module import EvaluateMetric
from collapse_bench.builtin.metrics.paper_perplexity import PaperPerplexityMetric
from collapse_bench.builtin.metrics.perplexity import PerplexityMetric
from collapse_bench.builtin.metrics.reference_perplexity import ReferencePerplexityMetric
from collapse_bench.builtin.metrics.regression import RegressionMetric
from collapse_bench.builtin.metrics.repetition import RepetitionMetric
from collapse_bench.builtin.metrics.self_bleu import SelfBleuMetric
from collapse_bench.builtin.metrics.tail import TailMetric
from collapse_bench.builtin.metrics.variance import VarianceMetric
from collapse_bench.builtin.metrics.zipf import ZipfMetric


@hookimpl
def register_metrics(register):
    register(PerplexityMetric)
    register(PaperPerplexityMetric)
    register(ReferencePerplexityMetric)
    register(TailMetric)
    register(RepetitionMetric)
    register(UnigramDivergenceMetric)
    register(VarianceMetric)
    register(ZipfMetric)
    register(SelfBleuMetric)
    register(EvaluateMetric)
    register(RegressionMetric)
