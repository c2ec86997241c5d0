"""The router and its users: the model both engines run.

A request goes ``limiter -> validation -> breaker -> backend``:

1. the limiter (keyed by user) may reject it: ``RATE_LIMITED``, answered at once;
2. a fraction ``backend.failures.validation`` is malformed: ``VALIDATION`` (422),
   answered at once, not seen by the breaker. Malformed is a property of the
   logical request: drawn once, when it first reaches validation; a retry or
   hedge of a request that passed validation passes it again;
3. the breaker may reject it: ``BREAKER_REJECTED``, answered at once;
4. the backend may reject it (queue full), which the breaker counts as a failure;
   otherwise the router answers at ``min(end, sent + router.timeout)``: the
   backend's outcome, or ``TIMEOUT`` if the deadline came first.

Steps 1-3 and the breaker's bookkeeping are ``simrouter.policies.chain``'s
``AdmissionChain``, the one definition the live service uses too (a delaying
limiter forwards ``delay`` seconds after arrival; the breaker's call duration
runs from the forward time). The breaker records the outcome at the moment the
router answers, in simulated time order, so later admissions see exactly the
state a real router would.

Two engines run this model (``run.build_router`` picks one per scenario):

* the fast path, ``fast.run_closed`` / ``fast.run_open`` on ``SimRouter``'s parts
  and the resolve-at-admission backend: a calendar of answers, no SimPy event;
* the SimPy engine, for retries, hedges, delaying or holding limiters and
  cancellation (and ``simulate(engine="events")``): closed users
  (send, wait for the answer, think, repeat) are SimPy processes, an open
  workload is one arrival process, both calling ``client.PolicyRouter.call(key,
  now, wait)``.

Both obey one tie rule (``instants``), so they agree even when times sit on a
grid: a service ending exactly at its deadline succeeds; answers due at an
instant are settled before any send at it, in admission order (on SimPy:
service ends and deadlines are ``ANSWERS``-priority events, settled together
by the router, and a deadline that finds its service ending at that instant
lets it succeed); closed users due at one instant send in user order
(``SendTurns``), whatever SimPy's event ids. Both raise
``errors.SimulationStalled`` after ``STALL_SENDS`` sends in a row at one
instant instead of looping forever.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from ..distributions import VariateStream
from ..metrics import Recorder
from ..policies.chain import AdmissionChain
from ..workload import arrival_times
from .backend import Backend


# Sends in a row without the simulated clock advancing before a run is declared
# stalled (``errors.SimulationStalled``): far more than any real instant holds.
STALL_SENDS = 1_000_000


class SimRouter:
    """The router's parts: the admission chain (limiter, validation, breaker), the
    backend and the recorder.

    On the fast path ``fast.run_closed`` / ``fast.run_open`` drive them directly
    (``chain.decide`` per request at send time, ``chain.record`` as answers are
    settled in time order); ``client.PolicyRouter`` wraps them on the SimPy
    engine (``chain.admit`` / ``forward`` / ``settle`` / ``release`` per copy, and
    ``malformed`` once per logical request)."""

    __slots__ = ("env", "chain", "limiter", "breaker", "backend", "recorder", "_timeout")

    def __init__(self, env: simpy.Environment, scenario, limiter, breaker, backend: Backend, recorder: Recorder, validation_uniform: VariateStream):
        self.env = env
        self.chain = AdmissionChain(limiter, breaker, scenario.backend.failures.validation, validation_uniform.next)
        self.limiter = limiter
        self.breaker = breaker
        self.backend = backend
        self.recorder = recorder
        self._timeout = scenario.router.timeout

    @property
    def timeout(self) -> float:
        """``router.timeout``: seconds the router waits for each backend call."""
        return self._timeout

    @property
    def p_validation(self) -> float:
        """``backend.failures.validation``: the fraction of malformed requests."""
        return self.chain.p_validation

    def malformed(self) -> bool:
        """Draw whether a logical request is malformed (``AdmissionChain.malformed``:
        one draw of the validation stream when ``p_validation`` > 0). Drawn ONCE per
        logical request, when it first reaches validation: its retries and hedges
        reuse the decision."""
        return self.chain.malformed()


def closed_user(env: simpy.Environment, router, key: int, requests: int, think: VariateStream, stop_at: float, finished: list[float]) -> Generator:
    """Send, wait for the answer, think; ``requests`` times (0: until ``stop_at``).
    Appends to ``finished`` when the user's last request was answered. Each time
    it becomes due (at the start, when its answer came or its think time ended)
    it waits for its turn (``router.turns``: users due at one instant send in user
    order, after the answers due then; ``instants.py``)."""
    turn = router.turns.turn
    sent = 0
    if (my_turn := turn(key)) is not None:
        yield my_turn
    while requests == 0 or sent < requests:
        now = env.now
        if now >= stop_at:
            break
        sent += 1
        waited = False
        answered = router.call(key, now, wait=True)
        if answered is not None:
            yield answered
            waited = True
        if sent == requests:
            break
        pause = think.next()
        if pause > 0:
            yield env.timeout(pause)
            waited = True
        if waited and (my_turn := turn(key)) is not None:
            yield my_turn
    finished.append(env.now)


def open_arrivals(
    env: simpy.Environment,
    router,
    schedule: list[tuple[float, float]],
    poisson: bool,
    gaps: VariateStream,
    keys: VariateStream,
    max_requests: int,
    finished: list[float],
) -> Generator:
    """Arrivals at piecewise-constant rates: ``schedule`` is [(stage end, rate)],
    at the times ``simrouter.workload.arrival_times`` gives (shared with the live generator)."""
    call, timeout = router.call, env.timeout
    count = 0
    for t in arrival_times(schedule, poisson, gaps):
        if t > env.now:
            yield timeout(t - env.now)
        now = env.now
        count += 1
        call(keys.next(), now)
        if max_requests and count >= max_requests:
            finished.append(now)
            return
    finished.append(max(env.now, schedule[-1][0] if schedule else 0.0))  # arrivals ran to the schedule's end
