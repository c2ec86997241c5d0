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

Where a copy goes once it passed the router's chain is the router's
``target``, its one public per-copy hook: ``BackendTarget`` (the single
backend: the copy's own chain already holds the breaker) or, behind
``[[deployments]]``, ``gateway.GatewayTarget`` (routing, each deployment's
limiter and breaker, fallbacks). A target calls back ``answer_due`` when an
answer of its backend is due, and ``resolve`` when the copy has its answer.

**Requests as data** (the LLM backend, ``llm_router``): an exchange may carry
its request (``call(..., request=)``, ``Exchange.request``: every copy, retry,
hedge and fallback carries the same one). A target passes it to its backend's
``submit``, and every admission through a chain (the router's, a deployment's)
goes through ``admit(chain, exchange, now)``, which shows it as ``admitting``
while the chain's limiter decides (a tokens-per-minute limiter's cost reads
it). ``Exchange.served_by`` is the backend job whose success answered the
exchange (its first token, on the LLM backend); ``finished(exchange, now,
kind)`` is called once per logical request as it is recorded, for a
subclass's own per-request columns.

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

    __slots__ = (
        "key", "sent", "tries", "try_started", "retries", "hedges", "fallbacks", "deployment", "denied", "outstanding", "backoff", "copies", "finished", "waiter",
        "malformed", "request", "served_by",
    )

    def __init__(self, key: int, sent: float, backoff: float, request=None):
        self.key = key
        self.sent = sent
        self.request = request  # its data (an LLM request's tokens), carried by every copy; None: none
        self.served_by = None  # the backend job whose success answered it (None: none did, or not kept)
        self.tries = 0
        self.try_started = sent
        self.retries = 0
        self.hedges = 0
        self.fallbacks = 0  # behind a gateway: fallback attempts of all its copies
        self.deployment = -1  # behind a gateway: the deployment of the answering attempt
        self.denied = False  # a retry was refused by the budget
        self.outstanding = 0  # copies of the current try not yet answered
        self.backoff = backoff  # the last backoff (decorrelated jitter grows from it)
        self.copies: list[Copy] = []
        self.finished = False
        self.waiter: simpy.Event | None = None
        self.malformed: bool | None = None  # the validation draw, once it reached validation


class Copy:
    """One attempt of an exchange: a first try, a retry or a hedge."""

    __slots__ = ("exchange", "state", "ticket", "job", "admission", "route")

    def __init__(self, exchange: Exchange, ticket: Ticket):
        self.exchange = exchange
        self.state = PENDING
        self.ticket = ticket  # its call through the admission chain (limiter slot, breaker epoch)
        self.job = None  # its job on a cancellable backend
        self.admission = 0  # its rank in backend admission order (ties: instants.py)
        self.route = None  # behind a gateway: its attempts so far (gateway.Route)


class BackendTarget:
    """Forwards copies to the router's single backend (``PolicyRouter.target``):
    the copy's ticket already passed the breaker; a full queue is a ``FAILURE``
    for it; the router answers at the end of service or at ``router.timeout``."""

    def __init__(self, router: "PolicyRouter"):
        self.router = router
        self.backend = router.backend
        self.chain = router.chain

    def forward(self, copy: Copy, now: float) -> None:
        """The copy passed the router's chain at ``now``: into the backend."""
        router = self.router
        if router.serve(copy, self.backend, now, lambda job: router.answer_due(copy, job.end, job.outcome)):
            return
        self.chain.queue_full(copy.ticket)
        router.resolve(copy, now, QUEUE_FULL)

    def answered(self, copy: Copy, done: float, outcome: int) -> None:
        """The backend's answer to the copy is settled (in the instant's order)."""
        self.chain.settle(copy.ticket, done, outcome)
        self.router.resolve(copy, done, outcome)

    def cancel(self, copy: Copy, now: float) -> None:
        """A hedge loser: out of the backend; the breaker's permit and limiter slot given back."""
        if copy.job is not None:
            self.backend.cancel(copy.job, now)
        self.chain.release(copy.ticket, now)


