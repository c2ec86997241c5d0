"""Output analysis across independent replications (Law, ch. 9-11).

Every estimator here takes ONE value per replication (a run's P95, its mean
latency, its recovery time ...). Replications use independent random streams,
so those values are i.i.d., and the Student-t interval applies to them. A
binomial or bootstrap interval over one run's requests would be wrong: within a
run successive latencies are correlated.

* ``t_interval(values, level)``: ``mean -/+ t(n-1, (1+level)/2) * s / sqrt(n)``;
  None with fewer than two values.
* ``paired_t_interval(a, b, level)``: the t-interval of the differences
  ``b - a``, replication by replication. Under common random numbers the two
  configurations see the same arrivals and service draws, so the differences
  vary far less than either side: that is the point of pairing.
* ``quantile_interval(samples, q, level)``: an interval for the ``q``-quantile
  of the latency *distribution* by sectioning (Nakayama 2014; Asmussen & Glynn,
  ch. III.5): the point estimate is the quantile of all replications' samples
  pooled, and the half-width is ``t(R-1) * s / sqrt(R)``, ``s`` the standard
  deviation of the R per-replication quantiles. A t-interval of per-run
  quantiles would instead describe the *mean of per-run quantiles*, which is
  biased for a small run (a P99 of 1,000 samples is not the P99).
* ``paired_quantile_interval(a, b, q, level)``: the same for the difference of
  two configurations' quantiles under common random numbers: pooled B minus
  pooled A, -/+ ``t(R-1) * s_d / sqrt(R)``, ``s_d`` the standard deviation of the
  per-replication differences of quantiles.
* ``relative_half_width(values, level)``: half-width / |mean|. A constant
  series has 0; a non-constant series with mean 0 has infinity (relative
  precision is undefined there, so it is never "reached").
* ``precision_reached(interval, gamma)``: Law & Kelton's relative-precision
  test (Law 2015, sec. 9.4.1): half-width <= ``gamma' * |point|`` with the
  corrected target ``gamma' = gamma / (1 + gamma)``. Comparing against gamma
  itself lets the *actual* relative error exceed gamma. ``sequential_stop``
  applies it replication count by replication count from ``n0`` (at least
  ``MIN_SEQUENTIAL``, Law & Kelton's 10; simrouter's default is 20, because a
  mode absent from the first n0 runs cannot show in their variance).
* Two guards make the stopped interval cover when the per-replication values
  have a rare high mode (a P99 that jumps when a run gets its few slow calls, a
  recovery time when the breaker sometimes re-trips):
  - **Cochran's rule** (Cochran 1977, *Sampling Techniques*, sec. 2.15): the
    t-interval is trusted only once ``n >= 25 g1**2``, ``g1`` the sample
    skewness of the values the half-width came from (``Interval.skewness``,
    ``cochran_minimum``). A mode seen in a few runs makes ``g1`` large, so the
    procedure refuses to stop on a sample that happens to hold few of them.
  - a per-metric first stage: ``precision_reached(interval, gamma, first)``
    with ``first = MIN_TAIL_SEQUENTIAL`` (40) for tail and recovery figures
    (the caller chooses): a mode of probability p is absent from all of the
    first n runs with probability ``(1 - p)**n``, 0.92**40 = 3.6 %, and no rule
    on the sample can see a mode it does not hold.
  ``sequential_stop``'s ``intervals(n)`` yields intervals or ``(interval,
  first)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DEFAULT_LEVEL = 0.95
MIN_SEQUENTIAL = 10  # Law & Kelton's smallest n0 for sequential stopping
MIN_TAIL_SEQUENTIAL = 40  # first stage for figures with rare high modes (module doc)
COCHRAN_FACTOR = 25.0  # Cochran's rule: n >= 25 g1**2

__all__ = [
    "DEFAULT_LEVEL",
    "MIN_SEQUENTIAL",
    "MIN_TAIL_SEQUENTIAL",
    "Interval",
    "cochran_minimum",
    "corrected_precision",
    "paired_quantile_interval",
    "paired_t_interval",
    "precision_reached",
    "quantile_interval",
    "relative_half_width",
    "sample_skewness",
    "sequential_stop",
    "t_interval",
]


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval from ``n`` replications around a point
    estimate (``mean``: the sample mean, or for a quantile the pooled quantile).
    ``skewness``: the sample skewness g1 of the n values the half-width came from
    (None when not known): Cochran's rule reads it."""

    mean: float
    low: float
    high: float
    n: int
    level: float
    skewness: float | None = None

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_list(self) -> list[float]:
        return [self.low, self.high]

    @property
    def relative_half_width(self) -> float:
        """Half-width over |point| (0 when the half-width is 0, inf when the point is 0)."""
        if self.half_width == 0.0:
            return 0.0
        if self.mean == 0.0:
            return math.inf
        return self.half_width / abs(self.mean)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must be strictly between 0 and 1, got {level}")


