"""Clock-free admission policies shared by the simulation and the real-clock engine.

Every policy takes the current time as an argument and never reads a clock:
``limiter.try_acquire(key, now)``, ``breaker.allow(now)``,
``breaker.record(outcome, now, epoch, duration=)``, ``breaker.release(epoch, now)``, ``retry_budget.try_withdraw(now)``. The SimPy engine passes ``env.now``; the live
service passes ``time.monotonic()``. Behind a gateway (``[[deployments]]``): the
``Gateway`` (``gateway``) over per-deployment chains, its routing strategies
(``routing``: ``RoutingStrategy``, ``build_routing``, ``ROUTING_STRATEGIES``,
``NO_ANSWER``) and the deployment breakers ``LiteLLMBreaker`` / ``EnvoyBreaker``
sharing one ``EjectionPool``.
"""

from .breakers import (
    BreakerState,
    CircuitBreaker,
    EjectionPool,
    EnvoyBreaker,
    HystrixBreaker,
    LiteLLMBreaker,
    NoBreaker,
    PollyBreaker,
    PybreakerBreaker,
    Resilience4jBreaker,
    Transition,
    build_breaker,
)
from .gateway import Gateway, build_gateway
from .hedge import HedgePolicy
from .limiters import GCRA, ConcurrencyLimit, FixedWindow, GlobalLimiter, KeyedLimiter, LeakyBucket, NoLimiter, SlidingWindowCounter, SlidingWindowLog, TokenBucket, build_limiter
from .retry import Backoff, RetryPolicy
from .retry_budget import RetryBudget
from .routing import NO_ANSWER, ROUTING_STRATEGIES, RoutingStrategy, build_routing

__all__ = [
    "GCRA",
    "NO_ANSWER",
    "ROUTING_STRATEGIES",
    "Backoff",
    "BreakerState",
    "CircuitBreaker",
    "ConcurrencyLimit",
    "EjectionPool",
    "EnvoyBreaker",
    "FixedWindow",
    "Gateway",
    "GlobalLimiter",
    "HedgePolicy",
    "HystrixBreaker",
    "KeyedLimiter",
    "LeakyBucket",
    "LiteLLMBreaker",
    "NoBreaker",
    "NoLimiter",
    "PollyBreaker",
    "PybreakerBreaker",
    "Resilience4jBreaker",
    "RetryBudget",
    "RetryPolicy",
    "RoutingStrategy",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "TokenBucket",
    "Transition",
    "build_breaker",
    "build_gateway",
    "build_limiter",
    "build_routing",
]
