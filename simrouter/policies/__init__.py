"""Clock-free admission policies shared by the simulation and the real-clock engine.

Every policy takes the current time as an argument and never reads a clock:
``limiter.try_acquire(key, now)``, ``breaker.allow(now)``,
``breaker.record(outcome, now, epoch, duration=)``, ``breaker.release(epoch, now)``, ``retry_budget.try_withdraw(now)``. The SimPy engine passes ``env.now``; the live
service passes ``time.monotonic()``.
"""

from .breakers import BreakerState, CircuitBreaker, HystrixBreaker, NoBreaker, PollyBreaker, PybreakerBreaker, Resilience4jBreaker, Transition, build_breaker
from .hedge import HedgePolicy
from .limiters import GCRA, ConcurrencyLimit, FixedWindow, GlobalLimiter, KeyedLimiter, LeakyBucket, NoLimiter, SlidingWindowCounter, SlidingWindowLog, TokenBucket, build_limiter
from .retry import Backoff, RetryPolicy
from .retry_budget import RetryBudget

__all__ = [
    "GCRA",
    "Backoff",
    "BreakerState",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "FixedWindow",
    "GlobalLimiter",
    "HedgePolicy",
    "HystrixBreaker",
    "KeyedLimiter",
    "LeakyBucket",
    "NoBreaker",
    "NoLimiter",
    "PollyBreaker",
    "PybreakerBreaker",
    "Resilience4jBreaker",
    "RetryBudget",
    "RetryPolicy",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "TokenBucket",
    "Transition",
    "build_breaker",
    "build_limiter",
]
