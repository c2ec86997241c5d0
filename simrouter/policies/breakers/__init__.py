"""Circuit breakers: one clock-free state machine per preset, built from config.

=================  ===============================================================
preset             breaker
=================  ===============================================================
``none``           ``NoBreaker``: always closed
``default``        ``CircuitBreaker``: simrouter's own (consecutive or rate trip)
``resilience4j``   ``Resilience4jBreaker``: sliding windows, slow calls, backoff
``pybreaker``      ``PybreakerBreaker``: consecutive failures, no probe cap
``hystrix``        ``HystrixBreaker``: 500 ms health snapshots, one probe
``polly``          ``PollyBreaker``: failure ratio over a sampling duration, one probe
=================  ===============================================================

Every breaker has ``allow(now)``, ``epoch``, ``record(outcome, now, epoch,
duration=)``, ``release(epoch, now)`` (a cancelled call), ``advance(now)``,
``state``, ``transitions`` and ``trips`` (see ``core``: every admitted call ends
in one ``record`` or one ``release``); each module's docstring states its
library's rules.
"""

from __future__ import annotations

import numpy as np

from .core import BreakerBase, BreakerState, NoBreaker, Transition
from .default import CircuitBreaker
from .hystrix import HystrixBreaker
from .polly import PollyBreaker
from .pybreaker import PybreakerBreaker
from .resilience4j import Resilience4jBreaker

PRESETS = {
    "none": NoBreaker,
    "default": CircuitBreaker,
    "resilience4j": Resilience4jBreaker,
    "pybreaker": PybreakerBreaker,
    "hystrix": HystrixBreaker,
    "polly": PollyBreaker,
}


def build_breaker(config, rng: np.random.Generator | None = None) -> BreakerBase:
    """The breaker a breaker config describes (``config.preset`` picks the class).

    ``rng`` feeds the presets that draw random numbers (resilience4j's randomized
    wait); without one they get a fresh, unseeded Generator."""
    if config.preset == "resilience4j":
        return Resilience4jBreaker(config, rng)
    return PRESETS[config.preset](config)


__all__ = [
    "BreakerBase",
    "BreakerState",
    "CircuitBreaker",
    "HystrixBreaker",
    "NoBreaker",
    "PRESETS",
    "PollyBreaker",
    "PybreakerBreaker",
    "Resilience4jBreaker",
    "Transition",
    "build_breaker",
]
