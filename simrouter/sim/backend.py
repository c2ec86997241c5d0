"""The simulated AI backend: ``capacity`` slots, a bounded FIFO queue, faults.

Two engines share one ``ServiceModel`` (what happens to a request once its
service starts): ``Backend`` here, which resolves every request at admission
(the fast path), and ``event_backend.EventBackend``, which runs slots, queue
and completions as events so that a queued or running request can be
cancelled (hedging with ``cancel_loser``). Without cancellation both give the
same results, draw for draw.

Service is first-come first-served and service times are drawn independently,
so when a request arrives its whole future is already determined: it starts
when the earliest slot frees (or at once), and ends ``latency`` later. The
backend therefore decides start, end and outcome at admission with a heap of
slot free times, and the fast engine (``fast``) needs no event for it at all.

Semantics that matter for capacity:

* ``queue_limit`` counts requests admitted but not yet started; an arrival that
  finds that many waiting is rejected at once (``QUEUE_FULL``). ``0`` means no
  queue: the request is rejected when every slot is busy (M/M/c/c).
* The backend never learns that the router timed a request out: a timed-out
  request keeps its queue position and its slot until its service ends. Timeouts
  therefore free the *user*, not backend capacity.
* Fault windows are judged at service start: a request that starts inside
  ``[start, end)`` fails with probability ``error_rate`` and its latency is
  multiplied by ``latency_factor``.
* ``failures.timeout`` is the probability that a call hangs: it holds its slot
  for ``hang_time`` and ends as a ``TIMEOUT``.

Utilisation: both backends keep a ``ServiceLog``, the start and end of every
service (16 bytes per admitted request), so the slot-seconds of service inside
any window [t0, t1] are exact (``busy_time_between``): the summary reports
utilisation over the throughput window and over the whole run.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections import deque

import numpy as np

from ..distributions import VariateStream
from ..metrics import busy_slot_seconds
from ..outcomes import FAILURE, SUCCESS, TIMEOUT


class ServiceLog:
    """When each service started and ended (seconds), in the order services
    started: two ``array.array`` columns, no Python object per service. An end
    may be cut short later (a cancelled service, ``cut``)."""

    __slots__ = ("start", "end")

    def __init__(self) -> None:
        self.start = array("d")
        self.end = array("d")

    def add(self, start: float, end: float) -> int:
        """Log a service; returns its index (for ``cut``)."""
        self.start.append(start)
        self.end.append(end)
        return len(self.end) - 1

    def cut(self, index: int, end: float) -> None:
        """Service ``index`` stopped at ``end`` (cancelled)."""
        self.end[index] = end

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) as numpy views of the buffers, without copying: for a
        finished run (while a view lives, ``add`` raises ``BufferError``)."""
        return np.frombuffer(self.start, dtype=np.float64), np.frombuffer(self.end, dtype=np.float64)

    def busy_between(self, t0: float, t1: float) -> float:
        """Slot-seconds of service inside [t0, t1], exactly."""
        start, end = self.columns()
        return busy_slot_seconds(start, end, t0, t1)


class ServiceModel:
    """Service time and outcome of a request whose service starts at ``start``.

    Draws, in this order and only from their own streams: a latency, a fault
    uniform (only inside a fault window), an outcome uniform."""

    __slots__ = ("_latency", "_uniform", "_fault_uniform", "_p_failure", "_p_fail_or_hang", "_hang_time", "_fault_starts", "_faults")

    def __init__(self, config, faults, latency: VariateStream, uniform: VariateStream, fault_uniform: VariateStream):
        self._latency = latency
        self._uniform = uniform
        self._fault_uniform = fault_uniform
        self._p_failure = config.failures.processing
        self._p_fail_or_hang = config.failures.processing + config.failures.timeout
        self._hang_time = config.hang_time
        self._faults = sorted(faults, key=lambda f: f.start)
        self._fault_starts = [f.start for f in self._faults]

    def serve(self, start: float) -> tuple[float, int]:
        """(service seconds, outcome) for a service starting at ``start``."""
        service = self._latency.next()
        outcome = SUCCESS
        if self._faults:
            i = bisect.bisect_right(self._fault_starts, start) - 1
            if i >= 0 and start < self._faults[i].end:
                fault = self._faults[i]
                service *= fault.latency_factor
                if self._fault_uniform.next() < fault.error_rate:
                    outcome = FAILURE
        u = self._uniform.next()
        if outcome == SUCCESS and u < self._p_fail_or_hang:
            if u < self._p_failure:
                outcome = FAILURE
            else:
                outcome = TIMEOUT
                service = self._hang_time
        return service, outcome


class Backend:
    """FIFO multi-slot backend whose requests are resolved at admission."""

    __slots__ = ("_slots_free_at", "_waiting_starts", "_queue_limit", "_service", "busy_time", "services", "_log_start", "_log_end")

    cancellable = False

    def __init__(self, config, service: ServiceModel):
        self._slots_free_at = [0.0] * config.capacity  # a heap
        self._waiting_starts: deque[float] = deque()  # non-decreasing (FIFO)
        self._queue_limit = config.queue_limit
        self._service = service
        self.busy_time = 0.0
        self.services = ServiceLog()
        self._log_start, self._log_end = self.services.start.append, self.services.end.append  # the hot path

    def admit(self, now: float) -> tuple[float, int] | None:
        """(end time, outcome) of a request arriving at ``now``; None if the queue is full."""
        free_at = self._slots_free_at
        earliest = free_at[0]
        if earliest <= now:
            start = now
        else:
            waiting = self._waiting_starts
            while waiting and waiting[0] <= now:
                waiting.popleft()
            if len(waiting) >= self._queue_limit:
                return None
            start = earliest
            waiting.append(start)
        service, outcome = self._service.serve(start)
        end = start + service
        heapq.heapreplace(free_at, end)
        self.busy_time += service
        self._log_start(start)
        self._log_end(end)
        return end, outcome

    def busy_time_until(self, t: float) -> float:
        """Slot-seconds of service done by ``t``, for ``t`` at or after the last
        admission: from then on every slot still busy stays busy until its last
        call ends (only queued calls follow), so the work past ``t`` is what the
        slots' free times exceed it by."""
        return self.busy_time - sum(free - t for free in self._slots_free_at if free > t)

    def busy_time_between(self, t0: float, t1: float) -> float:
        """Slot-seconds of service inside [t0, t1], for any window (the log)."""
        return self.services.busy_between(t0, t1)
