"""How alike the synthetic rows are to one another: Self-BLEU (Zhu et al. 2018), computed with sacrebleu."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from collapse_bench.builtin.metrics.guards import require_rows
from collapse_bench.components import LOWER, Metric
from collapse_bench.contexts import MetricContext
from collapse_bench.errors import ConfigError, DataError

if TYPE_CHECKING:
    from collapse_bench.protocol import Protocol


class SelfBleuMetric(Metric):
    """Mean BLEU-4 of each of a sample of synthetic rows against all the other rows of the sample.

    ``k = min(rows, |S_g|)`` rows are taken evenly spaced (rows ``i·n // k``; S_g's rows are
    independent draws, so this is a sample of them) and decoded to text with the run's tokenizer.
    With ``BLEU(h; R)`` sacrebleu's sentence BLEU of hypothesis ``h`` against the reference set ``R``
    (up to 4-grams, the ``13a`` tokenizer, ``exp`` smoothing, effective order), divided by 100:

    * ``self-bleu = 1/k · sum_i BLEU(x_i; {x_j : j != i})``: in [0, 1]; 1 when every row is the
      same, near 0 for rows that share no n-grams. Higher means less diverse, so lower is better.

    The value depends on ``rows`` (more references, more matches) and the row length: compare it
    at one protocol's sizes and the same ``rows``. Its cost grows with ``rows`` squared, which is
    why only a sample is scored.
    """

    name = "self-bleu"
    modalities = frozenset({"text"})
    outputs = {"self-bleu": LOWER}
    reads_real = False

    def __init__(self, *, rows: int = 64) -> None:
        """``rows``: how many synthetic rows are compared with one another (at least 2)."""
        if rows < 2:
            raise ConfigError(f"self-bleu rows is {rows}", "compare at least 2 rows, e.g. self-bleu:rows=64")
        self.rows = rows

    def check(self, protocol: Protocol) -> None:
        if protocol.samples < 2:
            raise ConfigError(
                f"self-bleu compares synthetic rows with each other, but the protocol draws {protocol.samples}",
                "set samples to 2 or more, or drop the self-bleu metric",
            )

    def compute(self, ctx: MetricContext) -> dict[str, float]:
        require_rows(ctx.samples, self.name, "synthetic rows S_g")
        if len(ctx.samples) < 2:
            raise DataError(
                f"metric 'self-bleu' got {len(ctx.samples)} synthetic row; Self-BLEU compares rows with each other",
                "draw 2 or more samples per generation",
            )
        n = len(ctx.samples)
        k = min(self.rows, n)
        texts = ctx.real.decode(ctx.samples[[i * n // k for i in range(k)]])
        return {"self-bleu": self_bleu(texts)}


def self_bleu(texts: list[str]) -> float:
    """Mean sacrebleu sentence BLEU-4 (in [0, 1]) of each of two or more texts against all the others.

    Equal to ``mean_i BLEU(effective_order=True).sentence_score(texts[i], others).score / 100``, but
    linear rather than quadratic in the number of texts: sacrebleu would merge the n-gram counts of
    all other texts once per hypothesis, so each n-gram's largest count over the texts is kept with
    its owner and the runner-up count, and the largest over "all but i" is read off in one step.
    sacrebleu tokenizes, extracts the n-grams and turns the match statistics into BLEU.
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    bleu = BLEU(effective_order=True)
    grams = [extract_all_word_ngrams(bleu.tokenizer(t.rstrip()), 1, bleu.max_ngram_order) for t in texts]
    best: dict[tuple[str, ...], tuple[int, int, int]] = {}  # n-gram -> (largest count, its text, runner-up)
    for i, (counts, _) in enumerate(grams):
        for gram, c in counts.items():
            top, owner, second = best.get(gram, (0, -1, 0))
            best[gram] = (c, i, top) if c > top else (top, owner, max(second, c))
    lengths = [length for _, length in grams]
    scores = []
    for i, (counts, length) in enumerate(grams):
        correct = [0] * bleu.max_ngram_order
        total = [0] * bleu.max_ngram_order
        for gram, c in counts.items():
            top, owner, second = best[gram]
            total[len(gram) - 1] += c
            correct[len(gram) - 1] += min(c, second if owner == i else top)
        others = lengths[:i] + lengths[i + 1 :]
        ref_len = min(others, key=lambda r: (abs(length - r), r))  # sacrebleu's closest reference length
        score = BLEU.compute_bleu(
            correct, total, length, ref_len, bleu.smooth_method, bleu.smooth_value, effective_order=True
        )
        scores.append(score.score)
    return float(np.mean(scores) / 100)
