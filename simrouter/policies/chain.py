"""The router's admission chain, defined once: limiter -> validation -> breaker.

Every engine runs a request through this object: the fast engine
(``simrouter.sim.fast``), the SimPy engine (``simrouter.sim.client``) and the
live reference service (``simrouter.live.service``). Like the policies it
holds, it never reads a clock: each call takes the current time.

A call goes through three steps:

1. **arrival** (``admit(key, now)`` -> ``Ticket``): the limiter, keyed by
   user, rejects it (``ticket.kind = RATE_LIMITED``, answered at once) or lets
   it through after ``ticket.delay`` seconds (nginx's leaky bucket delays;
   every other limiter forwards at once). A limiter that *holds* (the
   concurrency cap) keeps a slot for the call (``ticket.holds``) until it is
   settled or released.
2. **forwarding** (``forward(ticket, now, malformed)``, at ``now`` =
   ``ticket.arrived + ticket.delay``): a malformed request is ``VALIDATION``,
   never seen by the breaker; then the breaker may reject it
   (``BREAKER_REJECTED``). Both are answered at once and give the limiter slot
   back. Otherwise the breaker admitted the call (``ticket.epoch``: the state it
   was admitted in) and it goes to the backend: from now on it owes exactly one
   ``settle`` or one ``release``.
3. **the answer** (``settle(ticket, done, outcome)``): the breaker records the
   outcome at ``done``, then the limiter slot is given back. A backend that
   refuses the call (queue full) is settled at once as a ``FAILURE``.
   ``release(ticket, now)``: the call got no answer (a hedge loser cancelled,
   an HTTP client gone): the breaker's permit and the limiter slot are given
   back and nothing is recorded; on a ticket already settled it does nothing.

**The duration the breaker sees** (resilience4j's slow-call rule, the
average response time) runs from the FORWARD time to the answer:
``done - ticket.forwarded``, the protected call as resilience4j measures it
(its ``CircuitBreaker`` wraps the call the router makes to the backend, after
any limiter delay). The time a request spent held by the limiter is in the
request's latency, never in the breaker's call duration. A call refused by a
full queue has duration 0.

**Validation** is a property of the logical request: ``malformed()`` draws it
(one uniform of the validation stream when ``p_validation`` > 0). An engine
with retries or hedges draws it once per logical request and passes the
decision to ``forward`` for every copy; ``forward(ticket, now)`` without it
draws for this call (one call per logical request).

The fast engine's hot loop uses ``decide(key, now)`` and ``record(outcome,
done, epoch, forwarded)``: the same three steps for limiters that neither
delay nor hold (``at_once``), without a ``Ticket`` per request; ``settle`` is
``record`` plus the limiter's release. A chain with nothing in it
(``transparent``: no limiter, validation or breaker) admits every call and
records nothing, so the hot loop skips both calls.
"""

from __future__ import annotations

from collections.abc import Callable

from ..outcomes import BREAKER_REJECTED, FAILURE, RATE_LIMITED, VALIDATION
from .breakers import NoBreaker
from .limiters import NoLimiter


class Ticket:
    """One call through the chain (one copy of a request, in an engine with retries or hedges).

    ``kind``: the answer the chain gave at once (``RATE_LIMITED``,
    ``VALIDATION``, ``BREAKER_REJECTED``), None while the call goes on;
    ``arrived`` and ``delay``: when it reached the limiter and how long the
    limiter holds it before forwarding; ``forwarded``: when it was forwarded
    (the start of the breaker's call duration); ``admitted``: the breaker let
    it through (in ``epoch``) and it is not settled or released yet;
    ``holds``: it holds a limiter slot."""

    __slots__ = ("key", "arrived", "delay", "kind", "forwarded", "epoch", "admitted", "holds")

    def __init__(self, key, arrived: float, delay: float, kind: int | None, holds: bool):
        self.key = key
        self.arrived = arrived
        self.delay = delay
        self.kind = kind
        self.forwarded = arrived + delay
        self.epoch = 0
        self.admitted = False
        self.holds = holds


