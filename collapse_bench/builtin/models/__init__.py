"""Built-in models: the theory cases (Gaussian, categorical, linear regression), a smoothed n-gram, transformers.

The transformer modules import torch only when a model trains, samples or loads.
"""

from __future__ import annotations

from collapse_bench import hookimpl
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.models.gaussian import GaussianModel
from collapse_bench.builtin.models.gpt import GptModel, GptSmall, GptTiny
from collapse_bench.builtin.models.hf import HfModel
from collapse_bench.builtin.models.linear import LinearRegressionModel
from collapse_bench.builtin.models.ngram import NgramModel


@hookimpl
def register_models(register):
    register(GaussianModel)
    register(CategoricalModel)
    register(LinearRegressionModel)
    register(NgramModel)
    register(GptModel)
    register(GptTiny)
    register(GptSmall)
    register(HfModel)
