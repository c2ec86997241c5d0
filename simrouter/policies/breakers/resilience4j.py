"""The ``resilience4j`` preset: resilience4j's CircuitBreakerStateMachine, clock-free.

Rules (resilience4j 2.x; thresholds in percent, as resilience4j configures them)::

    CLOSED     every call passes. Each outcome is recorded ON COMPLETION in the
               sliding window, and the rates are evaluated then (never on a timer):
               once the window holds >= minimum_number_of_calls outcomes, a failure
               rate >= failure_rate_threshold or a slow-call rate >=
               slow_call_rate_threshold opens it (attempt + 1). A slow call lasted
               > slow_call_duration_threshold, success or failure alike.
    OPEN       rejects until wait(attempt) has passed: lazily, the first call AFTER
               the wait moves it to HALF_OPEN and takes a permit; with
               automatic_transition_from_open_to_half_open_enabled it moves at
               opened_at + wait, calls or not.
    HALF_OPEN  permits permitted_number_of_calls_in_half_open_state calls in all,
               rejects the rest. Its own window of that many outcomes is evaluated
               once full: thresholds exceeded -> OPEN (attempt + 1), else CLOSED
               (attempt = 0, a fresh window). With max_wait_duration_in_half_open_state
               > 0 it goes back to OPEN (attempt + 1) that long after entering
               HALF_OPEN if still undecided; with 0 it waits for the probes forever.

Windows: COUNT_BASED keeps the last sliding_window_size outcomes (and clamps
minimum_number_of_calls to that size); TIME_BASED keeps per-second buckets of
the last sliding_window_size (epoch) seconds, the current one included, and does
not clamp. wait(attempt) = wait_duration_in_open_state, times
exponential_backoff_multiplier ** (attempt - 1) capped at
exponential_max_wait_duration_in_open_state when enabled, then drawn uniformly
within +-randomized_wait_factor of that when enabled (the Generator given).

Epochs are not honoured, as in resilience4j: an outcome goes to the current
state's window. One from a call admitted while CLOSED that ends in OPEN lands in
the window OPEN discards; one that ends in HALF_OPEN counts as a probe outcome.
Timeouts count as failures (resilience4j records every exception by default);
``count_timeouts = false`` ignores them like ``ignore_exceptions``, which also
gives a half-open permit back. A cancelled call (``release``) gives its permit
back as ``releasePermission()`` does, but only to the HALF_OPEN state that
granted it (resilience4j releases into whatever state is current; a call
admitted while CLOSED holds no permit here, so the probe cap holds).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from .core import BreakerBase, BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class CountWindow:
    """The last ``size`` outcomes (COUNT_BASED): calls, failed and slow counts."""

    __slots__ = ("size", "calls", "failed", "slow", "_ring")

    def __init__(self, size: int):
        self.size = size
        self.calls = self.failed = self.slow = 0
        self._ring: deque[tuple[bool, bool]] = deque()

    def record(self, failed: bool, slow: bool, now: float) -> None:
        self._ring.append((failed, slow))
        self.calls += 1
        self.failed += failed
        self.slow += slow
        if self.calls > self.size:
            old_failed, old_slow = self._ring.popleft()
            self.calls -= 1
            self.failed -= old_failed
            self.slow -= old_slow


class TimeWindow:
    """Outcomes of the last ``size`` whole seconds, the current one included
    (TIME_BASED: one bucket per epoch second)."""

    __slots__ = ("size", "calls", "failed", "slow", "_buckets")

    def __init__(self, size: int):
        self.size = size
        self.calls = self.failed = self.slow = 0
        self._buckets: deque[list] = deque()  # [second, calls, failed, slow]

    def record(self, failed: bool, slow: bool, now: float) -> None:
        second = math.floor(now)
        buckets = self._buckets
        while buckets and buckets[0][0] <= second - self.size:
            _, calls, old_failed, old_slow = buckets.popleft()
            self.calls -= calls
            self.failed -= old_failed
            self.slow -= old_slow
        if not buckets or buckets[-1][0] != second:
            buckets.append([second, 0, 0, 0])
        bucket = buckets[-1]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow
        self.calls += 1
        self.failed += failed
        self.slow += slow


class Resilience4jBreaker(BreakerBase):
    """resilience4j's circuit breaker; ``rng`` draws the randomized waits."""

    __slots__ = ("_rng", "_window", "_min_calls", "_attempts", "_retry_at", "_half_opened_at", "_permits")

    def __init__(self, config, rng: np.random.Generator | None = None):
        super().__init__(config)
        self._rng = rng if rng is not None else np.random.default_rng()
        self._attempts = 0
        self._retry_at = 0.0
        self._half_opened_at = 0.0
        self._permits = 0
        self._window, self._min_calls = self._closed_window()

    def _closed_window(self) -> tuple[CountWindow | TimeWindow, int]:
        c = self.config
        if c.sliding_window_type == "COUNT_BASED":
            return CountWindow(c.sliding_window_size), min(c.minimum_number_of_calls, c.sliding_window_size)
        return TimeWindow(c.sliding_window_size), c.minimum_number_of_calls

    def allow(self, now: float) -> bool:
        if self.state is CLOSED:
            return True
        self.advance(now)
        if self.state is OPEN:
            if not now > self._retry_at:
                return False
            self._to_half_open(now)
        if self._permits > 0:
            self._permits -= 1
            return True
        return False

    def available(self, now: float) -> bool:
        """``allow(now)``'s answer, the transitions due by ``now`` played on local
        copies of the state (a due re-opening whose randomized wait would draw a
        number is played on a deep copy instead, so the Generator is not advanced)."""
        if self.state is CLOSED:
            return True
        c = self.config
        state, permits, retry_at, half_opened_at, attempts = self.state, self._permits, self._retry_at, self._half_opened_at, self._attempts
        while True:
            if state is OPEN and c.automatic_transition_from_open_to_half_open_enabled and now >= retry_at:
                state, permits, half_opened_at = HALF_OPEN, c.permitted_number_of_calls_in_half_open_state, retry_at
            elif state is HALF_OPEN and c.max_wait_duration_in_half_open_state > 0 and now >= half_opened_at + c.max_wait_duration_in_half_open_state:
                if c.enable_randomized_wait:
                    return super().available(now)
                attempts += 1
                retry_at = half_opened_at + c.max_wait_duration_in_half_open_state + self.wait_duration(attempts)
                state = OPEN
            else:
                break
        if state is OPEN:
            return now > retry_at  # the lazy move to HALF_OPEN grants at least one permit
        return permits > 0

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        if self.state is not CLOSED:
            self.advance(now)
        failed = self.counted_failure(outcome)
        if failed is None:
            if self.state is HALF_OPEN:
                self._permits += 1
            return
        if self.state is OPEN:
            return
        c = self.config
        window = self._window
        window.record(failed, duration > c.slow_call_duration_threshold, now)
        if window.calls == 0 or window.calls < self._min_calls:
            return
        if window.failed * 100.0 / window.calls >= c.failure_rate_threshold or window.slow * 100.0 / window.calls >= c.slow_call_rate_threshold:
            self._open(now)
        elif self.state is HALF_OPEN:
            self._close(now)

    def release(self, epoch: int, now: float) -> None:
        """A call admitted in ``epoch`` was cancelled: its half-open permit comes back."""
        if self.state is not CLOSED:
            self.advance(now)
        if self.state is HALF_OPEN and epoch == self.epoch:
            self._permits += 1

    def advance(self, now: float) -> None:
        c = self.config
        while True:
            if self.state is OPEN and c.automatic_transition_from_open_to_half_open_enabled and now >= self._retry_at:
                self._to_half_open(self._retry_at)
            elif self.state is HALF_OPEN and c.max_wait_duration_in_half_open_state > 0 and now >= self._half_opened_at + c.max_wait_duration_in_half_open_state:
                self._open(self._half_opened_at + c.max_wait_duration_in_half_open_state)
            else:
                return

    def wait_duration(self, attempt: int) -> float:
        """The wait in OPEN after the ``attempt``-th consecutive opening (draws
        from the Generator when randomized)."""
        c = self.config
        wait = c.wait_duration_in_open_state
        if c.enable_exponential_backoff:
            try:
                wait *= c.exponential_backoff_multiplier ** (attempt - 1)
            except OverflowError:
                wait = math.inf
            wait = min(wait, c.exponential_max_wait_duration_in_open_state)
        if c.enable_randomized_wait:
            delta = c.randomized_wait_factor * wait
            wait += delta * (2.0 * self._rng.random() - 1.0)
        return wait

    def _open(self, t: float) -> None:
        self._attempts += 1
        self._retry_at = t + self.wait_duration(self._attempts)
        self._move(OPEN, t)

    def _to_half_open(self, t: float) -> None:
        self._move(HALF_OPEN, t)
        self._half_opened_at = t
        permitted = self.config.permitted_number_of_calls_in_half_open_state
        self._permits = permitted
        self._window, self._min_calls = CountWindow(permitted), permitted

    def _close(self, t: float) -> None:
        self._move(CLOSED, t)
        self._attempts = 0
        self._window, self._min_calls = self._closed_window()