@lru_cache(maxsize=4096)
def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, dof))


def sample_skewness(values) -> float:
    """g1 = m3 / m2**1.5 (moment estimator); 0 for a constant sample."""
    x = np.asarray(values, dtype=float)
    deviations = x - x.mean()
    m2 = float(np.mean(deviations**2))
    if m2 <= 0.0 or not math.isfinite(m2):
        return 0.0
    return float(np.mean(deviations**3)) / m2**1.5


def cochran_minimum(skewness: float | None) -> int:
    """Cochran's smallest n for a trustworthy 95 % t-interval: ``ceil(25 g1**2)``."""
    if skewness is None or not math.isfinite(skewness):
        return 0 if skewness is None else 2**31
    return math.ceil(COCHRAN_FACTOR * skewness * skewness)


def t_interval(values: Sequence[float] | np.ndarray, level: float = DEFAULT_LEVEL) -> Interval | None:
    """Student-t interval for the mean of i.i.d. ``values``; None when n < 2."""
    _check_level(level)
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        return None
    mean = float(x.mean())
    half = _t_quantile(level, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level, sample_skewness(x))


def paired_t_interval(a, b, level: float = DEFAULT_LEVEL) -> Interval | None:
    """t-interval for the mean of ``b - a`` over paired replications."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    return t_interval(b - a, level)


def quantile_interval(samples: Sequence[np.ndarray], q: float, level: float = DEFAULT_LEVEL) -> Interval | None:
    """Sectioning interval for the ``q``-quantile (0 < q < 1) of the distribution the
    replications sample: pooled quantile -/+ t(R-1) * s / sqrt(R) (module doc). Samples
    of each replication in any order; replications without a sample are left out;
    None with fewer than two replications that have one."""
    _check_level(level)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q: must be strictly between 0 and 1, got {q}")
    parts = [np.asarray(s, dtype=float) for s in samples if len(s)]
    r = len(parts)
    if r < 2:
        return None
    sections = np.array([np.quantile(part, q) for part in parts])
    point = float(np.quantile(np.concatenate(parts), q))
    half = _t_quantile(level, r - 1) * float(sections.std(ddof=1)) / math.sqrt(r)
    return Interval(point, point - half, point + half, r, level, sample_skewness(sections))


def paired_quantile_interval(a: Sequence[np.ndarray], b: Sequence[np.ndarray], q: float, level: float = DEFAULT_LEVEL) -> Interval | None:
    """Sectioning interval for quantile(B) - quantile(A) over paired replications
    (``a[r]`` and ``b[r]`` are replication r's samples; pairs where either is empty
    are left out); None with fewer than two pairs."""
    _check_level(level)
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    pairs = [(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y in zip(a, b) if len(x) and len(y)]
    r = len(pairs)
    if r < 2:
        return None
    sections = np.array([np.quantile(y, q) - np.quantile(x, q) for x, y in pairs])
    point = float(np.quantile(np.concatenate([y for _, y in pairs]), q) - np.quantile(np.concatenate([x for x, _ in pairs]), q))
    half = _t_quantile(level, r - 1) * float(sections.std(ddof=1)) / math.sqrt(r)
    return Interval(point, point - half, point + half, r, level, sample_skewness(sections))


def relative_half_width(values, level: float = DEFAULT_LEVEL) -> float:
    """Half-width over |mean| of the t-interval (inf with fewer than two values)."""
    interval = t_interval(values, level)
    return math.inf if interval is None else interval.relative_half_width


def corrected_precision(gamma: float) -> float:
    """Law & Kelton's corrected target ``gamma / (1 + gamma)``: a half-width within it
    of the estimate bounds the relative error |estimate - truth| / |truth| by gamma."""
    return gamma / (1.0 + gamma)


def precision_reached(interval: Interval | None, gamma: float, first: int = 0) -> bool:
    """True when ``interval`` rests on at least ``first`` replications and on as many
    as Cochran's rule asks (``cochran_minimum(interval.skewness)``), and its half-width
    is within the corrected target of its point."""
    return (
        interval is not None
        and interval.n >= max(first, cochran_minimum(interval.skewness))
        and interval.relative_half_width <= corrected_precision(gamma)
    )


def sequential_stop(intervals: Callable[[int], Iterable], start: int, available: int, gamma: float) -> int | None:
    """The first n in ``start .. available`` at which every interval ``intervals(n)``
    (one per watched metric, from the first n replications: an ``Interval`` or None,
    or an ``(interval, first)`` pair with that metric's first stage) reaches ``gamma``
    (``precision_reached``); None if none does yet. ``intervals(n)`` yielding nothing
    (no metric has a value) counts as reached."""
    for n in range(start, available + 1):
        if all(precision_reached(interval, gamma, first) for interval, first in map(_with_first, intervals(n))):
            return n
    return None


def _with_first(item) -> tuple[Interval | None, int]:
    return item if isinstance(item, tuple) else (item, 0)
