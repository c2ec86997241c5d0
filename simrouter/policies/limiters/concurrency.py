"""Concurrency limit: at most ``max_in_flight`` admitted requests not yet answered.

Envoy's circuit-breaking thresholds (``max_requests``, default 1024) work this
way: over the cap a request is rejected at once (503); nothing is queued. Each
admitted request holds its place until the router answers it and the engine
calls ``release``; a timed-out request releases at the timeout, when the
router answers, even if the backend is still working on it.
"""

from __future__ import annotations

from .protocol import RateLimit


class ConcurrencyLimit(RateLimit):
    """One key's in-flight count."""

    __slots__ = ("max_in_flight", "in_flight")

    holds = True

    def __init__(self, max_in_flight: int):
        if max_in_flight < 1:
            raise ValueError("concurrency limit needs max_in_flight >= 1")
        self.max_in_flight = max_in_flight
        self.in_flight = 0

    def try_acquire(self, now: float) -> bool:
        if self.in_flight >= self.max_in_flight:
            return False
        self.in_flight += 1
        return True

    def release(self, now: float) -> None:
        if self.in_flight <= 0:
            raise RuntimeError("release without a matching acquire")
        self.in_flight -= 1
