"""collapse-bench plugin: ``mauve`` and ``semantic-diversity``, text metrics in sentence-embedding space.

collapse-bench finds this module through the ``collapse_bench`` entry point in ``pyproject.toml``
and calls the hook below; the metrics then appear in ``collapse-bench list`` and can be named
with ``--metric``.
"""

from __future__ import annotations

from collapse_bench import hookimpl
from collapse_bench_mauve.metrics import MauveMetric, SemanticDiversityMetric

__all__ = ["MauveMetric", "SemanticDiversityMetric"]


@hookimpl
def register_metrics(register):
    register(MauveMetric)
    register(SemanticDiversityMetric)
