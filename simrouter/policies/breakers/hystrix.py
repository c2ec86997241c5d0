"""The ``hystrix`` preset: Netflix Hystrix 1.5's HystrixCircuitBreaker, clock-free.

Health counts (HealthCountsStream): completed calls go into buckets of
``health_snapshot_interval`` (500 ms) and every interval a snapshot sums the last
``rolling_window / health_snapshot_interval`` COMPLETED buckets (20 over 10 s);
the bucket being filled is not in it. Errors = failures + timeouts + rejections
(queue full); short-circuited calls are not counted. The error percentage is
truncated to a whole number, as Hystrix does::

    CLOSED     every call passes. At each snapshot, total >= request_volume_threshold
               and error% >= error_threshold_percentage opens it, at the snapshot's
               time: tripping lags the failures by up to one interval.
    OPEN       rejects until MORE than sleep_window after opening; then the first
               call moves it to HALF_OPEN and is the single probe.
    HALF_OPEN  rejects every other call. A success closes it and restarts the
               health counts from zero (a new stream, new snapshot times); a
               failure re-opens it with a fresh sleep window.

The snapshot clock starts at the first call the breaker sees. Epochs are not
honoured, as in Hystrix: markSuccess / markNonSuccess act on the current state,
so in HALF_OPEN any call's outcome decides (a late success from before the trip
closes it). Hystrix always counts timeouts (its command timeout is 1 s by
default; here the router's ``router.timeout`` applies); ``count_timeouts =
false`` is a simrouter extension that ignores them (an ignored probe outcome
gives the single probe back: the next call probes).

A cancelled call (``release``: an unsubscribed command) calls markNonSuccess,
as Hystrix 1.5.12's unsubscribe cleanup does: in HALF_OPEN, whichever call it
was, the breaker re-opens with a fresh sleep window; otherwise nothing happens
(cancellations are not in the health counts).
"""

from __future__ import annotations

import math
from collections import deque

from .core import BreakerBase, BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class HystrixBreaker(BreakerBase):
    """Hystrix's circuit breaker with its 500 ms health snapshots."""

    __slots__ = ("_interval", "_buckets_in_window", "_origin", "_next_snapshot", "_buckets", "_opened_at", "_probing")

    # A due health snapshot trips a CLOSED breaker at the next allow: closed is not available.
    closed_is_available = False

    def __init__(self, config):
        super().__init__(config)
        self._interval = config.health_snapshot_interval
        # Hystrix divides whole milliseconds: numBuckets = window / interval.
        self._buckets_in_window = round(config.rolling_window * 1000) // round(config.health_snapshot_interval * 1000)
        self._origin: float | None = None
        self._next_snapshot = 1
        self._buckets: deque[list] = deque()  # [bucket index, total, errors], oldest first
        self._opened_at = 0.0
        self._probing = False  # the single half-open probe is out

    def allow(self, now: float) -> bool:
        self.advance(now)
        if self.state is CLOSED:
            return True
        if self.state is OPEN and now > self._opened_at + self.config.sleep_window:
            self._move(HALF_OPEN, now)
            self._probing = True
            return True
        if self.state is HALF_OPEN and not self._probing:  # an ignored probe gave it back
            self._probing = True
            return True
        return False

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        self.advance(now)
        failed = self.counted_failure(outcome)
        if failed is None:
            if self.state is HALF_OPEN and (epoch is None or epoch == self.epoch):  # the probe's own outcome
                self._probing = False
            return
        if self.state is HALF_OPEN:
            if failed:
                self._open(now)
            else:
                self._move(CLOSED, now)
                self._restart_stream(now)
        self._count(failed, now)

    def release(self, epoch: int, now: float) -> None:
        """A cancelled call: markNonSuccess (HALF_OPEN -> OPEN, a fresh sleep window)."""
        self.advance(now)
        if self.state is HALF_OPEN:
            self._open(now)

    def available(self, now: float) -> bool:
        """``allow(now)``'s answer: the snapshots due by ``now`` are evaluated, not taken."""
        if self._origin is None:
            return True  # nothing seen yet: CLOSED
        state, opened_at = self.state, self._opened_at
        if state is CLOSED:
            k = self._tripping_snapshot(math.floor((now - self._origin) / self._interval))
            if k is None:
                return True
            state, opened_at = OPEN, self._origin + k * self._interval
        if state is OPEN:
            return now > opened_at + self.config.sleep_window
        return not self._probing

    def advance(self, now: float) -> None:
        """Take the health snapshots due by ``now`` (they can only trip a CLOSED breaker)."""
        if self._origin is None:
            self._restart_stream(now)
        last = math.floor((now - self._origin) / self._interval)
        if self.state is not CLOSED:
            self._next_snapshot = max(self._next_snapshot, last + 1)
            return
        k = self._tripping_snapshot(last)
        self._next_snapshot = last + 1
        oldest_needed = (k if k is not None else last) - self._buckets_in_window
        buckets = self._buckets
        while buckets and buckets[0][0] < oldest_needed:
            buckets.popleft()
        if k is not None:
            self._open(self._origin + k * self._interval)

    def _tripping_snapshot(self, last: int) -> int | None:
        """The first due snapshot (number ``_next_snapshot`` to ``last``) whose
        window trips the breaker, or None; reads the buckets, changes nothing."""
        config = self.config
        buckets = self._buckets
        count = len(buckets)
        first = 0  # the oldest bucket still in snapshot k's window
        for k in range(self._next_snapshot, last + 1):
            while first < count and buckets[first][0] < k - self._buckets_in_window:
                first += 1
            if first == count and config.request_volume_threshold > 0:
                return None  # an empty window cannot trip, nor can any later one
            total = errors = 0
            for i in range(first, count):
                index, bucket_total, bucket_errors = buckets[i]
                if index >= k:
                    break
                total += bucket_total
                errors += bucket_errors
            error_percentage = int(errors / total * 100) if total else 0
            if total >= config.request_volume_threshold and error_percentage >= config.error_threshold_percentage:
                return k
        return None

    def _count(self, failed: bool, now: float) -> None:
        index = math.floor((now - self._origin) / self._interval)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != index:
            buckets.append([index, 0, 0])
        buckets[-1][1] += 1
        buckets[-1][2] += failed

    def _restart_stream(self, now: float) -> None:
        self._origin = now
        self._next_snapshot = 1
        self._buckets.clear()

    def _open(self, t: float) -> None:
        self._opened_at = t
        self._move(OPEN, t)
