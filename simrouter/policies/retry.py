"""Client retries: which answers are retried, how often, and how long to wait.

A logical request is tried at most ``max_attempts`` times (the first try
included, as gRPC and resilience4j count); a try whose answer is one of the
``retry_on`` error kinds is followed by another after a backoff. The backoff
before retry ``n`` (``n = 0`` for the first retry), with ``t = min(cap, base *
multiplier ** n)``, is, by the definitions of the AWS Architecture Blog's
"Exponential Backoff And Jitter" (Brooker, 2015):

==============  =========================================================
jitter          backoff
==============  =========================================================
``none``        ``t``
``full``        ``uniform(0, t)``
``equal``       ``t / 2 + uniform(0, t / 2)``
``decorrelated`` ``min(cap, uniform(base, 3 * previous))``, ``previous = base``
                before the first retry (the blog's factor 3; ``multiplier``
                does not apply)
==============  =========================================================

Randomness comes in as a uniform variate ``u`` in [0, 1) (``delay``) or from a
``numpy.random.Generator`` (``sample``); nothing here reads a clock or a
global random state.
"""

from __future__ import annotations

import numpy as np

from ..outcomes import KIND_NAMES

JITTERS = ("none", "full", "equal", "decorrelated")


class Backoff:
    """Exponential backoff with a cap and one of the four jitters."""

    __slots__ = ("base", "multiplier", "cap", "jitter")

    def __init__(self, base: float, multiplier: float = 2.0, cap: float = float("inf"), jitter: str = "full"):
        if base < 0 or multiplier < 1 or cap < base or jitter not in JITTERS:
            raise ValueError(f"backoff needs base >= 0, multiplier >= 1, cap >= base and jitter in {JITTERS}")
        self.base = base
        self.multiplier = multiplier
        self.cap = cap
        self.jitter = jitter

    def ceiling(self, retry: int) -> float:
        """``min(cap, base * multiplier ** retry)``, the un-jittered backoff."""
        if self.base == 0:
            return 0.0
        try:
            growth = self.multiplier**retry
        except OverflowError:
            growth = float("inf")
        return min(self.cap, self.base * growth)

    def delay(self, retry: int, previous: float, u: float) -> float:
        """Seconds before retry ``retry`` (0-based); ``previous`` is the backoff
        before the last retry (decorrelated jitter only; ``base`` before the first)."""
        jitter = self.jitter
        if jitter == "decorrelated":
            low = self.base
            return min(self.cap, low + u * (3.0 * previous - low))
        t = self.ceiling(retry)
        if jitter == "full":
            return u * t
        if jitter == "equal":
            return t / 2 + u * (t / 2)
        return t

    def sample(self, retry: int, previous: float, rng: np.random.Generator) -> float:
        return self.delay(retry, previous, float(rng.random()))


class RetryPolicy:
    """``[router.retry]``: which kinds to retry, how many tries, which backoff."""

    __slots__ = ("max_attempts", "retry_on", "backoff")

    def __init__(self, config):
        self.max_attempts = config.max_attempts
        self.retry_on = frozenset(KIND_NAMES.index(name) for name in config.retry_on)
        self.backoff = Backoff(config.backoff_base, config.backoff_multiplier, config.backoff_max, config.jitter)

    @property
    def enabled(self) -> bool:
        return self.max_attempts > 1 and bool(self.retry_on)

    def retryable(self, kind: int, tries: int) -> bool:
        """True if a try answered ``kind`` may be followed by another, after ``tries`` tries."""
        return tries < self.max_attempts and kind in self.retry_on
