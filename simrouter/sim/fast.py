"""The fast engine: a plain calendar for requests decided at admission.

On the fast path (no retries, hedges, delaying or holding limiter, nor
cancellation: ``run.build_router`` decides) a request's whole future is known
when it is sent: the admission chain (``simrouter.policies.chain``, the one the
SimPy engine and the live service use: limiter, validation, breaker) answers it
at once, or the resolve-at-admission ``backend.Backend`` gives its answer time
(its end, or the router timeout if that comes first) and outcome. What is left to
simulate is order: the breaker must record each answer at its answer time,
before any later request asks it. So this engine needs no SimPy event at all,
only two heaps:

* ``answers``: (answer time, admission order, sent, outcome, breaker epoch) of
  every backend-admitted request not yet answered. Before anything happens at
  time ``t``, every answer due at or before ``t`` is settled, in time order
  (ties in admission order): the breaker records it, the recorder appends it;
* ``wakeups`` (closed workloads): (time, user) of each user's next send: its
  answer time plus the think time, both known at admission; users due at one
  instant send in user order. A user answered at once with no think time sends
  again without a wake-up.

An open workload's arrival times come in order already, so it needs only the
answers heap. Per request this is a heap push and pop or two, where the SimPy
engine (``engine="events"``) spends an event per answer, per think and per
service end and a process switch; both give the same runs from the same
streams (``tests/test_fast_engine.py``).

Ties follow the rule both engines state in ``instants``: a service that ends
exactly at its deadline is a success (``TIMEOUT`` only when end > sent +
timeout); an answer due at exactly the time of a send is settled first (the
router answers before it admits a request arriving at that instant), answers
due together in admission order; users due together send in user order
(``tests/test_fix_engine_ties.py``). No configuration can spin at one
instant: after ``model.STALL_SENDS`` sends in a row without the clock moving,
``run_closed`` raises ``errors.SimulationStalled``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from itertools import count

from ..errors import SimulationStalled
from ..outcomes import FAILURE, QUEUE_FULL, TIMEOUT
from ..workload import arrival_times
from .model import STALL_SENDS


def _router_calls(router) -> tuple[Callable[[int, float], float | None], Callable[[float], None]]:
    """``send(key, now)`` -> the answer time of a backend-admitted request, or None
    if it was answered (and recorded) at once; ``settle(until)`` records every
    answer due at or before ``until``. The admission chain is ``router.chain``
    (``simrouter.policies.chain``: ``decide`` at send time, ``record`` when
    answered; the call is forwarded when sent, so its breaker duration is
    ``done - sent``). Closures over bound locals: the hot loop."""
    answers: list[tuple] = []
    chain = router.chain
    decide, record = chain.decide, chain.record
    transparent = chain.transparent  # nothing to decide or record: skip both calls
    breaker = chain.breaker
    admit = router.backend.admit
    recorder = router.recorder
    add_sent, add_done, add_kind = recorder.sent.append, recorder.done.append, recorder.kind.append
    timeout = router.timeout
    order = count()

    def send(key: int, now: float) -> float | None:
        kind = None if transparent else decide(key, now)
        if kind is None:
            epoch = breaker.epoch
            admitted = admit(now)
            if admitted is not None:
                end, outcome = admitted
                deadline = now + timeout
                if end > deadline:
                    end, outcome = deadline, TIMEOUT
                heappush(answers, (end, next(order), now, outcome, epoch))
                return end
            record(FAILURE, now, epoch, now)  # a full queue is a failure for the breaker, of duration 0
            kind = QUEUE_FULL
        add_sent(now)
        add_done(now)
        add_kind(kind)
        return None

    def settle(until: float) -> None:
        while answers and answers[0][0] <= until:
            done, _, sent, outcome, epoch = heappop(answers)
            if not transparent:
                record(outcome, done, epoch, sent)
            add_sent(sent)
            add_done(done)
            add_kind(outcome)

    return send, settle


def _end_time(router) -> float:
    """The run's end: its last send or answer, as on the SimPy engine. Every send
    is recorded at or after its time, and records are appended in time order."""
    done = router.recorder.done
    return done[-1] if done else 0.0


# How many loop turns between two calls of a progress ``tick(now)`` (a power of 2, minus 1).
TICK_MASK = 0x3FFF


def run_closed(router, thinks: list[Callable[[], float]], requests: int, stop_at: float, tick: Callable[[float], None] | None = None) -> tuple[float, list[float]]:
    """Closed users ``0 .. len(thinks)-1``: send, wait for the answer, think
    (``thinks[user]()``), ``requests`` times each (0: until ``stop_at``).
    ``tick(now)`` is called now and then with the simulated time (progress).
    Returns (end time, when each user finished)."""
    send, settle = _router_calls(router)
    turns = 0
    users = len(thinks)
    wakeups = [(0.0, user) for user in range(users)]  # (time, user): users due together send in user order
    left = [requests or -1] * users  # -1 never reaches 0: unlimited
    finished: list[float] = []
    now = stalled_at = 0.0
    stalled = 0  # sends in a row at ``stalled_at``
    while wakeups:
        now, user = heappop(wakeups)
        turns += 1
        if tick is not None and not turns & TICK_MASK:
            tick(now)
        settle(now)
        if now >= stop_at:
            finished.append(now)
            continue
        think = thinks[user]
        if now != stalled_at:
            stalled_at, stalled = now, 0
        while True:
            stalled += 1
            if stalled > STALL_SENDS:
                raise SimulationStalled(now, stalled - 1)
            answered = send(user, now)
            left[user] -= 1
            if not left[user]:
                finished.append(now if answered is None else answered)
                break
            pause = think()
            if answered is not None:
                heappush(wakeups, (answered + pause, user))
                break
            if pause > 0:
                heappush(wakeups, (now + pause, user))
                break
    settle(math.inf)
    return _end_time(router), finished


def run_open(router, schedule: list[tuple[float, float]], poisson: bool, gaps, keys: Callable[[], int], max_requests: int, tick: Callable[[float], None] | None = None) -> tuple[float, list[float]]:
    """Arrivals at piecewise-constant rates (``schedule`` = [(stage end, rate)], at
    the times ``simrouter.workload.arrival_times`` gives), each from user ``keys()``.
    ``tick(now)``: as for ``run_closed``. Returns (end time, [when arrivals stopped])."""
    send, settle = _router_calls(router)
    now = 0.0
    stopped = None
    for sent, now in enumerate(arrival_times(schedule, poisson, gaps), 1):
        if tick is not None and not sent & TICK_MASK:
            tick(now)
        settle(now)
        send(keys(), now)
        if max_requests and sent >= max_requests:
            stopped = now
            break
    if stopped is None:  # arrivals ran to the schedule's end
        stopped = max(now, schedule[-1][0] if schedule else 0.0)
    settle(math.inf)
    return _end_time(router), [stopped]
