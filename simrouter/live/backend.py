"""The stand-in AI backend of the reference service, in wall-clock time.

It mirrors the simulated backend (``simrouter.sim.backend``) on an asyncio loop:

* ``capacity`` slots served first-come first-served; ``queue_limit`` requests may
  wait for a slot; an arrival that finds that many waiting is rejected at once
  (``submit`` returns None: the router answers ``queue_full``). ``0``: no queue.
* What happens once service starts is the simulation's own ``ServiceModel``
  (``simrouter.sim.backend``), fed by the simulation's random streams for the
  same seed: service time from ``backend.latency``, ``FAILURE`` with probability
  ``failures.processing``, a hang of ``hang_time`` s ending as ``TIMEOUT`` with
  probability ``failures.timeout``, and fault windows (times on the service's
  clock) judged at service start.
* The router's timeout does not reach the backend: a request the router gave up
  on keeps its queue place and its slot until its service ends, exactly as in
  the simulation (timeouts do not give capacity back).

No coroutine per request: ``submit`` returns a future and a service is one
``loop.call_later``; whoever answers first (the backend, or the router's timeout
timer) sets the future's result.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import numpy as np

from ..distributions import VariateStream
from ..sim import streams
from ..sim.backend import ServiceModel


def uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` uniform [0, 1) draws (a ``VariateStream`` source)."""
    return rng.random(size)


class StandInBackend:
    """Capacity slots, a bounded FIFO queue, and the simulation's ``ServiceModel``."""

    def __init__(self, config, seed: int, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop or asyncio.get_running_loop()
        self._clock = clock
        self._config = config
        self._capacity = config.capacity
        self._queue_limit = config.queue_limit
        # The simulation's streams for the same seed: common random numbers with `simulate`.
        self._streams = (
            VariateStream(config.latency.sample, streams.stream(seed, 0, streams.LATENCY)),
            VariateStream(uniform, streams.stream(seed, 0, streams.BACKEND_OUTCOME)),
            VariateStream(uniform, streams.stream(seed, 0, streams.FAULT_OUTCOME)),
        )
        self._waiting: deque[asyncio.Future] = deque()
        self._faults: list = []
        self._model = ServiceModel(config, [], *self._streams)
        self.busy = 0
        # Busy seconds = _ended_busy + (busy x now - _started_sum): service time of the
        # calls that ended, plus the part of each call in service that has elapsed.
        self._ended_busy = 0.0
        self._started_sum = 0.0  # start times of the calls in service, summed

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def set_faults(self, windows) -> None:
        """Replace the fault windows (FaultWindow, times on this backend's clock)."""
        self._faults = list(windows)
        self._model = ServiceModel(self._config, self._faults, *self._streams)

    @property
    def faults(self) -> list:
        return list(self._faults)

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
            self._start(future)
        elif len(self._waiting) >= self._queue_limit:
            return None
        else:
            self._waiting.append(future)
        return future

    def _start(self, future: asyncio.Future) -> None:
        start = self._clock()
        service, outcome = self._model.serve(start)
        self._started_sum += start
        self._loop.call_later(service, self._finish, future, outcome, start, service)

    def _finish(self, future: asyncio.Future, outcome: int, start: float, service: float) -> None:
        self._started_sum -= start
        self._ended_busy += service
        if not future.done():
            future.set_result(outcome)
        if self._waiting:
            self._start(self._waiting.popleft())
        else:
            self.busy -= 1
