"""Every decoding filter the transformer models offer, against transformers' logits processors, in float32.

The spec of top-p is what docs/models.md promises: the smallest set of most probable tokens
whose probability reaches p. ``TopPLogitsWarper`` keeps a set of the same size and mass; where
tokens of equal probability straddle the boundary it keeps the higher ids and we the lower (see
the boundary test). Elsewhere the two agree exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from collapse_bench.decoding import Decoding
from collapse_bench.errors import ConfigError

torch = pytest.importorskip("torch")
lp = pytest.importorskip("transformers.generation.logits_process")
from collapse_bench.builtin.models.torch_decoding import _draw, filter_logits  # noqa: E402

PROBS = [0.3, 0.1, 0.1, 0.5]


def kept(logits: torch.Tensor) -> list[set[int]]:
    return [set(np.flatnonzero(np.isfinite(row))) for row in logits.numpy()]


def logits_of(probs: list[float]) -> torch.Tensor:
    return torch.tensor([probs], dtype=torch.float32).log()


@pytest.mark.parametrize(
    ("probs", "top_p", "want"),
    [
        (PROBS, 0.8, {3, 0}),  # the mass reaches p exactly: nothing more is needed
        (PROBS, 0.9, {3, 0, 1}),  # of two tokens of equal probability, the lower id is kept
        (PROBS, 0.81, {3, 0, 1}),
        (PROBS, 0.5, {3}),
        ([0.25] * 4, 0.5, {0, 1}),
        ([0.25] * 4, 0.75, {0, 1, 2}),
    ],
)
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(probs, top_p, want):
    assert kept(filter_logits(logits_of(probs), Decoding(top_p=top_p))) == [want]
    # transformers keeps a set of the same size and mass; among equally probable tokens it keeps
    # the higher ids (its ascending sort), where we keep the lower ones
    theirs = kept(lp.TopPLogitsWarper(top_p)(None, logits_of(probs)))[0]
    assert len(theirs) == len(want) and math.isclose(sum(probs[i] for i in theirs), sum(probs[i] for i in want))


def test_top_p_draws_follow_the_kept_set():
    gen = torch.Generator().manual_seed(0)
    probs = filter_logits(logits_of(PROBS).repeat(200_000, 1), Decoding(top_p=0.8)).softmax(-1)
    freq = np.bincount(_draw(probs, gen).numpy(), minlength=4) / 200_000
    assert freq[1] == freq[2] == 0  # was drawn 10.9% of the time
    np.testing.assert_allclose(freq[[0, 3]], [0.3 / 0.8, 0.5 / 0.8], atol=0.005)


def test_top_k_keeps_ties_as_transformers_does():
    logits = torch.tensor([[2.0, 1.0, 1.0, 1.0, 0.5], [3.0, 3.0, 3.0, 0.0, -1.0]])
    for k in (1, 2, 3, 5, 9):
        ours = filter_logits(logits, Decoding(top_k=k))
        assert torch.equal(ours, lp.TopKLogitsWarper(k)(None, logits))
    assert kept(filter_logits(logits, Decoding(top_k=2))) == [{0, 1, 2, 3}, {0, 1, 2}]


def test_temperature_top_k_top_p_match_transformers_away_from_the_boundary():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(0, 3, size=(400, 64)), dtype=torch.float32)
    for temperature, top_k, top_p in [(0.7, None, 0.9), (1.3, 20, 0.5), (1.0, 5, None), (0.5, 0, 0.95)]:
        dec = Decoding(temperature=temperature, top_k=top_k, top_p=top_p)
        theirs = lp.TemperatureLogitsWarper(temperature)(None, logits)
        if top_k:
            theirs = lp.TopKLogitsWarper(top_k)(None, theirs)
        ours = filter_logits(logits, dec)
        if top_p is not None:
            theirs = lp.TopPLogitsWarper(top_p)(None, theirs)
            # rows where some prefix mass lies within 1e-5 of p are boundary cases (see the test above)
            before_top_p = filter_logits(logits, Decoding(temperature=temperature, top_k=top_k))
            sorted_probs = before_top_p.sort(-1, descending=True).values.softmax(-1).double()
            prefix = sorted_probs.cumsum(-1)
            near = ((prefix - top_p).abs() < 1e-5).any(-1)
            assert int(near.sum()) < 5
            ours, theirs = ours[~near], theirs[~near]
        assert kept(ours) == kept(theirs)
        finite = torch.isfinite(ours)
        torch.testing.assert_close(ours[finite], theirs[finite])


def test_filters_transformers_has_but_the_models_do_not_offer_are_refused():
    for option in ("min_p", "typical_p", "epsilon_cutoff", "eta_cutoff"):
        with pytest.raises(ConfigError, match=f"no setting '{option}'"):
            Decoding.parse({option: 0.1})
    assert math.isinf(filter_logits(logits_of(PROBS), Decoding(top_p=0.5))[0, 0])
