"""The ``pybreaker`` preset: the rules of PyPI ``pybreaker`` (1.x), clock-free.

Counters are shared by all states: ``fail_counter`` (+1 on every failure, reset
to 0 by every success and on closing) and ``success_counter`` (reset on entering
any state)::

    CLOSED     every call passes; a failure with fail_counter >= fail_max opens it.
    OPEN       a call before opened_at + reset_timeout is rejected; the first call
               at or after it moves it to HALF_OPEN and passes (lazy).
    HALF_OPEN  every call passes (no probe cap). A failure re-opens it (a new
               opened_at); success_threshold successes close it.

Epochs: pybreaker binds each call to the state object current when it was
admitted, and that object handles the outcome (visible with overlapping calls:
generator or async calls). So an outcome is judged by the state of its epoch,
while counters and the current state are shared: a CLOSED-era failure arriving
in HALF_OPEN re-opens only if it brings fail_counter to fail_max, and one
arriving in OPEN re-opens it again (opened_at moves: the timeout restarts); a
failure judged as HALF_OPEN re-opens from any state; a success judged as
HALF_OPEN can close the breaker even if it has re-opened since. Re-entering the
current state is not logged as a transition. Without overlapping calls this is
plain pybreaker.

``count_timeouts = false`` mirrors ``exclude=[Timeout]``: pybreaker handles an
excluded error as a success. pybreaker has no probe permits (HALF_OPEN lets
every call through), so a cancelled call (``release``) changes nothing.
"""

from __future__ import annotations

from .core import BreakerBase, BreakerState

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class PybreakerBreaker(BreakerBase):
    """pybreaker's consecutive-failure breaker."""

    __slots__ = ("_fail_counter", "_success_counter", "_opened_at")

    def __init__(self, config):
        super().__init__(config)
        self._fail_counter = 0
        self._success_counter = 0
        self._opened_at = 0.0

    def allow(self, now: float) -> bool:
        if self.state is OPEN:
            if now < self._opened_at + self.config.reset_timeout:
                return False
            self._enter(HALF_OPEN, now)
        return True

    def available(self, now: float) -> bool:
        return self.state is not OPEN or now >= self._opened_at + self.config.reset_timeout

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        judged_by = self.state if epoch is None else self.state_of_epoch(epoch)
        if self.counted_failure(outcome):  # an ignored timeout is an excluded error: a success
            self._fail_counter += 1
            if judged_by is HALF_OPEN or (judged_by is CLOSED and self._fail_counter >= self.config.fail_max):
                self._opened_at = now
                self._enter(OPEN, now)
            return
        self._fail_counter = 0
        if judged_by is HALF_OPEN:
            self._success_counter += 1
            if self._success_counter >= self.config.success_threshold:
                self._enter(CLOSED, now)

    def release(self, epoch: int, now: float) -> None:
        """A cancelled call: pybreaker holds nothing for it."""

    def _enter(self, to: BreakerState, t: float) -> None:
        # pybreaker re-enters the state it is in (open() while OPEN restarts the
        # timeout); that resets counters but is no transition for the log.
        if to is not self.state:
            self._move(to, t)
        self._success_counter = 0
        if to is CLOSED:
            self._fail_counter = 0
