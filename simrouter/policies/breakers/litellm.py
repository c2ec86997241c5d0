"""The ``litellm`` preset: LiteLLM Router's deployment cooldowns, clock-free.

Sources: ``litellm/router_utils/cooldown_handlers.py`` (``_should_cooldown_deployment``,
``should_cooldown_based_on_allowed_fails_policy``, ``_is_cooldown_required``),
``router_callbacks/track_deployment_metrics.py``, ``caching/in_memory_cache.py``,
``router_utils/cooldown_cache.py`` and ``constants.py``; docs
https://docs.litellm.ai/docs/routing#cooldowns ("allowed_fails: cooldown model if
it fails > allowed_fails calls in a minute"; defaults allowed_fails 3, cooldown_time
5 s) and https://docs.litellm.ai/docs/router/learn/reliability.

**The current minute.** LiteLLM counts a deployment's successes and its failures
in two in-memory counters (``{id}:successes``, ``{id}:fails``), each created by its
first increment with a 60 s TTL that later increments do not extend
(``InMemoryCache.set_cache`` keeps a live key's expiry). So each counter covers a
60 s window opened by its own first outcome (the two windows need not line up),
and the next outcome after it expired opens a new one. Here an outcome exactly
at the expiry opens the new window.

Which rules apply depends on ``allowed_fails``, as in LiteLLM::

    unset      LiteLLM's default (3), which the Router treats as unset
               (_is_allowed_fails_set_on_router): each failure is counted, then
               the deployment cools down if
                 - it is a 429 (``throttled``) and the deployment has siblings;
                 - fails / (successes + fails) > failure_threshold_percent with
                   successes + fails >= failure_threshold_minimum_requests, and it
                   has siblings;
                 - every request failed (100 %) with successes + fails >=
                   single_deployment_traffic_failure_threshold, siblings or not.
    set        as a Router's allowed_fails (the "v1 logic (Legacy)" branch): a
               failed_calls counter with a TTL of cooldown_time from its first
               failure; the failure that would take it above allowed_fails cools
               the deployment down (the (allowed_fails + 1)-th within cooldown_time
               of the first), any other is counted. A 429 is one more failure.
               This applies to a lone deployment too (a deployment's own
               model_info.allowed_fails would spare it; not modelled).

A cooldown (OPEN) rejects every call for ``cooldown_time`` from the failure that
caused it (the cooldown key's TTL); a failure during it does not extend it (the
live key keeps its expiry). Then the deployment is back, CLOSED directly: no
half-open state, no probe; the transition is logged at its due time. CLOSED
admits every call.

Epochs are not honoured, as in LiteLLM: every outcome goes into the counters,
whichever state it was admitted in. Timeouts cool down like server errors
(LiteLLM's 408 / Timeout); ``count_timeouts = false`` ignores them (neither
counter). A cancelled call (``release``) counts nothing. Siblings: the gateway's
pool of deployments (``EjectionPool.hosts`` > 1); without a pool the deployment
is alone (a single backend: only the 100 % rule can cool it down, as LiteLLM
spares a model group's only deployment).

Not modelled: statuses LiteLLM never retries (401, 404) that cool down at once
(simrouter's failures are server errors); the 1 s cache of active cooldowns on
LiteLLM's async routing path; Redis-shared counters; Retry-After headers and
per-deployment ``cooldown_time`` overrides (set this section's per deployment).
"""

from __future__ import annotations

import math

from .core import BreakerBase, BreakerState

CLOSED, OPEN = BreakerState.CLOSED, BreakerState.OPEN
MINUTE = 60.0  # the TTL of LiteLLM's per-deployment success and failure counters


class ExpiringCounter:
    """A counter in LiteLLM's in-memory cache: its first increment creates it
    with a TTL that later increments keep; it reads 0 once expired."""

    __slots__ = ("ttl", "_value", "_expires_at")

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._value = 0
        self._expires_at = -math.inf

    def get(self, now: float) -> int:
        return self._value if now < self._expires_at else 0

    def add(self, now: float) -> None:
        if now >= self._expires_at:
            self._value = 0
            self._expires_at = now + self.ttl
        self._value += 1


class LiteLLMBreaker(BreakerBase):
    """LiteLLM's cooldown of one deployment; ``pool`` tells whether it has siblings."""

    __slots__ = ("_alone", "_successes", "_fails", "_failed_calls", "_cooldown_until")

    def __init__(self, config, pool=None):
        super().__init__(config)
        self._alone = pool is None or pool.hosts <= 1
        self._successes = ExpiringCounter(MINUTE)
        self._fails = ExpiringCounter(MINUTE)
        self._failed_calls = ExpiringCounter(config.cooldown_time)
        self._cooldown_until = 0.0

    @property
    def cooldown_until(self) -> float | None:
        """When the current cooldown ends (None: not cooling down, as of the last call)."""
        return self._cooldown_until if self.state is OPEN else None

    def allow(self, now: float) -> bool:
        if self.state is OPEN:
            self.advance(now)
        return self.state is CLOSED

    def available(self, now: float) -> bool:
        return self.state is CLOSED or now >= self._cooldown_until

    def advance(self, now: float) -> None:
        if self.state is OPEN and now >= self._cooldown_until:
            self._move(CLOSED, self._cooldown_until)

    def record(self, outcome: int, now: float, epoch: int | None = None, duration: float = 0.0) -> None:
        self.advance(now)
        failed = self.counted_failure(outcome)
        if failed is None:
            return
        if failed:
            self._failure(now, rate_limited=False)
        else:
            self._successes.add(now)

    def release(self, epoch: int, now: float) -> None:
        """A cancelled call: LiteLLM counts nothing for it."""

    def throttled(self, now: float) -> None:
        """A 429 from the deployment's own quota: a failure that cools it down at once (unset allowed_fails)."""
        self.advance(now)
        self._failure(now, rate_limited=True)

    def _failure(self, now: float, rate_limited: bool) -> None:
        self._fails.add(now)  # deployment_callback_on_failure counts it before deciding
        if self._should_cool_down(now, rate_limited) and self.state is CLOSED:
            self._cooldown_until = now + self.config.cooldown_time
            self._move(OPEN, now)

    def _should_cool_down(self, now: float, rate_limited: bool) -> bool:
        c = self.config
        if c.allowed_fails is not None:
            if self._failed_calls.get(now) + 1 > c.allowed_fails:
                return True
            self._failed_calls.add(now)
            return False
        if rate_limited and not self._alone:
            return True
        fails = self._fails.get(now)
        total = fails + self._successes.get(now)
        if fails == total and total >= c.single_deployment_traffic_failure_threshold:
            return True
        return not self._alone and total >= c.failure_threshold_minimum_requests and fails / total > c.failure_threshold_percent