class PolicyRouter:
    """Runs exchanges through ``core`` (its admission chain, then its backend)."""

    def __init__(self, core: SimRouter, retry: RetryPolicy, hedge: HedgePolicy, budget: RetryBudget | None, jitter: VariateStream, target=None):
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
        self._fallbacks = array("H")
        self._deployment = array("h")
        self._admitting = None  # the request of the copy a chain is admitting now (``admitting``)
        # Where a copy goes after the router's chain: the single backend, or a gateway's deployments.
        self.target = target(self) if target is not None else BackendTarget(self)
        self._gateway = target is not None

    @property
    def timeout(self) -> float:
        """``router.timeout``: seconds the router waits for each backend call."""
        return self._timeout

    # -- the workload's side

    @property
    def admitting(self):
        """The request (``Exchange.request``) of the copy whose admission a chain is
        deciding now (``admit``): what a tokens-per-minute limiter's cost reads."""
        return self._admitting

    def admit(self, chain, exchange: Exchange, now: float) -> Ticket:
        """A copy of ``exchange`` through ``chain`` 's admission at ``now`` (the router's
        chain, or a deployment's behind a gateway), its request shown as ``admitting``."""
        self._admitting = exchange.request
        return chain.admit(exchange.key, now)

    def finished(self, exchange: Exchange, now: float, kind: int) -> None:
        """Called once per logical request when it is recorded (recording order), with
        its final kind: a subclass's per-request columns (``llm_router``). Does nothing here."""

    def call(self, key: int, now: float, wait: bool = False, request=None) -> simpy.Event | None:
        """Send a logical request at ``now`` (``request``: its data, carried by every
        copy); None if it was answered at once, else (with ``wait``) the event at which
        it is answered. Raises ``SimulationStalled`` after ``model.STALL_SENDS`` sends
        in a row at one instant."""
        if now != self._last_send:
            self._last_send, self._stalled = now, 0
        self._stalled += 1
        if self._stalled > STALL_SENDS:
            raise SimulationStalled(now, self._stalled - 1)
        self._last_activity = now
        exchange = Exchange(key, now, self.retry.backoff.base, request)
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
        columns = {
            "retries": np.frombuffer(self._retries, dtype=np.uint16).astype(np.int64),
            "hedges": np.frombuffer(self._hedges, dtype=np.uint16).astype(np.int64),
            "budget_denied": np.frombuffer(self._denied, dtype=np.int8).astype(bool),
        }
        if self._gateway:  # per logical request: fallbacks, the deployment of the final answer
            columns["fallbacks"] = np.frombuffer(self._fallbacks, dtype=np.uint16).astype(np.int64)
            columns["deployment"] = np.frombuffer(self._deployment, dtype=np.int16).astype(np.int64)
        return columns

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
        copy = Copy(exchange, self.admit(self.chain, exchange, now))
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
        self.target.forward(copy, now)

    # -- what a target calls back

    def number_admission(self, copy: Copy) -> None:
        """The copy is admitted to a backend now: its rank in admission order (ties)."""
        self._admissions += 1
        copy.admission = self._admissions

    def serve(self, copy: Copy, backend, now: float, on_end) -> bool:
        """Into ``backend`` at ``now`` (it passed its chain) under ``router.timeout``:
        False if the backend refused it (queue full), else its answer is scheduled:
        on a cancellable backend ``on_end(job)`` when the service ends and the
        deadline as its own event; otherwise at ``min(end, now + timeout)``
        (ending exactly at the deadline is a success). ``BackendTarget`` and the
        gateway's target both serve their copies through this."""
        self.number_admission(copy)
        timeout = self._timeout
        if backend.cancellable:
            job = copy.job = backend.submit(now, on_end, copy.exchange.request)
            if job is None:
                return False
            if math.isfinite(timeout):
                at_instant(self.env, timeout, ANSWERS).callbacks.append(lambda _event: self.deadline(copy, job))
            return True
        admitted = backend.admit(now)
        if admitted is None:
            return False
        end, outcome = admitted
        if end > now + timeout:
            end, outcome = now + timeout, TIMEOUT
        at_instant(self.env, end - now, ANSWERS).callbacks.append(lambda _event: self.answer_due(copy, end, outcome))
        return True

    def deadline(self, copy: Copy, job) -> None:
        """``router.timeout`` after ``job`` (the copy's call on a cancellable backend)
        was admitted: a TIMEOUT, unless its service ends at this very instant (a
        success: instants.py, rule 1) or the copy has moved on to another job."""
        if copy.state != PENDING or copy.job is not job or (job.state != WAITING and job.end <= self.env.now):
            return
        self.answer_due(copy, self.env.now, TIMEOUT)

    def resolve(self, copy: Copy, now: float, kind: int) -> None:
        """The copy is answered ``kind`` at ``now`` (its call is settled or released)."""
        self._resolve(copy, now, kind)

    def answer_due(self, copy: Copy, done: float, outcome: int) -> None:
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
        if outcome == SUCCESS and not copy.exchange.finished:  # a success always answers its exchange
            copy.exchange.served_by = copy.job
        self.target.answered(copy, done, outcome)

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
        if self._gateway:
            self._fallbacks.append(exchange.fallbacks)
            self._deployment.append(exchange.deployment)
        self.finished(exchange, now, kind)
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
        # It will never be recorded: out of its backend; give back what the breaker granted, and its limiter slot.
        self.target.cancel(copy, now)
