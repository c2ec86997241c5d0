"""The reference service's per-user limiter table, bounded.

The simulation keeps one limit per user key for ever (``KeyedLimiter``): its
keys are the workload's few users. A service meets any number of keys, so
``LimiterTable`` offers the same ``try_acquire`` / ``acquire`` / ``release``
(``simrouter.policies.limiters.protocol``) over a table that forgets keys:

* **idle keys back to their fresh state** are evicted. A key is idle once no
  request of it is held (``acquire`` without ``release``) and it has not been
  used for ``idle_horizon(config)`` seconds, after which its limit decides
  exactly as a new one would (the next request creates it afresh):

  ======================== ===============================================
  token_bucket             ``burst / rate`` (the bucket is full again)
  gcra                     ``(burst + 1) / rate`` (``tat`` is in the past)
  sliding_window_log       ``size`` (the log is empty)
  sliding_window_counter   ``2 * size`` (current and previous windows empty)
  fixed_window             ``size`` (the window has rolled over)
  concurrency              0 (nothing in flight)
  leaky_bucket             ``max(60, (burst + 1) / rate)``: nginx's own rule
                           (``ngx_http_limit_req_expire`` drops a node idle
                           for 60 s whose excess has drained; a new node
                           starts at excess 0, one request below a drained one)
  ======================== ===============================================

  Eviction is from the least recently used end, at most a few keys per call
  (amortised O(1)).
* **at most** ``max_keys`` keys (``MAX_KEYS`` by default): beyond that the least
  recently used key not holding a request is dropped even if not idle (as nginx
  does when its zone is full). Only then can a decision differ from the
  unbounded table's: that key's next request finds a fresh limit.

``scope = "global"`` and ``algorithm = "none"`` have no table:
``build_limiter`` 's own objects are used.

**Tokens per minute** (``limiter.tokens_per_minute``, the LLM backend;
``policies.limiters.tokens``): each key's limit is a ``TokenLimit``, its
request limit (none with ``algorithm = "none"``) and its token budget, so a
key's budget is created and forgotten with it; a key is idle once both are as
fresh ones: the request limit's horizon above and the budget's
``tokens_burst / (tokens_per_minute / 60)`` (the bucket is full again), the
larger of the two. ``scope = "global"``: one ``TokenLimit`` for everyone. The
caller gives ``cost()``, the tokens of the request being admitted (prompt +
max_tokens), and may give ``refused(wait_s)``, told when the budget refuses one.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Hashable

from ..policies import build_limiter
from ..policies.limiters import GlobalLimiter, limit_factory
from ..policies.limiters.tokens import TokenBudget, TokenLimit

MAX_KEYS = 100_000
NGINX_EXPIRE_S = 60.0  # ngx_http_limit_req_expire: nodes idle for less are kept


def idle_horizon(config) -> float:
    """Seconds after its last use at which an idle key's limit is as a fresh one's."""
    c = config
    if c.tokens_per_minute is not None:
        burst = c.tokens_per_minute if c.tokens_burst is None else c.tokens_burst
        requests = 0.0 if c.algorithm == "none" else idle_horizon(_without_tokens(c))
        return max(requests, burst / (c.tokens_per_minute / 60.0))
    horizons = {
        "token_bucket": lambda: c.burst / c.rate,
        "gcra": lambda: (c.burst + 1) / c.rate,
        "leaky_bucket": lambda: max(NGINX_EXPIRE_S, (c.burst + 1) / c.rate),
        "sliding_window_log": lambda: c.size,
        "sliding_window_counter": lambda: 2 * c.size,
        "fixed_window": lambda: c.size,
        "concurrency": lambda: 0.0,
    }
    return float(horizons[c.algorithm]())


def _without_tokens(config):
    return dataclasses.replace(config, tokens_per_minute=None, tokens_burst=None)


def token_limit_factory(config, cost: Callable[[], int], refused: Callable[[float], None] | None = None):
    """``factory(now) -> TokenLimit`` for one key: the request limit (none with
    ``algorithm = "none"``) and a full budget of ``tokens_burst`` refilled at
    ``tokens_per_minute / 60`` per second."""
    requests = None if config.algorithm == "none" else limit_factory(config)
    per_second = config.tokens_per_minute / 60.0
    burst = config.tokens_per_minute if config.tokens_burst is None else config.tokens_burst

    def factory(now: float) -> TokenLimit:
        return TokenLimit(requests(now) if requests else None, TokenBudget(per_second, burst, now), cost, refused)

    return factory


def build_service_limiter(config, max_keys: int = MAX_KEYS, cost: Callable[[], int] | None = None, refused: Callable[[float], None] | None = None):
    """A ``LimiterTable`` for a per-user limiter, else ``build_limiter(config)``; with
    ``tokens_per_minute``, ``TokenLimit`` s costing ``cost()`` (module docstring)."""
    if config.tokens_per_minute is not None:
        if cost is None:
            raise ValueError("limiter.tokens_per_minute: the service needs each request's token cost (cost=)")
        if config.scope == "global":
            return GlobalLimiter(token_limit_factory(config, cost, refused)(0.0))
        return LimiterTable(config, max_keys, token_limit_factory(config, cost, refused))
    if config.algorithm == "none" or config.scope == "global":
        return build_limiter(config)
    return LimiterTable(config, max_keys)


class _Entry:
    __slots__ = ("limit", "last", "held")

    def __init__(self, limit, now: float):
        self.limit = limit
        self.last = now
        self.held = 0


class LimiterTable:
    """One limit per key, created on first use, forgotten when idle (module docstring)."""

    def __init__(self, config, max_keys: int = MAX_KEYS, factory: Callable | None = None):
        """``factory(now)``: one key's fresh limit (default: ``limit_factory(config)``)."""
        if max_keys < 1:
            raise ValueError(f"max_keys: expected at least 1, got {max_keys}")
        self._factory = factory or limit_factory(config)
        self.horizon = idle_horizon(config)
        self.max_keys = max_keys
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        sample = self._factory(0.0)
        self.delays = sample.delays
        self.holds = sample.holds

    def __len__(self) -> int:
        return len(self._entries)

    def _entry(self, key: Hashable, now: float) -> _Entry:
        self._expire(now)
        entries = self._entries
        entry = entries.get(key)
        if entry is None:
            entry = entries[key] = _Entry(self._factory(now), now)
            if len(entries) > self.max_keys:
                self._drop_one_not_held(key)
        else:
            entry.last = now
            entries.move_to_end(key)
        return entry

    def _expire(self, now: float, budget: int = 4) -> None:
        """Evict up to ``budget`` idle keys from the least recently used end."""
        entries = self._entries
        horizon = self.horizon
        for _ in range(budget):
            if not entries:
                return
            key, entry = next(iter(entries.items()))
            if entry.held or now - entry.last < horizon:
                return
            del entries[key]

    def _drop_one_not_held(self, keep: Hashable) -> None:
        for key, entry in self._entries.items():
            if key != keep and not entry.held:
                del self._entries[key]
                return

    def try_acquire(self, key: Hashable, now: float) -> bool:
        return self._entry(key, now).limit.try_acquire(now)

    def acquire(self, key: Hashable, now: float) -> float | None:
        entry = self._entry(key, now)
        delay = entry.limit.acquire(now)
        if delay is not None:
            entry.held += 1
        return delay

    def release(self, key: Hashable, now: float) -> None:
        entry = self._entries[key]  # held keys are never evicted
        entry.limit.release(now)
        entry.held -= 1
        entry.last = max(entry.last, now)
        self._entries.move_to_end(key)
