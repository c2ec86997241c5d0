"""What happens first at one instant: the tie rule both engines obey.

Simulated times tie whenever latencies, timeouts and think times sit on a grid
(constant distributions, or the millisecond samples ``calibrate`` writes). The
fast engine (``fast``) and the SimPy engine (``engine="events"``) settle ties by
ONE rule, so they give the same run whatever the event ids:

1. **A call that ends exactly at its deadline succeeds**: the router answers
   ``TIMEOUT`` only when the service ends after ``sent + router.timeout``.
2. **Answers first**: every answer due at ``t`` (a service end or a router
   deadline) is settled before any request is sent at ``t``, in admission order
   (the order the backend admitted the calls): the breaker records it, the
   backend slot it held is free for a request sent at ``t``.
3. **Then sends, in user order**: closed-loop users due to send at ``t`` (their
   think time ended, or their answer came, at ``t``) send in user-index order;
   each sends until it must wait (for a backend answer or a think time > 0). An
   open workload has one arrival stream, already in order. On the SimPy engine
   retries and hedges due at ``t`` go out after the answers and before the
   users' new requests.

The fast engine obeys it by construction (a heap of answers keyed by (time,
admission order) settled before each send, and a heap of wake-ups keyed by
(time, user)). On SimPy, where events at one time run in priority then
event-id order, this module supplies what makes the order independent of event
ids: ``at_instant`` schedules an event with an explicit priority (``ANSWERS``
before SimPy's NORMAL timers, ``SENDS`` after them), and ``SendTurns`` lets the
closed users due at one instant send in user order.
"""

from __future__ import annotations

from heapq import heappop, heappush

import simpy
from simpy.events import NORMAL, URGENT

ANSWERS = URGENT  # service ends and router deadlines: before every NORMAL event at their time
SENDS = NORMAL + 1  # closed users' turns: after every NORMAL event at their time


class _AtInstant(simpy.Event):
    """A successful event processed ``delay`` from now with ``priority`` (SimPy's own
    ``Timeout`` is always NORMAL)."""

    def __init__(self, env: simpy.Environment, delay: float, priority: int):
        super().__init__(env)
        self._ok = True  # triggered successfully, as Timeout.__init__ does
        self._value = None
        env.schedule(self, priority, delay)


def at_instant(env: simpy.Environment, delay: float, priority: int) -> simpy.Event:
    """An event at ``env.now + delay`` that SimPy processes before (``ANSWERS``) or
    after (``SENDS``) every NORMAL event due at that time."""
    if delay < 0:
        raise ValueError(f"negative delay {delay}")
    return _AtInstant(env, delay, priority)


class SendTurns:
    """Closed users due to send at one instant go in user-index order (rule 3).

    A user that is due calls ``turn(user)`` and waits for the event it returns
    (None when nothing else happens at this instant: it may send at once);
    once every NORMAL event at this instant has run (answers, retries, hedges,
    think times ending), the users waiting are let go in user order: their
    events succeed in that order, so their processes resume in that order."""

    __slots__ = ("_env", "_waiting", "_pending")

    def __init__(self, env: simpy.Environment):
        self._env = env
        self._waiting: list[tuple[int, simpy.Event]] = []  # a heap by user
        self._pending = False  # a release is scheduled at this instant

    def turn(self, user: int) -> simpy.Event | None:
        """The event to wait for before sending; None: send at once (nothing
        else happens at this instant, so no other user can be due now)."""
        if not self._pending and self._env.peek() > self._env.now:
            return None
        event = self._env.event()
        heappush(self._waiting, (user, event))
        if not self._pending:
            self._pending = True
            at_instant(self._env, 0.0, SENDS).callbacks.append(self._release)
        return event

    def _release(self, _event: simpy.Event) -> None:
        self._pending = False
        waiting = self._waiting
        while waiting:
            heappop(waiting)[1].succeed()
