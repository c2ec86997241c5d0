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

Behind a gateway (``[[deployments]]``, docs/gateway.md) a separate closure set
runs (``gateway_calls``, ``run_closed_gateway``, ``run_open_gateway``): the
answers heap holds attempts, a settled attempt may send a fallback at its
answer time, and closed users' wake-ups share one heap with the answers, in
one time order (answers first on ties), since a user's next send is known only
when its final answer is settled. What makes it cheap (docs/performance.md,
"Gateway"): while every deployment's breaker is closed (and its preset's
``closed_is_available``) a first attempt's candidates are a tuple built once
and no breaker is asked ``available`` or ``allow``; the deployment chain's
calls are inlined; and the attempt log is written compactly (``GatewayLog``:
one byte per request, rows only for requests with fallbacks) and expanded
when the run ends.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from itertools import count

import numpy as np

from ..errors import SimulationStalled
from ..policies.breakers import BreakerState
from ..policies.limiters import NoLimiter
from ..outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, TIMEOUT, VALIDATION
from ..workload import arrival_times
from .model import STALL_SENDS

CLOSED = BreakerState.CLOSED


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


# ---------------------------------------------------------------- behind a gateway
#
# With ``[[deployments]]`` (``sim.gateway``) an attempt's answer may send a
# fallback to another deployment (``policies.gateway``), so a request's final
# answer, and a closed user's next send, are known only when the attempts
# before it are settled. These closures are a separate set, chosen once per run:
# the single-backend ones above stay as they are.


ROUTER_ANSWERED = 0  # ``GatewayLog.codes``: the router-wide chain answered the request (no attempt)


class GatewayLog:
    """The fast engine's record of what the gateway did, compact in the hot loop.

    Most requests make one attempt, and its row in the attempt log (deployment,
    sent, done, kind) repeats the request's own row: so per request only a code
    is appended (``codes``: ``ROUTER_ANSWERED``, or the final attempt's
    deployment + 2, 1 for none available), and only the requests with
    fallbacks log their attempts (``attempt_rows``: request index, deployment,
    sent, done, kind, each when the router answered it) and their count
    (``fallback_rows``: request index, fallbacks). The request index of a row
    is the number of requests answered before it was logged. ``expand`` gives
    the full columns, the same as logging every attempt as it is answered."""

    __slots__ = ("codes", "attempt_rows", "fallback_rows")

    def __init__(self, deployments: int):
        self.codes = bytearray() if deployments + 2 <= 0xFF else array("h")
        self.attempt_rows = array("d")
        self.fallback_rows = array("d")

    def expand(self, router) -> None:
        """Write the per-request columns (``router.set_columns``) and every attempt
        (``router.attempts.add_columns``), in answer order."""
        codes = np.frombuffer(self.codes, dtype=np.uint8 if isinstance(self.codes, bytearray) else np.int16).astype(np.int64)
        fallback_rows = np.frombuffer(self.fallback_rows, dtype=np.float64).reshape(-1, 2)
        fallbacks = np.zeros(codes.size, dtype=np.int64)
        fallbacks[fallback_rows[:, 0].astype(np.int64)] = fallback_rows[:, 1]
        final = np.maximum(codes - 2, -1)
        router.set_columns(fallbacks, final)
        # A request with one attempt and no fallback: its attempt is its own row.
        implied = np.flatnonzero((codes != ROUTER_ANSWERED) & (fallbacks == 0))
        logged = np.frombuffer(self.attempt_rows, dtype=np.float64).reshape(-1, 5)
        logged_at = logged[:, 0]  # non-decreasing
        # Rows logged at index i came before request i's own (implied) attempt.
        implied_to = np.arange(implied.size) + np.searchsorted(logged_at, implied, side="right")
        logged_to = np.arange(len(logged)) + np.searchsorted(implied, logged_at, side="left")
        recorder = router.recorder
        requests = (final, np.frombuffer(recorder.sent, dtype=np.float64), np.frombuffer(recorder.done, dtype=np.float64), np.frombuffer(recorder.kind, dtype=np.int8))
        columns = []
        for column, own in enumerate(requests, 1):  # deployment, sent, done, kind: column 0 of the rows is the index
            out = np.empty(implied.size + len(logged), dtype=np.float64)
            out[implied_to] = own[implied]
            out[logged_to] = logged[:, column]
            columns.append(out)
        router.attempts.add_columns(*columns)


