"""Built-in models: the paper's two theory cases, a smoothed n-gram model, and transformers.

The transformer modules import torch only when a model trains, samples or loads.
"""

from __future__ import annotations

from collapse_bench import hookimpl
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.models.gaussian import GaussianModel
from collapse_bench.builtin.models.gpt import GptModel, GptSmall, GptTiny
from collapse_bench.builtin.models.hf import HfModel
from collapse_bench.builtin.models.ngram import NgramModel


@hookimpl
def register_models(register):
    register(GaussianModel)
    register(CategoricalModel)
    register(NgramModel)
    register(GptModel)
    register(GptTiny)
    register(GptSmall)
    register(HfModel)
