"""Capacity slots and a bounded FIFO queue: what every live backend shares.

``capacity`` calls are served at once, first come first served; at most
``queue_limit`` wait for a slot, and an arrival beyond that is refused
(``submit`` returns None: the router answers ``queue_full``). ``submit()``
gives a future that gets the call's outcome code (``simrouter.outcomes``) when
it ends; whoever answers first (the backend, or the router's timeout timer)
sets the future's result, so the router's timeout does not give the slot back:
the call keeps it until it ends, as in the simulation.

A subclass says how one call is served (``_start``) and reports its end with
``_ended``, which frees the slot for the next waiting call. Busy time is
slot-seconds of service elapsed: ``ended + busy x now - starts`` (service of the
calls that ended, plus the elapsed part of each call in service).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class SlottedBackend:
    """``capacity`` slots and a FIFO queue of ``queue_limit`` in front of ``_start``."""

    def __init__(self, config, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop or asyncio.get_running_loop()
        self._clock = clock
        self._capacity = config.capacity
        self._queue_limit = config.queue_limit
        self._waiting: deque[asyncio.Future] = deque()
        self.busy = 0
        self._ended_busy = 0.0  # service seconds of the calls that ended
        self._started_sum = 0.0  # start times of the calls in service, summed

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def busy_time(self) -> float:
        """Slot-seconds of service elapsed so far (since the last ``restart_busy_time``)."""
        return self._ended_busy + self.busy * self._clock() - self._started_sum

    def restart_busy_time(self) -> None:
        """Count busy time from now on (the calls in service count only their remaining part)."""
        self._ended_busy = self._started_sum - self.busy * self._clock()

    def submit(self) -> asyncio.Future | None:
        """A future that gets the outcome code when service ends; None if the queue is full."""
        future = self._loop.create_future()
        if self.busy < self._capacity:
            self.busy += 1
            self._begin(future)
        elif len(self._waiting) >= self._queue_limit:
            return None
        else:
            self._waiting.append(future)
        return future

    def _begin(self, future: asyncio.Future) -> None:
        start = self._clock()
        self._started_sum += start
        self._start(future, start)

    def _start(self, future: asyncio.Future, start: float) -> None:
        """Serve one call that took a slot at ``start``; call ``_ended`` when it ends."""
        raise NotImplementedError

    def _ended(self, future: asyncio.Future, outcome: int, start: float, service: float) -> None:
        """The call that started at ``start`` ended after ``service`` s with ``outcome``:
        answer it (unless the router already did) and give its slot to the next waiting call."""
        self._started_sum -= start
        self._ended_busy += service
        if not future.done():
            future.set_result(outcome)
        if self._waiting:
            self._begin(self._waiting.popleft())
        else:
            self.busy -= 1
