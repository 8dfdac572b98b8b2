"""Built-in models: the paper's two theory cases and a smoothed n-gram language model."""

from __future__ import annotations

from collapse_bench import hookimpl
from collapse_bench.builtin.models.categorical import CategoricalModel
from collapse_bench.builtin.models.gaussian import GaussianModel
from collapse_bench.builtin.models.ngram import NgramModel


@hookimpl
def register_models(register):
    register(GaussianModel)
    register(CategoricalModel)
    register(NgramModel)
