"""collapse-bench-lmeval: downstream task accuracy of every generation, through lm-evaluation-harness."""

from __future__ import annotations

from collapse_bench import hookimpl
from collapse_bench_lmeval.metric import DownstreamMetric

__all__ = ["DownstreamMetric"]


@hookimpl
def register_metrics(register):
    register(DownstreamMetric)
