"""Where the breaker used to live: its names, re-exported from ``breakers``.

Import from ``simrouter.policies`` (or ``simrouter.policies.breakers``)."""

from .breakers import BreakerState, CircuitBreaker, NoBreaker, Transition, build_breaker

__all__ = ["BreakerState", "CircuitBreaker", "NoBreaker", "Transition", "build_breaker"]
