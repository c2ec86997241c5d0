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
* ``relative_half_width(values, level)``: half-width / |mean|, the quantity
  sequential stopping drives below its target. A constant series has 0; a
  non-constant series with mean 0 has infinity (relative precision is
  undefined there, so it is never "reached").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LEVEL = 0.95

__all__ = [
    "DEFAULT_LEVEL",
    "Interval",
    "paired_t_interval",
    "relative_half_width",
    "t_interval",
]


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval for a mean, from ``n`` values."""

    mean: float
    low: float
    high: float
    n: int
    level: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_list(self) -> list[float]:
        return [self.low, self.high]


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, dof))


def t_interval(values: Sequence[float] | np.ndarray, level: float = DEFAULT_LEVEL) -> Interval | None:
    """Student-t interval for the mean of i.i.d. ``values``; None when n < 2."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must be strictly between 0 and 1, got {level}")
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 2:
        return None
    mean = float(x.mean())
    half = _t_quantile(level, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, level)


def paired_t_interval(a, b, level: float = DEFAULT_LEVEL) -> Interval | None:
    """t-interval for the mean of ``b - a`` over paired replications."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} and {b.size}")
    return t_interval(b - a, level)


def relative_half_width(values, level: float = DEFAULT_LEVEL) -> float:
    """Half-width over |mean| (0 for a constant series, inf when the mean is 0)."""
    interval = t_interval(values, level)
    if interval is None:
        return math.inf
    if interval.half_width == 0.0:
        return 0.0
    if interval.mean == 0.0:
        return math.inf
    return interval.half_width / abs(interval.mean)
