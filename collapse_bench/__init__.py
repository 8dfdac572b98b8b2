"""collapse-bench: a benchmark of model collapse under recursive training.

Public API: the component base classes plugins subclass, the ``hookimpl`` marker plugins
decorate their hooks with, and :func:`load_results` for analysing finished runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

import pluggy

try:
    __version__ = version("collapse-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

#: Decorator for plugin hook implementations (see :mod:`collapse_bench.hookspecs`).
hookimpl = pluggy.HookimplMarker("collapse_bench")

from collapse_bench.components import (  # noqa: E402
    HIGHER,
    LOGLIK,
    LOWER,
    MOMENTS,
    Dataset,
    FitContext,
    Metric,
    MetricContext,
    MixContext,
    Mixer,
    Model,
    SampleContext,
)
from collapse_bench.results import load_results  # noqa: E402

__all__ = [
    "HIGHER",
    "LOGLIK",
    "LOWER",
    "MOMENTS",
    "Dataset",
    "FitContext",
    "Metric",
    "MetricContext",
    "MixContext",
    "Mixer",
    "Model",
    "SampleContext",
    "__version__",
    "hookimpl",
    "load_results",
]
