"""The ``polly`` preset: Polly v8's circuit breaker (Polly.Core), clock-free.

Health (RollingHealthMetrics): ``sampling_duration`` split into 10 windows. A
window opens at the first outcome recorded at least sampling_duration / 10 after
the current one opened (windows start at outcomes, not on a grid) and is dropped
once it opened sampling_duration ago or more::

    CLOSED     every call passes. Trip is checked when a FAILURE is recorded, never
               on success: throughput >= minimum_throughput and failures /
               throughput >= failure_ratio opens it.
    OPEN       rejects until break_duration has passed; the first call at or after
               that moves it to HALF_OPEN and is the single probe.
    HALF_OPEN  rejects every other call. A success closes it (and clears the health
               windows); a failure re-opens it.

The break lasts ``break_duration * break_duration_multiplier ** n``, at most
``max_break_duration``, where n counts the half-open probes since the breaker
last closed (Polly's BreakDurationGeneratorArguments.HalfOpenAttempts: 0 for the
first break); the multiplier's default 1 is Polly without a generator.

Epochs are not honoured, as in Polly: an outcome arriving in HALF_OPEN decides,
whichever call it belongs to (a late success from before the trip closes it).
Timeouts count as failures (Polly's default ShouldHandle handles every exception
but OperationCanceledException, TimeoutRejectedException included);
``count_timeouts = false`` leaves them unhandled, which Polly treats as a success.
A cancelled call (``release``: a hedge loser whose token was cancelled) ends
in an OperationCanceledException, which the default ShouldHandle leaves
unhandled: Polly treats it as a success too (OnUnhandledOutcomeAsync), so a
cancelled probe closes the circuit rather than leaving it half-open.
"""

from __future__ import annotations

from collections import deque

from .core import BreakerBase, BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
HEALTH_WINDOWS = 10  # Polly's RollingHealthMetrics.NumberOfWindows


class RollingHealth:
    """Polly's rolling success / failure counts over ``sampling_duration``."""

    __slots__ = ("_sampling", "_window_length", "_windows", "successes", "failures")

    def __init__(self, sampling_duration: float):
        self._sampling = sampling_duration
        self._window_length = sampling_duration / HEALTH_WINDOWS
        self._windows: deque[list] = deque()  # [started_at, successes, failures]
        self.successes = self.failures = 0

    def add(self, failed: bool, now: float) -> None:
        window = self.current(now)
        window[2 if failed else 1] += 1
        if failed:
            self.failures += 1
        else:
            self.successes += 1

    def current(self, now: float) -> list:
        """The window an outcome at ``now`` goes into, dropping expired ones."""
        windows = self._windows
        if not windows or now - windows[-1][0] >= self._window_length:
            windows.append([now, 0, 0])
        while now - windows[0][0] >= self._sampling:
            _, successes, failures = windows.popleft()
            self.successes -= successes
            self.failures -= failures
        return windows[-1]

    def clear(self) -> None:
        self._windows.clear()
        self.successes = self.failures = 0


class PollyBreaker(BreakerBase):
    """Polly's advanced circuit breaker (failure ratio over a sampling duration)."""

    __slots__ = ("_health", "_blocked_until", "_half_open_attempts")

    def __init__(self, config):
        super().__init__(config)
        self._health = RollingHealth(config.sampling_duration)
        self._blocked_until = 0.0
        self._half_open_attempts = 0

    def allow(self, now: float) -> bool:
        if self.state is CLOSED:
            return True
        if self.state is OPEN and now >= self._blocked_until:
            self._half_open_attempts += 1
            self._move(HALF_OPEN, now)
            return True
        return False

    def available(self, now: float) -> bool:
        if self.state is CLOSED:
            return True
        return self.state is OPEN and now >= self._blocked_until

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        if not self.counted_failure(outcome):  # an unhandled timeout is a success for Polly
            self._unhandled(now)
            return
        state = self.state
        if state is HALF_OPEN:
            self._open(now)
        elif state is OPEN:
            self._health.add(True, now)
        else:
            health = self._health
            health.add(True, now)
            throughput = health.successes + health.failures
            if throughput >= self.config.minimum_throughput and health.failures / throughput >= self.config.failure_ratio:
                self._open(now)

    def release(self, epoch: int, now: float) -> None:
        """A cancelled call: an unhandled outcome (OperationCanceledException)."""
        self._unhandled(now)

    def _unhandled(self, now: float) -> None:
        """An outcome ShouldHandle does not handle: a success (closes HALF_OPEN)."""
        self._health.add(False, now)
        if self.state is HALF_OPEN:
            self._move(CLOSED, now)
            self._half_open_attempts = 0
            self._health.clear()

    def break_duration(self) -> float:
        """The next break: break_duration grown by the half-open attempts so far."""
        c = self.config
        try:
            grown = c.break_duration * c.break_duration_multiplier ** self._half_open_attempts
        except OverflowError:
            grown = c.max_break_duration
        return min(grown, c.max_break_duration)

    def _open(self, now: float) -> None:
        self._blocked_until = now + self.break_duration()
        self._move(OPEN, now)
