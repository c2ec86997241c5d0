"""Clock-free admission policies shared by the simulation and the real-clock engine.

Every policy takes the current time as an argument and never reads a clock:
``limiter.try_acquire(key, now)``, ``breaker.allow(now)``,
``breaker.record(success, now)``. The SimPy engine passes ``env.now``; the live
service passes ``time.monotonic()``.
"""

from .breaker import BreakerState, CircuitBreaker, NoBreaker, Transition, build_breaker
from .limiter import KeyedLimiter, NoLimiter, TokenBucket, build_limiter

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "KeyedLimiter",
    "NoBreaker",
    "NoLimiter",
    "TokenBucket",
    "Transition",
    "build_breaker",
    "build_limiter",
]