class AdmissionChain:
    """Limiter, validation and breaker of one router, in that order (module docstring).

    ``limiter``: ``try_acquire`` / ``acquire`` / ``release`` keyed by user
    (``simrouter.policies.limiters.protocol``); ``breaker``: ``allow`` /
    ``record`` / ``release`` / ``epoch`` (``simrouter.policies.breakers``);
    ``p_validation``: the fraction of malformed requests; ``uniform``: draws one
    uniform [0, 1) number (the validation stream)."""

    __slots__ = ("limiter", "breaker", "p_validation", "at_once", "transparent", "decide", "record", "_uniform", "_try_acquire", "_allow")

    def __init__(self, limiter, breaker, p_validation: float, uniform: Callable[[], float]):
        self.limiter = limiter
        self.breaker = breaker
        self.p_validation = p_validation
        self.at_once = not (limiter.delays or limiter.holds)  # ``decide`` may be used
        # No limiter, no validation, no breaker: every call is admitted and nothing is
        # recorded (``decide`` always returns None, ``record`` does nothing); a hot loop may skip both.
        self.transparent = type(limiter) is NoLimiter and type(breaker) is NoBreaker and not p_validation
        self._uniform = uniform
        self._try_acquire = limiter.try_acquire
        self._allow = breaker.allow
        # The fast engine's path (closures over bound locals: as fast as inlined code).
        self.decide, self.record = _fast_path(limiter.try_acquire, breaker.allow, breaker.record, p_validation, uniform)

    def malformed(self) -> bool:
        """Whether a logical request is malformed: one draw when ``p_validation`` > 0."""
        return bool(self.p_validation) and self._uniform() < self.p_validation

    # -- one call, step by step

    def admit(self, key, now: float) -> Ticket:
        """Step 1, the limiter at arrival: ``ticket.kind`` is ``RATE_LIMITED`` or None
        (forward it at ``now + ticket.delay``)."""
        limiter = self.limiter
        if self.at_once:
            delay = 0.0 if self._try_acquire(key, now) else None
        else:
            delay = limiter.acquire(key, now)
        if delay is None:
            return Ticket(key, now, 0.0, RATE_LIMITED, False)
        return Ticket(key, now, delay, None, limiter.holds)

    def forward(self, ticket: Ticket, now: float, malformed: bool | None = None) -> int | None:
        """Step 2 at ``now``, once the limiter's delay is over: validation
        (``malformed``; None: draw it now), then the breaker. Returns the kind
        answered at once (``VALIDATION`` or ``BREAKER_REJECTED``; the limiter slot
        is given back) or None: the breaker admitted the call, which now owes one
        ``settle`` or one ``release``."""
        ticket.forwarded = now
        if malformed is None:
            malformed = self.malformed()
        if malformed:
            kind = VALIDATION
        elif not self._allow(now):
            kind = BREAKER_REJECTED
        else:
            ticket.epoch = self.breaker.epoch
            ticket.admitted = True
            return None
        ticket.kind = kind
        self._give_back(ticket, now)
        return kind

    def settle(self, ticket: Ticket, done: float, outcome: int) -> None:
        """Step 3: the router answers an admitted call at ``done`` with ``outcome``
        (``FAILURE`` for a backend that refused it). The breaker records it, with the
        call's duration from its forward time; the limiter slot is given back."""
        if ticket.admitted:
            ticket.admitted = False
            self.record(outcome, done, ticket.epoch, ticket.forwarded)
        self._give_back(ticket, done)

    def queue_full(self, ticket: Ticket) -> None:
        """The backend refused an admitted call when it was forwarded (its queue is
        full): settled at once as a ``FAILURE`` of duration 0."""
        self.settle(ticket, ticket.forwarded, FAILURE)

    def release(self, ticket: Ticket, now: float) -> None:
        """The call ends without an answer (cancelled): the breaker's permit and the
        limiter slot are given back, nothing is recorded. Does nothing on a call
        already settled or answered at once."""
        if ticket.admitted:
            ticket.admitted = False
            self.breaker.release(ticket.epoch, now)
        self._give_back(ticket, now)

    def _give_back(self, ticket: Ticket, now: float) -> None:
        if ticket.holds:
            ticket.holds = False
            self.limiter.release(ticket.key, now)


def _fast_path(try_acquire, allow, record_outcome, p: float, uniform) -> tuple[Callable, Callable]:
    """``AdmissionChain.decide`` and ``AdmissionChain.record``: the same steps as
    ``admit`` + ``forward`` and ``settle``, without a ``Ticket`` per request."""

    def decide(key, now: float) -> int | None:
        """Steps 1 and 2 at once, for a limiter that neither delays nor holds
        (``at_once``): the kind answered at once (``RATE_LIMITED``, ``VALIDATION``,
        ``BREAKER_REJECTED``), or None: the breaker admitted the call in
        ``breaker.epoch`` (read it now) and it owes one ``record``."""
        if not try_acquire(key, now):
            return RATE_LIMITED
        if p and uniform() < p:
            return VALIDATION
        if not allow(now):
            return BREAKER_REJECTED
        return None

    def record(outcome: int, done: float, epoch: int, forwarded: float) -> None:
        """The breaker records a call admitted in ``epoch``, forwarded at ``forwarded``
        and answered at ``done`` (the duration rule: ``done - forwarded``)."""
        record_outcome(outcome, done, epoch, done - forwarded)

    return decide, record
