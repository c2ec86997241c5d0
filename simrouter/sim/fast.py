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
answer time, and closed users' wake-ups are merged with the answers in one
time order (answers first on ties), since a user's next send is known only
when its final answer is settled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from itertools import count

from ..errors import SimulationStalled
from ..policies.limiters import NoLimiter
from ..outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, TIMEOUT
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


# ---------------------------------------------------------------- behind a gateway
#
# With ``[[deployments]]`` (``sim.gateway``) an attempt's answer may send a
# fallback to another deployment (``policies.gateway``), so a request's final
# answer, and a closed user's next send, are known only when the attempts
# before it are settled. These closures are a separate set, chosen once per run:
# the single-backend ones above stay as they are.


def gateway_calls(router, wake: Callable[[int, float], None]) -> tuple[Callable, Callable, list]:
    """``send(key, now, user)`` -> the final answer time when the request was
    answered at once (every attempt rejected at once), else None (``wake(user,
    done)`` is called when its final answer is settled); ``settle_next()``
    settles the earliest answer due (its fallback, if any, is sent at its
    answer time); and the answers heap (its head: the next answer due). The
    router-wide chain (``router.chain``: limiter, validation) decides at send;
    each attempt goes to the deployment ``Gateway.pick`` would choose (the same
    candidates, inlined here), through that deployment's chain (``decide`` /
    ``record``; a deployment without a limiter asks its breaker directly) into
    its backend, in the order ``client.PolicyRouter`` with
    ``gateway.GatewayTarget`` uses, so both engines give the same runs."""
    answers: list[tuple] = []
    gateway = router.gateway
    deployments = router.deployments
    # A deployment without a limiter: its chain's decide is its breaker's allow (no validation there), asked directly.
    limited = [type(d.chain.limiter) is not NoLimiter for d in deployments]
    decides = [d.chain.decide for d in deployments]
    allows = [d.chain.breaker.allow for d in deployments]
    records = [d.chain.record for d in deployments]
    breakers = [d.chain.breaker for d in deployments]
    availability = tuple(enumerate(b.available for b in breakers))  # (deployment, its breaker's available)
    admits = [d.backend.admit for d in deployments]
    route_pick, falls_back = gateway.routing.pick, gateway.falls_back
    candidates = gateway.candidates
    tracks = gateway.routing_tracks_attempts  # sent / answered do something
    route_sent, route_answered, rate_limited = gateway.sent, gateway.answered, gateway.rate_limited
    chain = router.chain
    decide = None if chain.transparent else chain.decide
    recorder, attempts = router.recorder, router.attempts
    add_sent, add_done, add_kind = recorder.sent.append, recorder.done.append, recorder.kind.append
    log_attempt = attempts.log  # log((deployment, sent, done, kind))
    add_fallbacks, add_deployment = router.fallbacks.append, router.final_deployment.append
    timeout = router.timeout
    order = count()

    def send(key: int, now: float, user: int, sent: float = -1.0, tried: list | None = None, fallbacks: int = 0) -> float | None:
        """A request's attempts from ``now`` (its first send, or with ``tried`` a
        fallback) until one is in a backend (None) or it is answered (its time)."""
        if tried is None:  # the first send: the router-wide limiter and validation (no breaker)
            sent = now
            tried = []
            kind = None if decide is None else decide(key, now)
            if kind is not None:
                add_sent(now)
                add_done(now)
                add_kind(kind)
                add_fallbacks(0)
                add_deployment(-1)
                return now
        while True:
            if tried:
                choice = [d for d, available in availability if d not in tried and available(now)]
            else:
                choice = [d for d, available in availability if available(now)]
            if not choice:  # no deployment available
                deployment, kind = -1, BREAKER_REJECTED
            else:
                deployment = route_pick(choice, now)
                tried.append(deployment)
                if limited[deployment]:
                    kind = decides[deployment](key, now)
                else:
                    kind = None if allows[deployment](now) else BREAKER_REJECTED
                if kind is None:
                    epoch = breakers[deployment].epoch
                    admitted = admits[deployment](now)
                    if admitted is not None:
                        if tracks:
                            route_sent(deployment, now)
                        end, outcome = admitted
                        deadline = now + timeout
                        if end > deadline:
                            end, outcome = deadline, TIMEOUT
                        heappush(answers, (end, next(order), now, outcome, epoch, deployment, key, sent, tried, fallbacks, user))
                        return None
                    records[deployment](FAILURE, now, epoch, now)  # a full queue is a failure for its breaker
                    kind = QUEUE_FULL
                elif kind == RATE_LIMITED:
                    rate_limited(deployment, now)
            log_attempt((deployment, now, now, kind))
            if deployment < 0 or not (falls_back(kind, fallbacks) and candidates(now, tried)):
                add_sent(sent)
                add_done(now)
                add_kind(kind)
                add_fallbacks(fallbacks)
                add_deployment(deployment)
                return now
            fallbacks += 1

    def settle_next() -> None:
        done, _, forwarded, outcome, epoch, deployment, key, sent, tried, fallbacks, user = heappop(answers)
        records[deployment](outcome, done, epoch, forwarded)
        if tracks:
            route_answered(deployment, done, done - forwarded, outcome)
        log_attempt((deployment, forwarded, done, outcome))
        if outcome and falls_back(outcome, fallbacks) and candidates(done, tried):  # SUCCESS (0) never falls back
            if send(key, done, user, sent, tried, fallbacks + 1) is None:
                return
        else:
            add_sent(sent)
            add_done(done)
            add_kind(outcome)
            add_fallbacks(fallbacks)
            add_deployment(deployment)
        wake(user, done)

    return send, settle_next, answers


