"""The simulated backend as events, so that requests can be cancelled.

Same semantics as ``backend.Backend`` (``capacity`` slots, a FIFO queue of at
most ``queue_limit`` waiting requests, fault windows judged at service start,
hung calls, timeouts that do not free capacity), but a request is a ``Job``
that waits in a real queue and completes at a SimPy event, so that
``cancel(job, now)`` can take it out of the queue or cut its service short
and give the slot to the next in line. Used only when a policy cancels work
(hedging with ``cancel_loser``): it costs an event per request, the fast
backend none.

Service times and outcomes are drawn when service starts, from the same
``ServiceModel`` as the fast backend; since both serve in FIFO order, without
cancellations the two produce identical runs from the same streams. Each
service goes into a ``backend.ServiceLog`` (its end cut short when cancelled),
so busy time inside any window is exact, as on the fast backend.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

import simpy

from .backend import ServiceLog, ServiceModel
from .instants import ANSWERS, at_instant

WAITING, RUNNING, DONE, CANCELLED = range(4)


class Job:
    """One request inside the backend; ``on_done(job)`` is called at its end
    (not if cancelled), with ``end`` and ``outcome`` set."""

    __slots__ = ("on_done", "state", "start", "end", "outcome", "logged_as")

    def __init__(self, on_done: Callable[["Job"], None]):
        self.on_done = on_done
        self.state = WAITING
        self.start = self.end = 0.0
        self.outcome = 0
        self.logged_as = -1  # its index in the backend's ServiceLog once started


class EventBackend:
    """FIFO multi-slot backend driven by completion events; supports ``cancel``."""

    __slots__ = ("_env", "_capacity", "_queue_limit", "_service", "_busy", "_queue", "_waiting", "_idle_since", "busy_time", "services")

    cancellable = True

    def __init__(self, env: simpy.Environment, config, service: ServiceModel):
        self._env = env
        self._capacity = config.capacity
        self._queue_limit = config.queue_limit
        self._service = service
        self._busy = 0  # slots in use
        self._queue: deque[Job] = deque()  # may hold cancelled jobs, skipped when reached
        self._waiting = 0  # jobs in the queue that are still waiting
        self._idle_since = [0.0] * config.capacity  # a heap: the latest times a slot went idle, one per slot
        self.busy_time = 0.0
        self.services = ServiceLog()

    def submit(self, now: float, on_done: Callable[[Job], None], request=None) -> Job | None:
        """Admit a request at ``now``; None if the queue is full. ``request``: its data
        (``client.Exchange.request``), which the delay model's service does not read."""
        job = Job(on_done)
        if self._busy < self._capacity:
            self._start(job, now)
        elif self._waiting >= self._queue_limit:
            return None
        else:
            self._queue.append(job)
            self._waiting += 1
        return job

    def cancel(self, job: Job, now: float) -> None:
        """Withdraw ``job``: out of the queue, or its service stops now."""
        if job.state == WAITING:
            job.state = CANCELLED
            self._waiting -= 1
        elif job.state == RUNNING:
            job.state = CANCELLED
            self.busy_time -= job.end - now
            self.services.cut(job.logged_as, now)
            self._free_slot(now)

    def _start(self, job: Job, now: float) -> None:
        service, outcome = self._service.serve(now)
        job.state, job.start, job.end, job.outcome = RUNNING, now, now + service, outcome
        self._busy += 1
        self.busy_time += service
        job.logged_as = self.services.add(now, now + service)
        at_instant(self._env, service, ANSWERS).callbacks.append(lambda _event: self._complete(job))  # answers first (instants.py)

    def _complete(self, job: Job) -> None:
        if job.state != RUNNING:  # cancelled while running: its slot is already free
            return
        job.state = DONE
        self._free_slot(job.end)
        job.on_done(job)

    def _free_slot(self, now: float) -> None:
        self._busy -= 1
        queue = self._queue
        while queue:
            job = queue.popleft()
            if job.state == WAITING:
                self._waiting -= 1
                self._start(job, now)
                return
        heapq.heappushpop(self._idle_since, now)

    def busy_time_until(self, t: float) -> float:
        """Slot-seconds of service done by ``t``, for ``t`` at or after the last
        submission and cancellation (as ``Backend.busy_time_until``). A slot idle
        after ``t`` went idle for the last time, so the latest ``capacity`` idle
        times hold every slot's end of work past ``t``."""
        return self.busy_time - sum(idle - t for idle in self._idle_since if idle > t)

    def busy_time_between(self, t0: float, t1: float) -> float:
        """Slot-seconds of service inside [t0, t1], for any window (the log)."""
        return self.services.busy_between(t0, t1)