def gateway_calls(router, heap: list) -> tuple[Callable, Callable, Callable]:
    """``send(key, now)`` -> the final answer time when the request was answered
    at once (every attempt rejected at once), else None: its attempt is in a
    backend, and its answer in ``heap`` (``(done, order, ...)``: time order,
    ties in admission order); ``settle(answer)``, for an answer popped from
    ``heap`` when it is due, records it (its fallback, if any, is sent at its
    answer time) and returns the key of the request it gave its final answer
    to (at that answer's time), or None when a fallback went into a backend;
    ``finish()``, once the run is over, writes the per-request columns and the
    attempt log (kept compact meanwhile: ``GatewayLog``) into ``router``. The
    router-wide chain (``router.chain``: limiter, validation; inlined) decides at send;
    each attempt goes to the deployment ``Gateway.pick`` would choose (the same
    candidates, inlined here), through that deployment's chain (``decide`` /
    ``record``, inlined: its limiter's ``try_acquire``, its breaker's ``allow``
    and ``record`` with the duration ``done - forwarded``) into its backend,
    in the order ``client.PolicyRouter`` with ``gateway.GatewayTarget`` uses,
    so both engines give the same runs.

    Which deployments are available is known without asking most of the time:
    a breaker whose preset has ``closed_is_available`` and that was ``CLOSED``
    after its last ``record`` / ``throttled`` (the only calls here that can take
    it out of ``CLOSED``) is available, and its ``allow`` would admit with no
    side effect, so it is not called. ``closed[d]`` holds that, refreshed after
    each of those calls on ``d`` (and after an ``allow`` on a breaker that was
    not closed: it may move); while every deployment is closed, a first
    attempt's candidates are all of them, a tuple built once."""
    gateway = router.gateway
    deployments = router.deployments
    everyone = tuple(range(len(deployments)))  # every deployment, ascending: the candidates when all are available
    limited = [type(d.chain.limiter) is not NoLimiter for d in deployments]
    decides = [d.chain.decide for d in deployments]
    acquires = [d.chain.limiter.try_acquire for d in deployments]
    breakers = [d.chain.breaker for d in deployments]
    allows = [b.allow for b in breakers]
    records = [b.record for b in breakers]  # the deployment chain's record: breaker.record(outcome, done, epoch, done - forwarded)
    availables = [b.available for b in breakers]
    steady = [type(b).closed_is_available for b in breakers]
    closed = [s and b.state is CLOSED for s, b in zip(steady, breakers)]  # known available (docstring)
    not_closed = closed.count(False)
    admits = [d.backend.admit for d in deployments]
    routing = gateway.routing
    route_pick, falls_back = routing.pick, gateway.falls_back
    tracks_sent, tracks_answers = gateway.routing_tracks_sent, gateway.routing_tracks_answers  # the call does something
    route_sent, route_answered, rate_limited = routing.sent, routing.answered, gateway.rate_limited
    # The router-wide chain (``GatewayRouter.chain``: limiter, validation, no breaker), its ``decide`` inlined.
    chain = router.chain
    try_acquire = None if type(chain.limiter) is NoLimiter else chain.limiter.try_acquire
    p_validation, validation_draw = chain.p_validation, router.validation_draw
    recorder = router.recorder
    requests = recorder.sent  # its length: the index of the next request row
    add_sent, add_done, add_kind = requests.append, recorder.done.append, recorder.kind.append
    log = GatewayLog(len(deployments))
    add_code = log.codes.append  # per request: ROUTER_ANSWERED, or its final deployment + 2 (1: none)
    log_attempt, log_fallbacks = log.attempt_rows.extend, log.fallback_rows.extend  # requests with fallbacks only
    timeout = router.timeout
    order = count()

    def refresh(deployment: int) -> None:
        """Re-read whether ``deployment``'s breaker is closed (after a call that may have moved it)."""
        nonlocal not_closed
        now_closed = steady[deployment] and breakers[deployment].state is CLOSED
        if now_closed is not closed[deployment]:
            closed[deployment] = now_closed
            not_closed += -1 if now_closed else 1

    def candidates(now: float, tried: list | None) -> Sequence[int]:
        """``Gateway.candidates(now, tried or ())``: the deployments not tried whose breaker is available."""
        if tried is None:
            if not not_closed:
                return everyone
            return [d for d in everyone if closed[d] or availables[d](now)]
        return [d for d in everyone if d not in tried and (closed[d] or availables[d](now))]

    def send(key: int, now: float) -> float | None:
        """A request's first send: the router-wide limiter and validation (no
        breaker), then its first attempt (``attempt``, inlined for the usual
        case: every deployment closed)."""
        if try_acquire is not None and not try_acquire(key, now):
            kind = RATE_LIMITED
        elif p_validation and validation_draw() < p_validation:
            kind = VALIDATION
        else:
            kind = None
        if kind is not None:
            add_sent(now)
            add_done(now)
            add_kind(kind)
            add_code(ROUTER_ANSWERED)
            return now
        if not_closed:
            return attempt(key, now, now, candidates(now, None), None, 0)
        deployment = route_pick(everyone, now)
        if limited[deployment] and not acquires[deployment](key, now):
            return rate_limited_attempt(key, now, now, deployment, None, 0)
        epoch = breakers[deployment].epoch
        admitted = admits[deployment](now)
        if admitted is None:
            return queue_full(key, now, now, deployment, epoch, None, 0)
        if tracks_sent:
            route_sent(deployment, now)
        end, outcome = admitted
        deadline = now + timeout
        if end > deadline:
            end, outcome = deadline, TIMEOUT
        heappush(heap, (end, next(order), now, outcome, epoch, deployment, key, now, None, 0))
        return None

    def attempt(key: int, now: float, sent: float, choice: Sequence[int], tried: list | None, fallbacks: int) -> float | None:
        """One attempt at ``now`` among ``choice`` (its candidates; ``tried``: the
        deployments this try tried before, None for none): None if it went into
        a backend, else (it was rejected at once) its fallbacks' answer or the
        request's (its time)."""
        if not choice:  # no deployment available
            return answered_at_once(key, now, sent, -1, BREAKER_REJECTED, tried, fallbacks)
        deployment = route_pick(choice, now)
        if closed[deployment]:  # its allow admits, with no side effect
            if limited[deployment] and not acquires[deployment](key, now):
                return rate_limited_attempt(key, now, sent, deployment, tried, fallbacks)
        else:
            if limited[deployment]:
                kind = decides[deployment](key, now)
            else:
                kind = None if allows[deployment](now) else BREAKER_REJECTED
            refresh(deployment)
            if kind == RATE_LIMITED:
                return rate_limited_attempt(key, now, sent, deployment, tried, fallbacks)
            if kind is not None:
                return answered_at_once(key, now, sent, deployment, kind, tried, fallbacks)
        epoch = breakers[deployment].epoch
        admitted = admits[deployment](now)
        if admitted is None:
            return queue_full(key, now, sent, deployment, epoch, tried, fallbacks)
        if tracks_sent:
            route_sent(deployment, now)
        end, outcome = admitted
        deadline = now + timeout
        if end > deadline:
            end, outcome = deadline, TIMEOUT
        heappush(heap, (end, next(order), now, outcome, epoch, deployment, key, sent, tried, fallbacks))
        return None

    def rate_limited_attempt(key: int, now: float, sent: float, deployment: int, tried: list | None, fallbacks: int) -> float | None:
        """The deployment's limiter rejected the attempt: its breaker hears of it (``Gateway.rate_limited``)."""
        rate_limited(deployment, now)
        refresh(deployment)
        return answered_at_once(key, now, sent, deployment, RATE_LIMITED, tried, fallbacks)

    def queue_full(key: int, now: float, sent: float, deployment: int, epoch: int, tried: list | None, fallbacks: int) -> float | None:
        """The deployment's backend refused the attempt: a failure for its breaker, of duration 0."""
        records[deployment](FAILURE, now, epoch, 0.0)
        refresh(deployment)
        return answered_at_once(key, now, sent, deployment, QUEUE_FULL, tried, fallbacks)

    def answered_at_once(key: int, now: float, sent: float, deployment: int, kind: int, tried: list | None, fallbacks: int) -> float | None:
        """An attempt answered ``kind`` at ``now`` without reaching a backend:
        logged, then a fallback (``attempt``) if the rule allows and a
        candidate is left, else the request's answer (its time)."""
        if deployment >= 0:
            if tried is None:
                tried = [deployment]
            else:
                tried.append(deployment)
            if falls_back(kind, fallbacks):
                choice = candidates(now, tried)
                if choice:
                    log_attempt((len(requests), deployment, now, now, kind))
                    return attempt(key, now, sent, choice, tried, fallbacks + 1)
        if fallbacks:
            log_attempt((len(requests), deployment, now, now, kind))
            log_fallbacks((len(requests), fallbacks))
        add_sent(sent)
        add_done(now)
        add_kind(kind)
        add_code(deployment + 2)
        return now

    def settle(answer: tuple) -> int | None:
        done, _, forwarded, outcome, epoch, deployment, key, sent, tried, fallbacks = answer
        records[deployment](outcome, done, epoch, done - forwarded)
        if closed[deployment]:
            if breakers[deployment].state is not CLOSED:
                refresh(deployment)
        elif steady[deployment]:
            refresh(deployment)
        if tracks_answers:
            route_answered(deployment, done, done - forwarded, outcome)
        if outcome and falls_back(outcome, fallbacks):  # SUCCESS (0) never falls back
            if tried is None:
                tried = [deployment]
            else:
                tried.append(deployment)
            choice = candidates(done, tried)
            if choice:
                log_attempt((len(requests), deployment, forwarded, done, outcome))
                return None if attempt(key, done, sent, choice, tried, fallbacks + 1) is None else key
        if fallbacks:
            log_attempt((len(requests), deployment, forwarded, done, outcome))
            log_fallbacks((len(requests), fallbacks))
        add_sent(sent)
        add_done(done)
        add_kind(outcome)
        add_code(deployment + 2)
        return key

    def finish() -> None:
        """The run is over: the per-request columns and the attempt log, in full (``GatewayLog.expand``)."""
        log.expand(router)

    return send, settle, finish


