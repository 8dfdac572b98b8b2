"""Refusals shared by the built-in metrics: inputs on which their formulas have no value."""

from __future__ import annotations

import numpy as np

from collapse_bench.errors import DataError


def require_rows(array: np.ndarray, metric: str, what: str) -> None:
    """Refuse ``array`` (``what`` names it in the message) unless it has at least one row of at least one entry.

    Every built-in metric averages or normalizes over rows and tokens, so an empty set would make
    its value 0/0. The harness never passes one (a protocol's ``samples``, sizes and
    ``block_tokens`` are at least 1); a caller outside it learns which input was empty.
    """
    shape = np.shape(array)
    if len(shape) != 2 or 0 in shape:
        raise DataError(
            f"metric {metric!r} got {what} of shape {shape}, which has nothing to score",
            "pass a 2-D array with at least one row of at least one entry",
        )
