"""The policy path: retries, hedges, delaying and holding limiters, cancellation.

``PolicyRouter`` wraps the fast-path ``SimRouter`` (whose admission chain,
``simrouter.policies.chain``, it runs every copy through: ``admit`` at the
limiter, ``forward`` after its delay, ``settle`` or ``release``) when a
scenario needs more than "admit or reject at once, answer once":

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
running, with the call's duration from its forward time (after the limiter's
delay: the chain's rule); a cancelled copy the breaker admitted is not recorded
(it has no answer) but released (``chain.release``), so that every call the breaker
admits ends in exactly one ``record`` or one ``release`` (a probe permit held
by a cancelled hedge would otherwise wedge the breaker half-open).

Validation is drawn once per exchange, when its first copy reaches it
(``SimRouter.malformed``): retries and hedges of a request that passed
validation pass it again. The percentile hedge delay learns only from tries
the backend answered (``SUCCESS``, ``FAILURE`` or ``TIMEOUT``), never from
copies the limiter, validation, the breaker or a full queue answered at once.
"""

from __future__ import annotations

import math
from array import array

import numpy as np
import simpy

from ..distributions import VariateStream
from ..errors import SimulationStalled
from ..outcomes import FAILURE, QUEUE_FULL, SUCCESS, TIMEOUT
from ..policies import HedgePolicy, RetryBudget, RetryPolicy
from ..policies.chain import Ticket
from .event_backend import WAITING
from .instants import ANSWERS, SendTurns, at_instant
from .model import STALL_SENDS, SimRouter

PENDING, DUE, ANSWERED, CANCELLED = range(4)  # DUE: ended, its answer is settled with the instant's others
BACKEND_ANSWERS = (SUCCESS, FAILURE, TIMEOUT)  # kinds of a copy the backend answered


class Exchange:
    """One logical request."""

    __slots__ = ("key", "sent", "tries", "try_started", "retries", "hedges", "denied", "outstanding", "backoff", "copies", "finished", "waiter", "malformed")

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
        self.malformed: bool | None = None  # the validation draw, once it reached validation


class Copy:
    """One attempt of an exchange: a first try, a retry or a hedge."""

    __slots__ = ("exchange", "state", "ticket", "job", "admission")

    def __init__(self, exchange: Exchange, ticket: Ticket):
        self.exchange = exchange
        self.state = PENDING
        self.ticket = ticket  # its call through the admission chain (limiter slot, breaker epoch)
        self.job = None  # its job on a cancellable backend
        self.admission = 0  # its rank in backend admission order (ties: instants.py)


