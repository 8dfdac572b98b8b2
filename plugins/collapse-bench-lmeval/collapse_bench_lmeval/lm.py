"""A collapse-bench model as an lm-evaluation-harness language model, scored through ``Model.nll``."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
from lm_eval.api.model import LM

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from collapse_bench import Model


class CollapseBenchLM(LM):
    """lm-eval's ``loglikelihood`` for any collapse-bench model with log-likelihoods (``gpt``, ``hf``, ...).

    A request ``(context, continuation)`` is encoded with the run's tokenizer, context then
    continuation, and cut from the left to the model's row length ``length`` (the protocol's
    ``block_tokens``), so the continuation is scored after as much context as fits. Its
    log-likelihood is minus the sum of ``model.nll`` over the continuation's tokens. Requests are
    scored in batches of equal length, so no padding enters the numbers. Tasks that need generated
    text (``generate_until``) or rolling perplexity are not supported.
    """

    def __init__(self, model: Model, tokenizer: Tokenizer, length: int) -> None:
        super().__init__()
        self.model, self.tokenizer, self.length = model, tokenizer, length

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        rows: list[list[int]] = []
        scored: list[int] = []
        for request in requests:
            context, continuation = request.args
            cont = self.tokenizer.encode(continuation).ids[-self.length :]
            ctx = self.tokenizer.encode(context).ids if context else []
            row = (ctx + cont)[-self.length :]
            rows.append(row)
            scored.append(len(cont))
        out: list[tuple[float, bool]] = [(0.0, False)] * len(rows)
        by_length: dict[int, list[int]] = defaultdict(list)
        for i, row in enumerate(rows):
            by_length[len(row)].append(i)
        for length, members in by_length.items():
            nll = np.asarray(self.model.nll(np.array([rows[i] for i in members], dtype=np.int64)), dtype=np.float64)
            for j, i in enumerate(members):
                # is_greedy is not known from log-likelihoods alone; accuracy does not use it
                out[i] = (-float(nll[j, length - scored[i] :].sum()), False)
        return out

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError("rolling log-likelihood (perplexity tasks) is not supported by the downstream metric")

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        raise NotImplementedError("generation tasks are not supported by the downstream metric")
