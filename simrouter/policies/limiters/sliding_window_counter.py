"""Sliding window counter (Cloudflare's approximation of a sliding window).

Counters per fixed window of ``size`` seconds (window ``k`` covers
``[k * size, (k + 1) * size)``); the previous window's count is weighted by the
share of it still inside a sliding window ending now::

    estimate = previous * (size - elapsed) / size + current
    if estimate >= limit: reject   else current += 1; admit

The float arithmetic is the ``limits`` package's (``SlidingWindowCounterRateLimiter``
with ``MemoryStorage``), so the two agree decision for decision. Rejected
requests are not counted. The estimate assumes the previous window's requests
were spread evenly: bunched at its end, up to ``2 * limit`` requests can pass
within one window length, as with a fixed window.
"""

from __future__ import annotations

import math

from .protocol import RateLimit


class SlidingWindowCounter(RateLimit):
    """One key's two window counters."""

    __slots__ = ("size", "limit", "_index", "_current", "_previous")

    def __init__(self, size: float, limit: int):
        if size <= 0 or limit < 1:
            raise ValueError("sliding window counter needs size > 0 and limit >= 1")
        self.size = size
        self.limit = limit
        self._index = None  # window of ``_current``
        self._current = 0
        self._previous = 0  # count of window ``_index - 1``

    def try_acquire(self, now: float) -> bool:
        size = self.size
        index = math.floor(now / size)
        if index != self._index:
            self._previous = self._current if self._index is not None and index == self._index + 1 else 0
            self._index, self._current = index, 0
        previous = self._previous
        if previous:
            previous_ttl = (1 - (((now - size) / size) % 1)) * size  # share of window index - 1 still inside
            estimate = previous * previous_ttl / size + self._current
        else:
            estimate = self._current
        if estimate >= self.limit:
            return False
        self._current += 1
        return True