# A closed user's wake-up in the one heap of ``run_closed_gateway``: ``(time, WAKE +
# user)``, after every answer due at its time (their second field is an admission
# number, below WAKE), users due together in user order.
WAKE = 1 << 62


def run_closed_gateway(router, thinks: list[Callable[[], float]], requests: int, stop_at: float, tick: Callable[[float], None] | None = None) -> tuple[float, list[float]]:
    """``run_closed`` behind a gateway: answers and wake-ups in one heap, in
    time order, answers first on ties (``instants``); a user whose request is
    still in a backend is woken when its final answer is settled (its key is
    the user)."""
    users = len(thinks)
    events = [(0.0, WAKE + user) for user in range(users)]  # in order: a heap
    left = [requests or -1] * users
    finished: list[float] = []
    send, settle, finish = gateway_calls(router, events)
    turns = 0
    stalled_at, stalled = 0.0, 0
    while events:
        event = heappop(events)
        if event[1] < WAKE:  # an answer
            user = settle(event)
            if user is not None:  # its final answer
                done = event[0]
                if not left[user]:
                    finished.append(done)
                else:
                    heappush(events, (done + thinks[user](), WAKE + user))
            continue
        now, user = event
        user -= WAKE
        turns += 1
        if tick is not None and not turns & TICK_MASK:
            tick(now)
        if now >= stop_at:
            finished.append(now)
            continue
        if now != stalled_at:
            stalled_at, stalled = now, 0
        while True:
            stalled += 1
            if stalled > STALL_SENDS:
                raise SimulationStalled(now, stalled - 1)
            answered = send(user, now)
            left[user] -= 1
            if answered is None:  # in a backend: woken when it is answered
                break
            if not left[user]:
                finished.append(now)
                break
            pause = thinks[user]()
            if pause > 0:
                heappush(events, (now + pause, WAKE + user))
                break
    finish()
    return _end_time(router), finished


def run_open_gateway(router, schedule: list[tuple[float, float]], poisson: bool, gaps, keys: Callable[[], int], max_requests: int, tick: Callable[[float], None] | None = None) -> tuple[float, list[float]]:
    """``run_open`` behind a gateway."""
    answers: list[tuple] = []
    send, settle, finish = gateway_calls(router, answers)
    now = 0.0
    stopped = None
    for sent, now in enumerate(arrival_times(schedule, poisson, gaps), 1):
        if tick is not None and not sent & TICK_MASK:
            tick(now)
        while answers and answers[0][0] <= now:
            settle(heappop(answers))
        send(keys(), now)
        if max_requests and sent >= max_requests:
            stopped = now
            break
    if stopped is None:
        stopped = max(now, schedule[-1][0] if schedule else 0.0)
    while answers:
        settle(heappop(answers))
    finish()
    return _end_time(router), [stopped]
