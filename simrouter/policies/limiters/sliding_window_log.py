"""Sliding window log: at most ``limit`` admitted requests in any window of
``size`` seconds, from an exact log of admission times::

    drop timestamps t with t < now - size
    if len(log) < limit: log.append(now); admit   else reject

A timestamp exactly ``size`` old still counts, as in the ``limits`` package's
moving window (its ``MemoryStorage.acquire_entry``), whose decisions this
reproduces step for step. Memory is ``limit`` timestamps per key.
"""

from __future__ import annotations

from collections import deque

from .protocol import RateLimit


class SlidingWindowLog(RateLimit):
    """One key's log of admission times."""

    __slots__ = ("size", "limit", "_log")

    def __init__(self, size: float, limit: int):
        if size <= 0 or limit < 1:
            raise ValueError("sliding window log needs size > 0 and limit >= 1")
        self.size = size
        self.limit = limit
        self._log: deque[float] = deque()

    def try_acquire(self, now: float) -> bool:
        log = self._log
        horizon = now - self.size
        while log and log[0] < horizon:
            log.popleft()
        if len(log) < self.limit:
            log.append(now)
            return True
        return False
