"""The policy path: retries, hedges, delaying and holding limiters, cancellation.

``PolicyRouter`` wraps the fast-path ``SimRouter`` (whose ``screen`` and
``settle`` it reuses) when a scenario needs more than "admit or reject at once,
answer once":

* a limiter that *delays* (nginx leaky bucket without ``nodelay``): the request
  reaches validation, breaker and backend ``delay`` seconds later;
* a limiter that *holds* (concurrency): its slot is released when the router
  answers the attempt;
* retries (``[router.retry]``) and hedges (``[router.hedge]``): every attempt
  is real load through limiter, breaker and backend, with ``router.timeout``
  per attempt;
* cancellation of hedge losers, on the event-driven backend.

One *exchange* is one logical request: sent once by the workload, answered
once, recorded once (``requests.sent`` stays logical), with its latency from
its first send to its final answer. It makes *tries* (the first, then retries
after a backoff); each try sends a first copy and, while it is unanswered,
hedge copies. The first successful copy answers the exchange; a try fails when
all its copies have failed, with the last one's kind, and is retried if that
kind is in ``retry_on``, tries remain and the retry budget allows. The
exchange's retries, hedges and budget denials go into per-request columns.

The breaker records every copy the router answers, including losers left
running; a cancelled copy is not recorded (it has no answer).
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import simpy

from ..distributions import VariateStream
from ..outcomes import FAILURE, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT
from ..policies import HedgePolicy, RetryBudget, RetryPolicy
from .model import SimRouter

PENDING, ANSWERED, CANCELLED = range(3)


class Exchange:
    """One logical request."""

    __slots__ = ("key", "sent", "tries", "try_started", "retries", "hedges", "denied", "outstanding", "backoff", "copies", "finished", "waiter")

    def __init__(self, key: int, sent: float, backoff: float):
        self.key = key
        self.sent = sent
        self.tries = 0
        self.try_started = sent
        self.retries = 0
        self.hedges = 0
        self.denied = False  # a retry was refused by the budget
        self.outstanding = 0  # copies of the current try not yet answered
        self.backoff = backoff  # the last backoff (decorrelated jitter grows from it)
        self.copies: list[Copy] = []
        self.finished = False
        self.waiter: simpy.Event | None = None


class Copy:
    """One attempt of an exchange: a first try, a retry or a hedge."""

    __slots__ = ("exchange", "state", "holds", "forwarded", "epoch", "job")

    def __init__(self, exchange: Exchange):
        self.exchange = exchange
        self.state = PENDING
        self.holds = False  # holds a limiter slot until answered
        self.forwarded = 0.0  # when it passed the limiter (after any delay)
        self.epoch = 0
        self.job = None  # its job on a cancellable backend


class PolicyRouter:
    """Runs exchanges through ``core`` (limiter, validation, breaker, backend)."""

    def __init__(self, core: SimRouter, retry: RetryPolicy, hedge: HedgePolicy, budget: RetryBudget | None, jitter: VariateStream):
        self.core = core
        self.env = core.env
        self.backend = core.backend
        self.limiter = core.limiter
        self.retry = retry
        self.hedge = hedge
        self.budget = budget
        self._jitter = jitter
        self._timeout = core._timeout
        self._last_activity = 0.0  # latest send or answer
        self._retries = array("H")
        self._hedges = array("H")
        self._denied = array("b")

    # -- the workload's side

    def call(self, key: int, now: float, wait: bool = False) -> simpy.Event | None:
        """Send a logical request at ``now``; None if it was answered at once,
        else (with ``wait``) the event at which it is answered."""
        self._last_activity = now
        exchange = Exchange(key, now, self.retry.backoff.base)
        if self.budget is not None:
            self.budget.deposit(now)
        self._start_try(exchange, now)
        if exchange.finished or not wait:
            return None
        exchange.waiter = self.env.event()
        return exchange.waiter

    def end_time(self, now: float) -> float:
        """When the router last sent or answered, as on the fast path: timers left
        over from answered or cancelled copies (hedges, deadlines) and backend work
        on copies the router already timed out still fire, but do not count."""
        return min(now, self._last_activity)

    def columns(self) -> dict[str, np.ndarray]:
        """Per logical request, in recording order: retries, hedges, budget denials."""
        return {
            "retries": np.frombuffer(self._retries, dtype=np.uint16).astype(np.int64),
            "hedges": np.frombuffer(self._hedges, dtype=np.uint16).astype(np.int64),
            "budget_denied": np.frombuffer(self._denied, dtype=np.int8).astype(bool),
        }

    # -- tries and copies

    def _start_try(self, exchange: Exchange, now: float) -> None:
        exchange.tries += 1
        exchange.try_started = now
        this_try = exchange.tries
        self._send(exchange, now)
        if self.hedge.enabled and exchange.tries == this_try and exchange.outstanding:
            self._schedule_hedge(exchange, this_try, 1)

    def _schedule_hedge(self, exchange: Exchange, this_try: int, number: int) -> None:
        self.env.timeout(self.hedge.delay()).callbacks.append(lambda _event: self._hedge(exchange, this_try, number))

    def _hedge(self, exchange: Exchange, this_try: int, number: int) -> None:
        if exchange.finished or exchange.tries != this_try or not exchange.outstanding:
            return
        exchange.hedges += 1
        self._send(exchange, self.env.now)
        if number < self.hedge.max_hedges and exchange.tries == this_try and not exchange.finished:
            self._schedule_hedge(exchange, this_try, number + 1)

    def _send(self, exchange: Exchange, now: float) -> None:
        copy = Copy(exchange)
        exchange.outstanding += 1
        exchange.copies.append(copy)
        limiter = self.limiter
        if limiter.delays or limiter.holds:
            delay = limiter.acquire(exchange.key, now)
        else:
            delay = 0.0 if limiter.try_acquire(exchange.key, now) else None
        if delay is None:
            self._resolve(copy, now, RATE_LIMITED)
            return
        copy.holds = limiter.holds
        if delay > 0:
            self.env.timeout(delay).callbacks.append(lambda _event: self._forward(copy, self.env.now))
        else:
            self._forward(copy, now)

    def _forward(self, copy: Copy, now: float) -> None:
        if copy.state != PENDING:  # cancelled while the limiter held it
            return
        copy.forwarded = now
        refused = self.core.screen(now)
        if refused is not None:
            self._release(copy, now)
            self._resolve(copy, now, refused)
            return
        copy.epoch = self.core.breaker.epoch
        backend, timeout = self.backend, self._timeout
        if backend.cancellable:
            copy.job = backend.submit(now, lambda job: self._answered(copy, job.end, job.outcome))
            if copy.job is not None:
                if math.isfinite(timeout):
                    self.env.timeout(timeout).callbacks.append(lambda _event: self._answered(copy, self.env.now, TIMEOUT))
                return
        else:
            admitted = backend.admit(now)
            if admitted is not None:
                end, outcome = admitted
                if end > now + timeout:
                    end, outcome = now + timeout, TIMEOUT
                self.env.timeout(end - now).callbacks.append(lambda _event: self._answered(copy, end, outcome))
                return
        self.core.settle(now, now, FAILURE, copy.epoch)
        self._release(copy, now)
        self._resolve(copy, now, QUEUE_FULL)

    def _answered(self, copy: Copy, done: float, outcome: int) -> None:
        """The router answers a backend-admitted copy (the first of its end and its deadline)."""
        if copy.state != PENDING:  # cancelled, or already answered (its deadline came first)
            return
        self._last_activity = max(self._last_activity, done)
        self.core.settle(copy.forwarded, done, outcome, copy.epoch)
        self._release(copy, done)
        self._resolve(copy, done, outcome)

    def _release(self, copy: Copy, now: float) -> None:
        if copy.holds:
            copy.holds = False
            self.limiter.release(copy.exchange.key, now)

    # -- outcomes

    def _resolve(self, copy: Copy, now: float, kind: int) -> None:
        if copy.state != PENDING:
            return
        copy.state = ANSWERED
        exchange = copy.exchange
        exchange.outstanding -= 1
        if exchange.finished:
            return
        if kind == SUCCESS or not exchange.outstanding:  # the try is answered
            self.hedge.observe(now - exchange.try_started)
            if kind == SUCCESS:
                self._finish(exchange, now, SUCCESS)
            else:
                self._try_failed(exchange, now, kind)

    def _try_failed(self, exchange: Exchange, now: float, kind: int) -> None:
        if not self.retry.retryable(kind, exchange.tries):
            self._finish(exchange, now, kind)
            return
        if self.budget is not None and not self.budget.try_withdraw(now):
            exchange.denied = True
            self._finish(exchange, now, kind)
            return
        backoff = self.retry.backoff.delay(exchange.retries, exchange.backoff, self._jitter.next())
        exchange.backoff = backoff
        exchange.retries += 1
        if backoff > 0:
            self.env.timeout(backoff).callbacks.append(lambda _event: self._start_try(exchange, self.env.now))
        else:
            self._start_try(exchange, now)

    def _finish(self, exchange: Exchange, now: float, kind: int) -> None:
        exchange.finished = True
        self._last_activity = max(self._last_activity, now)
        self.core.recorder.add(exchange.sent, now, kind)
        self._retries.append(exchange.retries)
        self._hedges.append(exchange.hedges)
        self._denied.append(exchange.denied)
        if exchange.outstanding and self.hedge.cancel_loser:
            for copy in exchange.copies:
                if copy.state == PENDING:
                    self._cancel(copy, now)
        exchange.copies = []
        if exchange.waiter is not None:
            exchange.waiter.succeed()

    def _cancel(self, copy: Copy, now: float) -> None:
        copy.state = CANCELLED
        copy.exchange.outstanding -= 1
        if copy.job is not None:
            self.backend.cancel(copy.job, now)
        self._release(copy, now)
