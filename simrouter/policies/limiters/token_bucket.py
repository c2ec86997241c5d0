"""Token bucket with continuous refill, as Envoy's local rate limit.

A bucket of ``burst`` tokens refilled continuously at ``rate`` tokens per second,
one token per admitted request::

    tokens = min(burst, tokens + rate * (now - last)); last = now
    if tokens >= 1: tokens -= 1; admit   else: reject (HTTP 429)

The bucket starts full, so at most ``burst + rate * T`` requests pass in any
window of length ``T``. ``now`` must not go backwards.
"""

from __future__ import annotations

from .protocol import RateLimit

# Refill is float arithmetic: requests spaced exactly 1 / rate apart can find
# 0.9999999999999998 tokens. A token short by less than this still counts.
TOKEN_TOLERANCE = 1e-9


class TokenBucket(RateLimit):
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
        if self._tokens >= 1.0 - TOKEN_TOLERANCE:
            self._tokens -= 1.0
            return True
        return False

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (no side effect)."""
        return min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
