"""Retry budget: retries allowed as a fraction of recent requests.

Over the last ``window`` seconds, a retry is allowed while::

    retries + 1 <= ratio * requests + min_per_s * window

``requests`` counts logical requests (each deposits once, when first sent);
``retries`` counts the retries the budget allowed (a denied retry is not
counted). This is Finagle's ``RetryBudget`` (``percentCanRetry`` 0.2, ``ttl``
10 s, ``minRetriesPerSec`` 10); Envoy's retry budget bounds *concurrent*
retries by ``budget_percent`` of active requests to the same effect. Whatever
fails, retries add at most ``ratio`` (plus the reserve) to the offered load,
which is what keeps a short outage from becoming a retry storm.
"""

from __future__ import annotations

from collections import deque


class RetryBudget:
    """Sliding-window retry budget; time is passed in."""

    __slots__ = ("ratio", "window", "reserve", "_requests", "_retries")

    def __init__(self, ratio: float, window: float = 10.0, min_per_s: float = 0.0):
        if ratio < 0 or window <= 0 or min_per_s < 0:
            raise ValueError("retry budget needs ratio >= 0, window > 0, min_per_s >= 0")
        self.ratio = ratio
        self.window = window
        self.reserve = min_per_s * window
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        for times in (self._requests, self._retries):
            while times and times[0] <= horizon:
                times.popleft()

    def deposit(self, now: float) -> None:
        """A logical request was sent at ``now``."""
        self._expire(now)  # else a run without retries keeps every send time
        self._requests.append(now)

    def try_withdraw(self, now: float) -> bool:
        """May a retry be sent at ``now``? If so it is counted."""
        self._expire(now)
        if len(self._retries) + 1 <= self.ratio * len(self._requests) + self.reserve:
            self._retries.append(now)
            return True
        return False

    def balance(self, now: float) -> float:
        """Retries still allowed at ``now`` (may be fractional)."""
        self._expire(now)
        return self.ratio * len(self._requests) + self.reserve - len(self._retries)
