"""GCRA, the generic cell rate algorithm, as redis-cell (``CL.THROTTLE``) and
the Go library throttled implement it.

With emission interval ``T = 1 / rate`` and tolerance ``tau = T * (burst + 1)``,
one stored value, the theoretical arrival time ``tat``, decides::

    tat = stored or now;  new = max(tat, now) + T
    if new - tau > now: reject, retry_after = new - tau - now   (tat unchanged)
    else: tat = new; admit

``burst`` is redis-cell's ``max_burst``: a fresh key admits ``burst + 1``
requests at once (redis-cell reports ``limit = max_burst + 1``), and at most
``rate * T + burst + 1`` requests pass in any window of length ``T``.
"""

from __future__ import annotations

from .protocol import RateLimit

# redis-cell counts integer nanoseconds; in float seconds a request sent exactly
# on its theoretical arrival time can look a rounding error early.
TIME_TOLERANCE = 1e-9


class GCRA(RateLimit):
    """One key's GCRA state; ``throttle(now)`` also gives redis-cell's retry_after."""

    __slots__ = ("rate", "burst", "_interval", "_tolerance", "_tat")

    def __init__(self, rate: float, burst: int, now: float = 0.0):
        if rate <= 0 or burst < 0:
            raise ValueError("GCRA needs rate > 0 and burst >= 0")
        self.rate = rate
        self.burst = burst
        self._interval = 1.0 / rate
        self._tolerance = self._interval * (burst + 1)
        self._tat = now

    def throttle(self, now: float) -> float:
        """0.0 if admitted at ``now``; otherwise the seconds after which a retry
        would be admitted (always > 0)."""
        tat = self._tat
        new = (tat if tat > now else now) + self._interval
        allow_at = new - self._tolerance
        if allow_at > now + TIME_TOLERANCE:
            return allow_at - now
        self._tat = new
        return 0.0

    def try_acquire(self, now: float) -> bool:
        return self.throttle(now) == 0.0

    def remaining(self, now: float) -> int:
        """Requests that would still be admitted at ``now`` (no side effect)."""
        backlog = max(self._tat - now, 0.0)
        return max(0, int((self._tolerance - backlog) / self._interval + 1e-9))
