"""Token and n-gram counting shared by the text metrics."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def unigram_counts(rows: np.ndarray, size: int | None = None) -> np.ndarray:
    """Occurrences of every token id in ``rows``: an ``int64`` vector indexed by id.

    Its length is ``max(size, largest id + 1)``, so counts taken with the same ``size`` line up
    id by id; pass the vocabulary size to make types that never occur explicit zeros.
    """
    return np.bincount(np.asarray(rows).ravel(), minlength=size or 0)


def ngram_ids(rows: np.ndarray, max_n: int) -> Iterator[tuple[np.ndarray, int]]:
    """For n = 1..max_n, yield an id for every n-gram of every row, and the number of distinct ids.

    The ids of order n have shape ``(rows, length - n + 1)``: column ``i`` is the n-gram that starts
    at token ``i``. Two n-grams get the same id exactly when their tokens are equal. Ids are
    dense (``0..distinct - 1``) and built from the dense ids of order ``n - 1`` times the token
    range plus the next token, so they never overflow ``int64`` whatever the vocabulary size.
    """
    tokens = np.asarray(rows, dtype=np.int64)
    radix = int(tokens.max()) + 1 if tokens.size else 1
    ids = tokens
    for n in range(1, max_n + 1):
        if n > 1:
            ids = ids[:, :-1] * radix + tokens[:, n - 1 :]
        distinct, inverse = np.unique(ids, return_inverse=True)
        ids = inverse.reshape(ids.shape)
        yield ids, len(distinct)
