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
``litellm``        ``LiteLLMBreaker``: LiteLLM Router cooldowns, no half-open
``envoy``          ``EnvoyBreaker``: Envoy outlier ejection across an ``EjectionPool``
=================  ===============================================================

Every breaker has ``allow(now)``, ``epoch``, ``record(outcome, now, epoch,
duration=)``, ``release(epoch, now)`` (a cancelled call), ``advance(now)``,
``state``, ``transitions`` and ``trips`` (see ``core``: every admitted call ends
in one ``record`` or one ``release``), and for gateways ``available(now)`` (would
``allow`` admit now? no side effect) and ``throttled(now)`` (a 429 from the
deployment's own quota); each module's docstring states its library's rules.
"""

from __future__ import annotations

import numpy as np

from .core import BreakerBase, BreakerState, NoBreaker, Transition
from .default import CircuitBreaker
from .envoy import EjectionPool, EnvoyBreaker
from .hystrix import HystrixBreaker
from .litellm import LiteLLMBreaker
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
    "litellm": LiteLLMBreaker,
    "envoy": EnvoyBreaker,
}


def build_breaker(config, rng: np.random.Generator | None = None, pool: EjectionPool | None = None) -> BreakerBase:
    """The breaker a breaker config describes (``config.preset`` picks the class).

    ``rng`` feeds the presets that draw random numbers (resilience4j's randomized
    wait, envoy's enforcing percentage); without one they get a fresh, unseeded
    Generator. ``pool``: the gateway's deployments, one ``EjectionPool`` passed to
    every deployment's breaker: envoy counts its ejections there (none: a pool of
    one host), litellm reads from it whether the deployment has siblings (none:
    it is alone); the other presets ignore it."""
    preset = config.preset
    if preset == "resilience4j":
        return Resilience4jBreaker(config, rng)
    if preset == "envoy":
        return EnvoyBreaker(config, rng, pool)
    if preset == "litellm":
        return LiteLLMBreaker(config, pool)
    return PRESETS[preset](config)


__all__ = [
    "BreakerBase",
    "BreakerState",
    "CircuitBreaker",
    "EjectionPool",
    "EnvoyBreaker",
    "HystrixBreaker",
    "LiteLLMBreaker",
    "NoBreaker",
    "PRESETS",
    "PollyBreaker",
    "PybreakerBreaker",
    "Resilience4jBreaker",
    "Transition",
    "build_breaker",
]
