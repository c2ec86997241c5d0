"""Rate limiters: admit, delay or reject a request at time ``now``, without a clock.

=========================  ==========================================  ==================
algorithm                  rule                                        mirrors
=========================  ==========================================  ==================
``token_bucket``           continuous refill, reject when empty        Envoy local rate limit
``gcra``                   theoretical arrival time, ``retry_after``   redis-cell, throttled
``leaky_bucket``           excess over rate, reject over burst,        nginx ``limit_req``
                           delay (smooth) unless ``nodelay``
``sliding_window_log``     exact log of the last ``size`` seconds      ``limits`` moving window
``sliding_window_counter`` weighted previous + current window          Cloudflare, ``limits``
``fixed_window``           counter per window                          ``limits`` fixed window
``concurrency``            at most ``max_in_flight`` unanswered        Envoy circuit-breaking caps
=========================  ==========================================  ==================

``build_limiter(config)`` turns a ``LimiterConfig`` into a scoped limiter (one
limit per user key, or one global limit); ``protocol`` describes the
``try_acquire`` / ``acquire`` / ``release`` interface every limiter offers.
"""

from __future__ import annotations

from .concurrency import ConcurrencyLimit
from .fixed_window import FixedWindow
from .gcra import GCRA
from .leaky_bucket import LeakyBucket
from .protocol import RateLimit
from .scope import GlobalLimiter, KeyedLimiter, NoLimiter
from .sliding_window_counter import SlidingWindowCounter
from .sliding_window_log import SlidingWindowLog
from .token_bucket import TokenBucket


def limit_factory(config):
    """``factory(now) -> RateLimit`` for one key, from a ``LimiterConfig``."""
    c = config
    factories = {
        "token_bucket": lambda now: TokenBucket(c.rate, c.burst, now),
        "gcra": lambda now: GCRA(c.rate, c.burst, now),
        "leaky_bucket": lambda now: LeakyBucket(c.rate, c.burst, c.nodelay, c.delay),
        "sliding_window_log": lambda now: SlidingWindowLog(c.size, c.limit),
        "sliding_window_counter": lambda now: SlidingWindowCounter(c.size, c.limit),
        "fixed_window": lambda now: FixedWindow(c.size, c.limit, c.align),
        "concurrency": lambda now: ConcurrencyLimit(c.max_in_flight),
    }
    return factories[c.algorithm]


def build_limiter(config) -> KeyedLimiter | GlobalLimiter | NoLimiter:
    """The limiter a ``LimiterConfig`` describes, keyed by user id."""
    if config.algorithm == "none":
        return NoLimiter()
    factory = limit_factory(config)
    if config.scope == "global":
        return GlobalLimiter(factory(0.0))
    return KeyedLimiter(factory)


__all__ = [
    "GCRA",
    "ConcurrencyLimit",
    "FixedWindow",
    "GlobalLimiter",
    "KeyedLimiter",
    "LeakyBucket",
    "NoLimiter",
    "RateLimit",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "TokenBucket",
    "build_limiter",
    "limit_factory",
]
