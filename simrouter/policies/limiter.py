"""Rate limiters: admit or reject a request at time ``now``, without a clock.

``TokenBucket`` is Envoy's local rate limit: a bucket of ``burst`` tokens refilled
continuously at ``rate`` tokens per second, one token per admitted request::

    tokens = min(burst, tokens + rate * (now - last)); last = now
    if tokens >= 1: tokens -= 1; admit   else: reject (HTTP 429)

The bucket starts full. ``KeyedLimiter`` keeps one bucket per key (per-user
scope); a global limiter is a single bucket whatever the key. ``now`` must not
go backwards for a given bucket.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


class TokenBucket:
    """Continuous-refill token bucket; ``try_acquire(now)`` spends one token."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float = 0.0):
        if rate <= 0 or burst < 1:
            raise ValueError("token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def try_acquire(self, now: float) -> bool:
        elapsed = now - self._last
        if elapsed > 0:
            tokens = self._tokens + elapsed * self.rate
            self._tokens = tokens if tokens < self.burst else self.burst
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (no side effect)."""
        return min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)


class KeyedLimiter:
    """One limiter per key, created on first use by ``factory(now)``."""

    __slots__ = ("_factory", "_limiters")

    def __init__(self, factory: Callable[[float], TokenBucket]):
        self._factory = factory
        self._limiters: dict[Hashable, TokenBucket] = {}

    def try_acquire(self, key: Hashable, now: float) -> bool:
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = self._limiters[key] = self._factory(now)
        return limiter.try_acquire(now)


class GlobalLimiter:
    """One limiter shared by every key."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: TokenBucket):
        self._limiter = limiter

    def try_acquire(self, key: Hashable, now: float) -> bool:
        return self._limiter.try_acquire(now)


class NoLimiter:
    """Admits everything."""

    __slots__ = ()

    def try_acquire(self, key: Hashable, now: float) -> bool:
        return True


def build_limiter(config) -> KeyedLimiter | GlobalLimiter | NoLimiter:
    """The limiter a ``LimiterConfig`` describes, keyed by user id."""
    if config.algorithm == "none":
        return NoLimiter()
    if config.scope == "global":
        return GlobalLimiter(TokenBucket(config.rate, config.burst))
    return KeyedLimiter(lambda now: TokenBucket(config.rate, config.burst, now))
