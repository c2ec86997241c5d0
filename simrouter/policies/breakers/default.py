"""The default circuit breaker (``preset = "default"``): simrouter's own model.

States and rules (time ``now`` is always passed in)::

    CLOSED     every call passes; each outcome is recorded on completion. Trip to
               OPEN after ``failure_threshold`` consecutive failures (0: never),
               or when at least ``minimum_calls`` of the last ``window_size``
               outcomes are recorded and the failure fraction >= ``failure_rate_threshold``
               (checked when a failure is recorded).
    OPEN       calls are rejected until ``open_duration`` has passed since the trip;
               then the first call (lazily, as resilience4j by default) moves it to
               HALF_OPEN and is the first probe.
    HALF_OPEN  at most ``half_open_max_calls`` probes pass, the rest are rejected.
               Any probe failure re-opens it; ``success_threshold`` probe successes
               close it with a fresh window.

It honours epochs: an outcome recorded with an older epoch is ignored, so a slow
call admitted while CLOSED cannot count as a half-open probe. Timeouts count as
failures when ``count_timeouts`` is set, else they are ignored (an ignored
probe gives its half-open place back, as in resilience4j: otherwise probes that
time out would leave the breaker HALF_OPEN and rejecting for good). A probe
cancelled before its answer (``release``) gives its place back the same way.
"""

from __future__ import annotations

from collections import deque

from .core import BreakerBase, BreakerState


class CircuitBreaker(BreakerBase):
    """The default breaker (consecutive-failure and failure-rate trip)."""

    __slots__ = ("_window", "_window_failures", "_consecutive", "_opened_at", "_probes_admitted", "_probe_successes")

    def __init__(self, config):
        super().__init__(config)
        self._window: deque[bool] = deque()
        self._window_failures = 0
        self._consecutive = 0
        self._opened_at = 0.0
        self._probes_admitted = 0
        self._probe_successes = 0

    def allow(self, now: float) -> bool:
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            if now - self._opened_at < self.config.open_duration:
                return False
            self._move(BreakerState.HALF_OPEN, now)
        if self._probes_admitted < self.config.half_open_max_calls:
            self._probes_admitted += 1
            return True
        return False

    def available(self, now: float) -> bool:
        """``allow(now)``'s answer, without moving to HALF_OPEN or taking a probe place."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return now - self._opened_at >= self.config.open_duration  # HALF_OPEN starts with every place free
        return self._probes_admitted < self.config.half_open_max_calls

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        """Record a completed call's outcome code (SUCCESS, FAILURE or TIMEOUT)."""
        if epoch is not None and epoch != self.epoch:
            return
        failed = self.counted_failure(outcome)
        if failed is None:
            if self.state is BreakerState.HALF_OPEN and self._probes_admitted:
                self._probes_admitted -= 1
            return
        if self.state is BreakerState.CLOSED:
            self._record_closed(failed, now)
        elif self.state is BreakerState.HALF_OPEN:
            if failed:
                self._move(BreakerState.OPEN, now)
            else:
                self._probe_successes += 1
                if self._probe_successes >= self.config.success_threshold:
                    self._move(BreakerState.CLOSED, now)

    def release(self, epoch: int, now: float) -> None:
        """A call admitted in ``epoch`` was cancelled: a probe of the current
        HALF_OPEN gives its place back (older epochs hold none)."""
        if epoch == self.epoch and self.state is BreakerState.HALF_OPEN and self._probes_admitted:
            self._probes_admitted -= 1

    def _record_closed(self, failed: bool, now: float) -> None:
        config = self.config
        window = self._window
        window.append(failed)
        self._window_failures += failed
        if len(window) > config.window_size:
            self._window_failures -= window.popleft()
        self._consecutive = self._consecutive + 1 if failed else 0
        if not failed:
            return
        if config.failure_threshold and self._consecutive >= config.failure_threshold:
            self._move(BreakerState.OPEN, now)
        elif len(window) >= config.minimum_calls and self._window_failures >= config.failure_rate_threshold * len(window):
            self._move(BreakerState.OPEN, now)

    def _move(self, to: BreakerState, t: float) -> None:
        super()._move(to, t)
        if to is BreakerState.OPEN:
            self._opened_at = t
        elif to is BreakerState.HALF_OPEN:
            self._probes_admitted = 0
            self._probe_successes = 0
        else:
            self._window.clear()
            self._window_failures = 0
            self._consecutive = 0