class PolicyRouter:
    """Runs exchanges through ``core`` (its admission chain, then its backend)."""

    def __init__(self, core: SimRouter, retry: RetryPolicy, hedge: HedgePolicy, budget: RetryBudget | None, jitter: VariateStream):
        self.core = core
        self.env = core.env
        self.backend = core.backend
        self.chain = core.chain
        self.retry = retry
        self.hedge = hedge
        self.budget = budget
        self._jitter = jitter
        self._timeout = core.timeout
        self._last_activity = 0.0  # latest send or answer
        self._stalled = 0  # sends in a row at ``_last_send`` (the stall guard)
        self._last_send = 0.0
        self._admissions = 0  # backend admissions so far
        self._due: list[tuple[int, Copy, float, int]] = []  # answers due at this instant
        self.turns = SendTurns(self.env)  # closed users' send order at one instant
        self._retries = array("H")
        self._hedges = array("H")
        self._denied = array("b")

    # -- the workload's side

    def call(self, key: int, now: float, wait: bool = False) -> simpy.Event | None:
        """Send a logical request at ``now``; None if it was answered at once,
        else (with ``wait``) the event at which it is answered. Raises
        ``SimulationStalled`` after ``model.STALL_SENDS`` sends in a row at one instant."""
        if now != self._last_send:
            self._last_send, self._stalled = now, 0
        self._stalled += 1
        if self._stalled > STALL_SENDS:
            raise SimulationStalled(now, self._stalled - 1)
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
        copy = Copy(exchange, self.chain.admit(exchange.key, now))
        exchange.outstanding += 1
        exchange.copies.append(copy)
        ticket = copy.ticket
        if ticket.kind is not None:  # rate limited
            self._resolve(copy, now, ticket.kind)
        elif ticket.delay > 0:
            self.env.timeout(ticket.delay).callbacks.append(lambda _event: self._forward(copy, self.env.now))
        else:
            self._forward(copy, now)

    def _forward(self, copy: Copy, now: float) -> None:
        if copy.state != PENDING:  # cancelled while the limiter held it
            return
        exchange = copy.exchange
        if exchange.malformed is None:
            exchange.malformed = self.core.malformed()
        ticket = copy.ticket
        refused = self.chain.forward(ticket, now, exchange.malformed)
        if refused is not None:
            self._resolve(copy, now, refused)
            return
        self._admissions += 1
        copy.admission = self._admissions
        backend, timeout = self.backend, self._timeout
        if backend.cancellable:
            copy.job = backend.submit(now, lambda job: self._answer_due(copy, job.end, job.outcome))
            if copy.job is not None:
                if math.isfinite(timeout):
                    at_instant(self.env, timeout, ANSWERS).callbacks.append(lambda _event: self._deadline(copy))
                return
        else:
            admitted = backend.admit(now)
            if admitted is not None:
                end, outcome = admitted
                if end > now + timeout:  # ending exactly at the deadline is a success
                    end, outcome = now + timeout, TIMEOUT
                at_instant(self.env, end - now, ANSWERS).callbacks.append(lambda _event: self._answer_due(copy, end, outcome))
                return
        self.chain.queue_full(ticket)
        self._resolve(copy, now, QUEUE_FULL)

    def _deadline(self, copy: Copy) -> None:
        """``router.timeout`` after the copy was admitted: a TIMEOUT, unless its
        service ends at this very instant (a success: instants.py, rule 1)."""
        job = copy.job
        if copy.state != PENDING or (job.state != WAITING and job.end <= self.env.now):
            return
        self._answer_due(copy, self.env.now, TIMEOUT)

    def _answer_due(self, copy: Copy, done: float, outcome: int) -> None:
        """A copy's answer is due now; the instant's answers are settled together,
        in admission order, before anything else happens at this time."""
        if copy.state != PENDING:  # cancelled, or its answer is already due
            return
        copy.state = DUE
        if not self._due:
            if self.env.peek() > self.env.now:  # nothing else happens at this instant: settle it now
                self._answered(copy, done, outcome)
                return
            at_instant(self.env, 0.0, ANSWERS).callbacks.append(self._settle_due)
        self._due.append((copy.admission, copy, done, outcome))

    def _settle_due(self, _event) -> None:
        due, self._due = self._due, []
        due.sort(key=lambda answer: answer[0])
        for _, copy, done, outcome in due:
            self._answered(copy, done, outcome)

    def _answered(self, copy: Copy, done: float, outcome: int) -> None:
        """The router answers a backend-admitted copy (the first of its end and its deadline)."""
        self._last_activity = max(self._last_activity, done)
        self.chain.settle(copy.ticket, done, outcome)
        self._resolve(copy, done, outcome)

    # -- outcomes

    def _resolve(self, copy: Copy, now: float, kind: int) -> None:
        if copy.state not in (PENDING, DUE):
            return
        copy.state = ANSWERED
        exchange = copy.exchange
        exchange.outstanding -= 1
        if exchange.finished:
            return
        if kind == SUCCESS or not exchange.outstanding:  # the try is answered
            if kind in BACKEND_ANSWERS:
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
        # Even without a backoff the retry goes out after the answers due now (instants.py).
        self.env.timeout(backoff).callbacks.append(lambda _event: self._start_try(exchange, self.env.now))

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
        # It will never be recorded: give back what the breaker granted, and its limiter slot.
        self.chain.release(copy.ticket, now)