def run_closed_gateway(router, thinks: list[Callable[[], float]], requests: int, stop_at: float, tick: Callable[[float], None] | None = None) -> tuple[float, list[float]]:
    """``run_closed`` behind a gateway: answers and wake-ups merged in one time
    order, answers first on ties (``instants``); a user whose request is still
    in a backend is woken when its final answer is settled."""
    users = len(thinks)
    wakeups = [(0.0, user) for user in range(users)]
    left = [requests or -1] * users
    finished: list[float] = []

    def wake(user: int, done: float) -> None:
        if not left[user]:
            finished.append(done)
        else:
            heappush(wakeups, (done + thinks[user](), user))

    send, settle_next, answers = gateway_calls(router, wake)
    turns = 0
    stalled_at, stalled = 0.0, 0
    while True:
        if answers and (not wakeups or answers[0][0] <= wakeups[0][0]):
            settle_next()
            continue
        if not wakeups:
            break
        now, user = heappop(wakeups)
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
            answered = send(user, now, user)
            left[user] -= 1
            if answered is None:  # in a backend: ``wake`` goes on when it is answered
                break
            if not left[user]:
                finished.append(now)
                break
            pause = thinks[user]()
            if pause > 0:
                heappush(wakeups, (now + pause, user))
                break
    return _end_time(router), finished


def run_open_gateway(router, schedule: list[tuple[float, float]], poisson: bool, gaps, keys: Callable[[], int], max_requests: int, tick: Callable[[float], None] | None = None) -> tuple[float, list[float]]:
    """``run_open`` behind a gateway."""
    send, settle_next, answers = gateway_calls(router, lambda user, done: None)
    now = 0.0
    stopped = None
    for sent, now in enumerate(arrival_times(schedule, poisson, gaps), 1):
        if tick is not None and not sent & TICK_MASK:
            tick(now)
        while answers and answers[0][0] <= now:
            settle_next()
        send(keys(), now, -1)
        if max_requests and sent >= max_requests:
            stopped = now
            break
    if stopped is None:
        stopped = max(now, schedule[-1][0] if schedule else 0.0)
    while answers:
        settle_next()
    return _end_time(router), [stopped]
