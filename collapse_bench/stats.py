"""Statistics over seeds: means with confidence intervals, paired differences, rank bands, collapse summaries.

Every number a published leaderboard shows comes from here, so the method is stated once:

* **Interval of a mean** (:func:`interval`): 95% Student t interval ``mean ± t(0.975, n-1) · s/√n``
  for fewer than :data:`BOOTSTRAP_FROM` seeds, where a bootstrap under-covers; from there on the
  BCa bootstrap (:func:`scipy.stats.bootstrap`, fixed resampling seed, so tables reproduce). One
  seed has no interval, and says so.
* **Paired difference** (:func:`paired_difference`): the interval of the per-seed differences to
  the reference entry. Chains of one seed share generation 0 and their random streams across
  mixers, so the seed pairs them and the pairing removes the shared noise.
* **Rank bands** (:func:`rank_bands`): an entry's best rank is one plus the number of entries
  whose interval lies wholly on the better side of its own, its worst rank the number of entries
  minus those wholly on the worse side; entries whose intervals overlap share ranks ("1-2").
* **Collapse summaries** of one chain of values ``v_0 .. v_N`` (one per generation):
  drift ``v_N / v_0``; area under the degradation curve ``(1/(N+1)) Σ_{g=0..N} ln(v_g / v_0)``;
  generations until a threshold ``min{g : v_g / v_0 ≥ t}`` for a value where lower is better
  (``≤ t`` where higher is better), ``inf`` when no generation crosses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Confidence level of every interval.
CONFIDENCE = 0.95
#: From this many seeds on, intervals are BCa bootstrap; below it, Student t.
BOOTSTRAP_FROM = 10
#: Bootstrap resamples, and the seed that makes them reproducible.
RESAMPLES = 9999
RESAMPLE_SEED = 0

METHODS = {
    "t": f"{CONFIDENCE:.0%} Student t interval over seeds",
    "bca": f"{CONFIDENCE:.0%} BCa bootstrap interval over seeds ({RESAMPLES} resamples)",
    "single": "one seed: no interval",
}


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its interval (``low``/``high`` are ``None`` with one seed or a non-finite value)."""

    mean: float
    low: float | None
    high: float | None
    n: int
    method: str  # a key of METHODS

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def separates_from(self, other: Estimate) -> bool:
        """Whether the two intervals (a point where there is none) do not overlap."""
        lo, hi = (self.low, self.high) if self.has_interval else (self.mean, self.mean)
        olo, ohi = (other.low, other.high) if other.has_interval else (other.mean, other.mean)
        return bool(hi < olo or ohi < lo)


def interval(values: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """The mean of ``values`` (one per seed) with its confidence interval; see the module docstring."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(math.nan, None, None, 0, "single")
    mean = float(x.mean())
    if n == 1 or not np.all(np.isfinite(x)):
        return Estimate(mean, None, None, n, "single" if n == 1 else "t")
    if np.all(x == x[0]):  # no spread: the interval is the point (scipy warns on a degenerate sample)
        return Estimate(mean, mean, mean, n, "t" if n < BOOTSTRAP_FROM else "bca")
    if n < BOOTSTRAP_FROM:
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
        return Estimate(mean, mean - half, mean + half, n, "t")
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=confidence,
        n_resamples=RESAMPLES,
        method="BCa",
        rng=np.random.default_rng(RESAMPLE_SEED),
    )
    return Estimate(mean, float(res.confidence_interval.low), float(res.confidence_interval.high), n, "bca")


def paired_difference(entry: Mapping[int, float], reference: Mapping[int, float]) -> Estimate | None:
    """Interval of ``entry - reference`` over the seeds both have (``None`` when they share none)."""
    seeds = sorted(set(entry) & set(reference))
    if not seeds:
        return None
    return interval([entry[s] - reference[s] for s in seeds])


def rank_bands(estimates: Sequence[Estimate], higher_is_better: bool) -> list[tuple[int, int]]:
    """For each estimate, its (best, worst) rank among all; see the module docstring."""
    out = []
    for e in estimates:
        better = worse = 0
        for o in estimates:
            if o is e or not e.separates_from(o):
                continue
            if (o.mean > e.mean) == higher_is_better:
                better += 1
            else:
                worse += 1
        out.append((1 + better, len(estimates) - worse))
    return out


def band_label(band: tuple[int, int]) -> str:
    """``"1"`` or ``"1-2"``; ``"—"`` for an unranked entry (band ``(0, 0)``)."""
    if band == (0, 0):
        return "—"
    return str(band[0]) if band[0] == band[1] else f"{band[0]}-{band[1]}"


def drift(curve: Sequence[float]) -> float:
    """``v_N / v_0``: how far the last generation moved from the first (1 = no change)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(curve[-1]) / np.float64(curve[0]))


def area(curve: Sequence[float]) -> float:
    """Area under the degradation curve: the mean of ``ln(v_g / v_0)`` over generations 0..N."""
    v = np.asarray(curve, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.log(v / v[0])))


def generations_until(curve: Sequence[float], threshold: float, higher_is_better: bool) -> float:
    """The first generation whose ratio to generation 0 crosses ``threshold`` (``inf`` when none does)."""
    v = np.asarray(curve, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = v / v[0]
    crossed = ratio <= threshold if higher_is_better else ratio >= threshold
    hits = np.flatnonzero(crossed)
    return float(hits[0]) if len(hits) else math.inf


def decimals(e: Estimate, significant: int = 4) -> int:
    """Decimal places the estimate supports: one significant digit of the interval's half-width.

    Without an interval, ``significant`` digits of the mean.
    """
    if e.has_interval and e.high > e.low:
        return max(0, -math.floor(math.log10((e.high - e.low) / 2)))
    if not math.isfinite(e.mean) or e.mean == 0:
        return 0
    return max(0, significant - 1 - math.floor(math.log10(abs(e.mean))))


def fmt(e: Estimate) -> str:
    """``"1.23 [1.20, 1.27]"``, rounded to what the interval supports; the bare mean without one.

    Seeds that all agree (generation 0, which no mixer touches) give a zero-width interval: the mean alone.
    """
    if not math.isfinite(e.mean):
        return str(e.mean)
    d = decimals(e)
    text = f"{e.mean:.{d}f}"
    return f"{text} [{e.low:.{d}f}, {e.high:.{d}f}]" if e.has_interval and e.high > e.low else text
