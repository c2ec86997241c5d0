"""Tokens-per-minute limits: a token bucket on prompt + max_tokens, as OpenAI counts.

``[limiter] tokens_per_minute = N`` (with any request ``algorithm``, or
``"none"``): a bucket of ``tokens_burst`` tokens (unset: ``N``, one minute's
worth) refilled continuously at ``N / 60`` tokens per second, one bucket per
key or one global (``scope``). A request costs ``prompt + max_tokens`` tokens,
counted at admission before the answer's real size is known. It is admitted
when the bucket holds its cost AND the request limiter admits it; only then is
the cost taken, so a request the request limiter rejects spends no tokens.
A request costing more than the bucket can ever hold is always rejected
(``rate_limited``), as a provider refuses a request over the limit.

So in any window of T seconds the admitted tokens are at most
``tokens_per_minute x T / 60 + burst`` (tests/test_llm_limiter.py checks it
with hypothesis). ``now`` must not go backwards.

Two shapes of the same rule: ``TokenLimited`` wraps a scoped request limiter
(the simulation's: one budget per key in a dict, kept for the run), and
``TokenLimit`` is ONE key's request limit and budget as a single limit (the
``RateLimit`` interface), for a table that creates and forgets per-key limits
itself (the live service's ``live.limiter_table``). ``TokenLimit`` also tells
the request being refused how long its budget needs to hold its cost
(``refused(wait_s)``: a 429's Retry-After).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from .token_bucket import TOKEN_TOLERANCE


class TokenBudget:
    """A continuously refilled bucket of ``burst`` tokens at ``per_second``."""

    __slots__ = ("per_second", "burst", "_tokens", "_last")

    def __init__(self, per_second: float, burst: float, now: float = 0.0):
        if per_second <= 0 or burst <= 0:
            raise ValueError("a token budget needs a rate > 0 and a burst > 0")
        self.per_second = per_second
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def available(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (refills as a side effect)."""
        elapsed = now - self._last
        if elapsed > 0:
            tokens = self._tokens + elapsed * self.per_second
            self._tokens = tokens if tokens < self.burst else self.burst
            self._last = now
        return self._tokens

    def can_take(self, cost: float, now: float) -> bool:
        return self.available(now) >= cost - TOKEN_TOLERANCE * max(1.0, cost)

    def take(self, cost: float, now: float) -> None:
        self.available(now)
        self._tokens -= cost

    def wait(self, cost: float, now: float) -> float:
        """Seconds from ``now`` until the bucket holds ``cost`` (0: it does; inf: never, over ``burst``)."""
        if cost > self.burst * (1.0 + TOKEN_TOLERANCE):
            return float("inf")
        missing = cost - self.available(now)
        return missing / self.per_second if missing > 0 else 0.0

    def try_take(self, cost: float, now: float) -> bool:
        if self.can_take(cost, now):
            self.take(cost, now)
            return True
        return False


class TokenLimited:
    """A scoped request limiter (``scope.KeyedLimiter`` / ``GlobalLimiter`` /
    ``NoLimiter``) plus a tokens-per-minute budget; ``cost()`` gives the tokens
    of the request being admitted (prompt + max_tokens)."""

    __slots__ = ("_inner", "_cost", "_per_second", "_burst", "_global", "_budgets", "delays", "holds", "rejected_tokens")

    def __init__(self, inner, tokens_per_minute: float, burst: float | None, scope: str, cost: Callable[[], int]):
        self._inner = inner
        self._cost = cost
        self._per_second = tokens_per_minute / 60.0
        self._burst = float(tokens_per_minute if burst is None else burst)
        self._global = scope == "global"
        self._budgets: dict[Hashable, TokenBudget] = {}
        self.delays = inner.delays
        self.holds = inner.holds
        self.rejected_tokens = 0  # requests rejected by the token budget

    def _budget(self, key: Hashable, now: float) -> TokenBudget:
        key = None if self._global else key
        budget = self._budgets.get(key)
        if budget is None:
            budget = self._budgets[key] = TokenBudget(self._per_second, self._burst, now)
        return budget

    def try_acquire(self, key: Hashable, now: float) -> bool:
        budget, cost = self._budget(key, now), self._cost()
        if not budget.can_take(cost, now):
            self.rejected_tokens += 1
            return False
        if not self._inner.try_acquire(key, now):
            return False
        budget.take(cost, now)
        return True

    def acquire(self, key: Hashable, now: float) -> float | None:
        budget, cost = self._budget(key, now), self._cost()
        if not budget.can_take(cost, now):
            self.rejected_tokens += 1
            return None
        delay = self._inner.acquire(key, now)
        if delay is not None:
            budget.take(cost, now)
        return delay

    def release(self, key: Hashable, now: float) -> None:
        self._inner.release(key, now)


class TokenLimit:
    """One key's request limit (a ``RateLimit``; None: no request limit) and token
    budget, as one limit: ``try_acquire`` / ``acquire`` / ``release`` at ``now`` with
    ``TokenLimited``'s rule (the budget must hold ``cost()``, then the request limit
    decides, then the cost is taken). When the budget refuses, ``refused(wait_s)``
    (if given) hears how long it needs to hold the cost (``TokenBudget.wait``)."""

    __slots__ = ("limit", "budget", "_cost", "_refused", "delays", "holds")

    def __init__(self, limit, budget: TokenBudget, cost: Callable[[], int], refused: Callable[[float], None] | None = None):
        self.limit = limit
        self.budget = budget
        self._cost = cost
        self._refused = refused
        self.delays = bool(limit is not None and limit.delays)
        self.holds = bool(limit is not None and limit.holds)

    def _affordable(self, now: float) -> float | None:
        """The request's cost when the budget holds it, else None (``refused`` told)."""
        cost = self._cost()
        if self.budget.can_take(cost, now):
            return cost
        if self._refused is not None:
            self._refused(self.budget.wait(cost, now))
        return None

    def try_acquire(self, now: float) -> bool:
        cost = self._affordable(now)
        if cost is None or (self.limit is not None and not self.limit.try_acquire(now)):
            return False
        self.budget.take(cost, now)
        return True

    def acquire(self, now: float) -> float | None:
        cost = self._affordable(now)
        if cost is None:
            return None
        delay = 0.0 if self.limit is None else self.limit.acquire(now)
        if delay is not None:
            self.budget.take(cost, now)
        return delay

    def release(self, now: float) -> None:
        if self.limit is not None:
            self.limit.release(now)
