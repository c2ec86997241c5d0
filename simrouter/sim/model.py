"""The router and its users as a SimPy model.

A request goes ``limiter -> validation -> breaker -> backend``:

1. the limiter (keyed by user) may reject it: ``RATE_LIMITED``, answered at once;
2. a fraction ``backend.failures.validation`` is malformed: ``VALIDATION`` (422),
   answered at once, not seen by the breaker;
3. the breaker may reject it: ``BREAKER_REJECTED``, answered at once;
4. the backend may reject it (queue full), which the breaker counts as a failure;
   otherwise the router answers at ``min(end, sent + router.timeout)``: the
   backend's outcome, or ``TIMEOUT`` if the deadline came first.

The breaker records the outcome at the moment the router answers, in simulated
time order, so later admissions see exactly the state a real router would.

Workloads: closed users (send, wait for the answer, think, repeat) are SimPy
processes; an open workload is one arrival process, and each admitted request's
answer is a single timeout event with a callback, not a process of its own.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from ..distributions import VariateStream
from ..metrics import Recorder
from ..outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, TIMEOUT, VALIDATION
from .backend import Backend


class SimRouter:
    """Admission and answer timing for one simulated run."""

    __slots__ = ("env", "limiter", "breaker", "backend", "recorder", "_timeout", "_p_validation", "_validation_uniform")

    def __init__(self, env: simpy.Environment, scenario, limiter, breaker, backend: Backend, recorder: Recorder, validation_uniform: VariateStream):
        self.env = env
        self.limiter = limiter
        self.breaker = breaker
        self.backend = backend
        self.recorder = recorder
        self._timeout = scenario.router.timeout
        self._p_validation = scenario.backend.failures.validation
        self._validation_uniform = validation_uniform

    def submit(self, key: int, now: float) -> tuple[float, int, int] | None:
        """Admit a request sent at ``now``: (answer time, outcome, breaker epoch), or
        None when it was answered at once (and already recorded)."""
        recorder = self.recorder
        if not self.limiter.try_acquire(key, now):
            recorder.add(now, now, RATE_LIMITED)
            return None
        if self._p_validation and self._validation_uniform.next() < self._p_validation:
            recorder.add(now, now, VALIDATION)
            return None
        breaker = self.breaker
        if not breaker.allow(now):
            recorder.add(now, now, BREAKER_REJECTED)
            return None
        epoch = breaker.epoch
        admitted = self.backend.admit(now)
        if admitted is None:
            breaker.record(FAILURE, now, epoch)
            recorder.add(now, now, QUEUE_FULL)
            return None
        end, outcome = admitted
        deadline = now + self._timeout
        if end > deadline:
            return deadline, TIMEOUT, epoch
        return end, outcome, epoch

    def answer(self, sent: float, done: float, outcome: int, epoch: int) -> None:
        """The router answers a backend-admitted request at ``done``."""
        self.breaker.record(outcome, done, epoch)
        self.recorder.add(sent, done, outcome)


def closed_user(env: simpy.Environment, router: SimRouter, key: int, requests: int, think: VariateStream, stop_at: float) -> Generator:
    """Send, wait for the answer, think; ``requests`` times (0: until ``stop_at``)."""
    sent = 0
    while requests == 0 or sent < requests:
        now = env.now
        if now >= stop_at:
            return
        sent += 1
        admitted = router.submit(key, now)
        if admitted is not None:
            done, outcome, epoch = admitted
            yield env.timeout(done - now)
            router.answer(now, done, outcome, epoch)
        pause = think.next()
        if pause > 0:
            yield env.timeout(pause)


def open_arrivals(
    env: simpy.Environment,
    router: SimRouter,
    schedule: list[tuple[float, float]],
    poisson: bool,
    gaps: VariateStream,
    keys: VariateStream,
    max_requests: int,
) -> Generator:
    """Arrivals at piecewise-constant rates: ``schedule`` is [(stage end, rate)].

    Constant arrivals fall at ``stage start + k / rate`` (k = 0, 1, ...), computed
    rather than accumulated so they do not drift. Poisson gaps are unit
    exponentials divided by the stage's rate; at a stage boundary the next gap is
    drawn afresh (memorylessness makes that exact).
    """
    submit, answer, timeout = router.submit, router.answer, env.timeout
    count = 0
    stage_start = 0.0
    for stage_end, rate in schedule:
        if rate <= 0:
            stage_start = stage_end
            continue
        k = 0
        t = stage_start
        while True:
            if poisson:
                t += gaps.next() / rate
            else:
                t = stage_start + k / rate
                k += 1
            if t >= stage_end:
                break
            if t > env.now:
                yield timeout(t - env.now)
            now = env.now
            count += 1
            admitted = submit(keys.next(), now)
            if admitted is not None:
                done, outcome, epoch = admitted
                event = timeout(done - now)
                event.callbacks.append(lambda _event, s=now, d=done, o=outcome, e=epoch: answer(s, d, o, e))
            if max_requests and count >= max_requests:
                return
        stage_start = stage_end
