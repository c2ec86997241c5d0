"""The stand-in AI backend of the reference service, in wall-clock time.

It mirrors the simulated backend (``simrouter.sim.backend``) on an asyncio loop:

* ``capacity`` slots served first-come first-served; ``queue_limit`` requests may
  wait for a slot; an arrival that finds that many waiting is rejected at once
  (``submit`` returns None: the router answers ``queue_full``). ``0``: no queue.
* What happens once service starts is the simulation's own ``ServiceModel``
  (``simrouter.sim.backend``), fed by the simulation's random streams for the
  same seed (behind a gateway, the deployment's own streams: ``stream_index``
  is the deployment's index, as ``simrouter.sim`` keys them): service time from ``backend.latency``, ``FAILURE`` with probability
  ``failures.processing``, a hang of ``hang_time`` s ending as ``TIMEOUT`` with
  probability ``failures.timeout``, and fault windows (times on the service's
  clock) judged at service start.
* The router's timeout does not reach the backend: a request the router gave up
  on keeps its queue place and its slot until its service ends, exactly as in
  the simulation (timeouts do not give capacity back).

No coroutine per request: ``submit`` returns a future (``live.slots``: the slots
and queue every live backend shares) and a service is one ``loop.call_later``;
whoever answers first (the backend, or the router's timeout timer) sets the
future's result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np

from ..distributions import VariateStream
from ..sim import streams
from ..sim.backend import ServiceModel
from .slots import SlottedBackend


def uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` uniform [0, 1) draws (a ``VariateStream`` source)."""
    return rng.random(size)


class StandInBackend(SlottedBackend):
    """Capacity slots, a bounded FIFO queue (``live.slots``), and the simulation's ``ServiceModel``."""

    def __init__(
        self, config, seed: int, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None, stream_index: tuple[int, ...] = ()
    ):
        super().__init__(config, clock, loop)
        self._config = config
        # The simulation's streams for the same seed (and deployment): common random numbers with `simulate`.
        self._streams = (
            VariateStream(config.latency.sample, streams.stream(seed, 0, streams.LATENCY, *stream_index)),
            VariateStream(uniform, streams.stream(seed, 0, streams.BACKEND_OUTCOME, *stream_index)),
            VariateStream(uniform, streams.stream(seed, 0, streams.FAULT_OUTCOME, *stream_index)),
        )
        self._faults: list = []
        self._model = ServiceModel(config, [], *self._streams)

    def set_faults(self, windows) -> None:
        """Replace the fault windows (FaultWindow, times on this backend's clock)."""
        self._faults = list(windows)
        self._model = ServiceModel(self._config, self._faults, *self._streams)

    @property
    def faults(self) -> list:
        return list(self._faults)

    def _start(self, future: asyncio.Future, start: float) -> None:
        service, outcome = self._model.serve(start)
        self._loop.call_later(service, self._ended, future, outcome, start, service)
