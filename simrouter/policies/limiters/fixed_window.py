"""Fixed window: at most ``limit`` admitted requests per window of ``size`` seconds.

Two ways to place the windows (``align``):

``clock``          window ``k`` is ``[k * size, (k + 1) * size)`` (a counter keyed by
                   ``floor(now / size)``, as in most Redis INCR recipes);
``first_request``  a window opens at the first request after the previous one
                   expired and lasts ``size`` seconds (Redis INCR + EXPIRE on the
                   first hit; the ``limits`` package, whose decisions this
                   reproduces step for step).

Either way ``if count >= limit: reject else count += 1``, so up to
``2 * limit`` requests can pass within one window length across a boundary,
and at most ``limit * (ceil(T / size) + 1)`` in any window of length ``T``.
"""

from __future__ import annotations

import math

from .protocol import RateLimit


class FixedWindow(RateLimit):
    """One key's current window and count."""

    __slots__ = ("size", "limit", "align", "_window_end", "_count")

    def __init__(self, size: float, limit: int, align: str = "clock"):
        if size <= 0 or limit < 1 or align not in ("clock", "first_request"):
            raise ValueError("fixed window needs size > 0, limit >= 1, align 'clock' or 'first_request'")
        self.size = size
        self.limit = limit
        self.align = align
        self._window_end = -math.inf
        self._count = 0

    def try_acquire(self, now: float) -> bool:
        if now >= self._window_end:
            if self.align == "clock":
                self._window_end = (math.floor(now / self.size) + 1) * self.size
            else:
                self._window_end = now + self.size
            self._count = 0
        if self._count >= self.limit:
            return False
        self._count += 1
        return True
