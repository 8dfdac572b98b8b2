"""collapse-bench: a benchmark of model collapse under recursive training.

Public API: the component base classes plugins subclass, the contexts and data they receive
(:class:`RealData`, :class:`Decoding`), the ``hookimpl`` marker plugins decorate their hooks
with, :func:`run` (the whole run sequence, as ``collapse-bench run`` does it) with
:class:`RunConfig` and :class:`ExecutorOptions`, and :func:`load_results` for analysing finished runs.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("collapse-bench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from collapse_bench.components import HIGHER, LOGLIK, LOWER, MOMENTS, Dataset, Metric, Mixer, Model, Verifier
from collapse_bench.contexts import FitContext, MetricContext, MixContext, RealData, SampleContext, VerifyContext
from collapse_bench.decoding import Decoding
from collapse_bench.engine.driver import RunResult, run
from collapse_bench.engine.executors import ExecutorOptions
from collapse_bench.hookspecs import hookimpl
from collapse_bench.plan import RunConfig
from collapse_bench.results import load_results

__all__ = [
    "HIGHER",
    "LOGLIK",
    "LOWER",
    "MOMENTS",
    "Dataset",
    "Decoding",
    "ExecutorOptions",
    "FitContext",
    "Metric",
    "MetricContext",
    "MixContext",
    "Mixer",
    "Model",
    "RealData",
    "RunConfig",
    "RunResult",
    "SampleContext",
    "Verifier",
    "VerifyContext",
    "__version__",
    "hookimpl",
    "load_results",
    "run",
]
