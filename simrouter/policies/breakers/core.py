"""What every circuit breaker shares: states, the transition log, epochs.

A breaker is a clock-free state machine driven by three calls::

    breaker.allow(now) -> bool            may a call start at ``now``?
    breaker.record(outcome, now, epoch, duration=0.0)
                                          a call admitted in ``epoch`` ended at ``now``
                                          with an outcome code (simrouter.outcomes),
                                          after ``duration`` seconds
    breaker.release(epoch, now)           a call admitted in ``epoch`` was cancelled at
                                          ``now`` and will never be recorded (a hedge
                                          loser): it gives back what ``allow`` granted
                                          it (resilience4j's ``releasePermission()``)

**Every call ``allow`` admits ends in exactly one ``record`` or one
``release``.** That is what keeps a half-open breaker live: with no admitted
call outstanding, a HALF_OPEN breaker admits a new probe (or has moved state);
a probe permit that is neither recorded nor released would wedge it half-open
for good (``tests/test_fix_policies.py`` checks this on random call streams).

``breaker.epoch`` (read right after a successful ``allow``) numbers the state
the call was admitted in: it grows by one at every transition, so epoch ``e``
is the state ``transitions[e - 1].to_state`` (``CLOSED`` for 0). Whether an
outcome from an older epoch still counts is each preset's choice, following
its library.

Some libraries change state on a timer (resilience4j's automatic
open -> half-open and max wait in half-open, Hystrix's health snapshots). A
clock-free breaker applies such a transition when it next sees the time
(``allow``, ``record`` or ``advance(now)``), but logs it at the time it was
due, so ``transitions`` always carries the true time. Read ``state`` after
``advance(now)`` to know the state at an arbitrary ``now``. Times passed in must
never go backwards.

Two more calls serve a gateway with several deployments::

    breaker.available(now) -> bool        would ``allow(now)`` admit a call now?
                                          Pure: no state change, no permit taken,
                                          no transition logged (routing leaves out
                                          the deployments it answers False for)
    breaker.throttled(now)                the deployment's own quota (its limiter)
                                          refused an attempt before the breaker saw
                                          it, a 429: only ``litellm`` reacts (a
                                          cooldown); the gateway calls it only when
                                          it has more than one deployment

``available`` is each preset's own side-effect-free reading of its rules; the
default here answers on a deep copy (correct for any subclass, but slow).

A hot loop over many deployments (the fast engine's gateway) would ask
``available`` of every deployment for every attempt. ``closed_is_available``
(a class constant) lets it ask less: True means that in ``CLOSED`` the breaker
is available at every instant, ``allow`` admits with no side effect, and it
leaves ``CLOSED`` only inside ``record``, ``release`` or ``throttled`` (never
on a timer, never in ``allow`` or ``advance``). So a breaker seen ``CLOSED``
after its last such call is still available: reading ``state`` then is
enough. Every preset but ``hystrix`` says True; Hystrix's health snapshots
trip a closed breaker on a timer (at the next ``allow``), so "closed" does not
imply "available" there.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum

from ...outcomes import SUCCESS, TIMEOUT


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Transition:
    t: float
    from_state: BreakerState
    to_state: BreakerState

    def to_dict(self) -> dict:
        return {"t": self.t, "from": self.from_state.value, "to": self.to_state.value}


class BreakerBase:
    """State, epoch and transition log; subclasses implement allow/record."""

    __slots__ = ("config", "state", "epoch", "transitions")

    # CLOSED implies available(now) at every now, until record / release / throttled (module docstring).
    closed_is_available = True

    def __init__(self, config=None):
        self.config = config
        self.state = BreakerState.CLOSED
        self.epoch = 0
        self.transitions: list[Transition] = []

    def _move(self, to: BreakerState, t: float) -> None:
        self.transitions.append(Transition(t, self.state, to))
        self.state = to
        self.epoch += 1

    def state_of_epoch(self, epoch: int) -> BreakerState:
        """The state a call admitted in ``epoch`` was admitted in."""
        return self.transitions[epoch - 1].to_state if epoch else BreakerState.CLOSED

    def advance(self, now: float) -> None:
        """Apply the timer-driven transitions due by ``now`` (none by default)."""

    def available(self, now: float) -> bool:
        """Would ``allow(now)`` admit a call? Answered without changing anything
        (this default asks a deep copy; presets answer from their own rules)."""
        return copy.deepcopy(self).allow(now)

    def throttled(self, now: float) -> None:
        """The deployment's own quota refused an attempt at ``now`` (a 429 that
        never reached the breaker): ignored, except by ``litellm``."""

    def counted_failure(self, outcome: int) -> bool | None:
        """True: a failure; False: a success; None: ignored (a timeout when
        ``count_timeouts`` is false)."""
        if outcome == TIMEOUT and not self.config.count_timeouts:
            return None
        return outcome != SUCCESS

    @property
    def trips(self) -> int:
        """How many times the breaker went to OPEN."""
        return sum(1 for tr in self.transitions if tr.to_state is BreakerState.OPEN)


class NoBreaker(BreakerBase):
    """A breaker that is always closed (``preset = "none"``)."""

    __slots__ = ()

    def allow(self, now: float) -> bool:
        return True

    def available(self, now: float) -> bool:
        return True

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        pass

    def release(self, epoch: int, now: float) -> None:
        pass
