"""nginx's ``limit_req``: a leaky bucket that rejects over ``burst`` and
otherwise delays (smooths) or, with ``nodelay``, forwards at once.

State per key: ``excess`` (requests above the rate, kept like nginx in
thousandths of a request) and ``last`` (integer milliseconds, like nginx's
clock). For a request at ``now`` (``ms = floor(now * 1000)``)::

    excess' = max(0, excess - rate_milli * (ms - last) // 1000 + 1000)
    if excess' > burst * 1000: reject (nginx answers 503 by default)   state unchanged
    excess = excess'; last = ms
    delay = (excess' - delay_milli) * 1000 // rate_milli  milliseconds, if excess' > delay_milli

``delay`` (nginx ``delay=N``) lets the first N excess requests through at once;
``nodelay`` lets all of them through (no delay at all); the default ``delay=0``
delays every excess request, which spaces them ``1/rate`` apart: the request
is *held*, not rejected, and the hold shows in its latency. The first request
of a key finds an empty bucket (nginx creates the node with excess 0), so
``burst + 1`` requests pass at once and at most ``rate * (T + 1 ms) + burst + 1``
in any window of length ``T`` (the extra millisecond is nginx's clock
truncation).
"""

from __future__ import annotations

from .protocol import RateLimit

_MS_EPSILON = 1e-6  # absorbs float error such as 0.057 * 1000 = 56.99999...


class LeakyBucket(RateLimit):
    """One key's nginx ``limit_req`` state."""

    __slots__ = ("rate", "burst", "nodelay", "delay", "delays", "_rate_milli", "_burst_milli", "_delay_milli", "_excess", "_last")

    def __init__(self, rate: float, burst: int = 0, nodelay: bool = False, delay: int = 0):
        if rate <= 0 or burst < 0 or delay < 0:
            raise ValueError("leaky bucket needs rate > 0, burst >= 0 and delay >= 0")
        self.rate = rate
        self.burst = burst
        self.nodelay = nodelay
        self.delay = delay
        self.delays = not nodelay
        self._rate_milli = max(1, round(rate * 1000))
        self._burst_milli = burst * 1000
        self._delay_milli = None if nodelay else delay * 1000
        self._excess: int | None = None  # None: no node yet for this key
        self._last = 0

    def acquire(self, now: float) -> float | None:
        """None to reject; otherwise the seconds to hold the request (nginx's
        smoothing delay, a whole number of milliseconds)."""
        ms = int(now * 1000 + _MS_EPSILON)
        if self._excess is None:  # nginx: a new node starts with excess 0, no delay
            self._excess, self._last = 0, ms
            return 0.0
        elapsed = ms - self._last
        if elapsed < 0:
            elapsed = 0
        excess = self._excess - self._rate_milli * elapsed // 1000 + 1000
        if excess < 0:
            excess = 0
        if excess > self._burst_milli:
            return None
        self._excess = excess
        if elapsed:
            self._last = ms
        if self._delay_milli is None or excess <= self._delay_milli:
            return 0.0
        return ((excess - self._delay_milli) * 1000 // self._rate_milli) / 1000.0

    def try_acquire(self, now: float) -> bool:
        """Admitted (possibly after a delay that this call ignores)."""
        return self.acquire(now) is not None

    def excess(self) -> float:
        """Excess requests in the bucket after the last admitted one."""
        return (self._excess or 0) / 1000.0
