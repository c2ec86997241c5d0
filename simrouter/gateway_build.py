"""The clock-free policies of a scenario's gateway, for both engines and the live service.

``build_gateway_policies(scenario, rng)`` gives, for each ``[[deployments]]``
entry in order, a ``DeploymentPolicies``: its name, its effective backend
config (its ``backend`` keys over the top-level ``[backend]``), its fault
windows (the top-level ones and its own), its admission chain (its own
limiter, none when unset; its breaker, its own config else the top-level
``[breaker]``, one instance each, all in one ``EjectionPool``: Envoy's
``max_ejection_percent`` and LiteLLM's "has siblings" are across one gateway's
deployments) and its breaker preset; and the ``policies.gateway.Gateway`` that
routes over those chains (``[router]``'s routing, fallbacks and latency TTL,
weights from the entries).

No backend and no clock: the simulation (``sim.gateway.build_deployments``)
adds its simulated backends, the live service (``live.gateway_service``) its
stand-in ones. ``rng(source, *index)`` is the caller's stream factory
(``sim.streams``: deployment ``d``'s breaker draws from ``BREAKER`` keyed by
``streams.deployment_key(d)``, the routing strategy from ``ROUTING``), so both
make the same draws from the same seed. It imports no engine (only the
streams' keys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .config import BackendConfig, FaultWindow, Scenario
from .distributions import VariateStream
from .policies import build_breaker, build_limiter
from .policies.breakers import EjectionPool
from .policies.chain import AdmissionChain
from .policies.gateway import Gateway, build_gateway
from .policies.limiters import NoLimiter
from .policies.limiters.tokens import TokenLimited
from .sim import streams

Rng = Callable[..., np.random.Generator]  # rng(source, *index) -> a generator


@dataclass(frozen=True, eq=False)
class DeploymentPolicies:
    """One deployment's clock-free part (module docstring)."""

    name: str
    index: int
    config: BackendConfig  # the top-level [backend] with its own keys laid over
    faults: list[FaultWindow]  # the windows it sees: the top-level ones and its own
    chain: AdmissionChain  # its limiter and its breaker
    preset: str  # its breaker's preset

    @property
    def breaker(self):
        return self.chain.breaker


def _uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size)


def _no_draw() -> float:  # pragma: no cover - a deployment chain never draws (p_validation 0)
    raise AssertionError("a deployment's chain draws no validation")


def build_gateway_policies(scenario: Scenario, rng: Rng, tokens: Callable[[], int] | None = None) -> tuple[Gateway, list[DeploymentPolicies]]:
    """(the gateway, each deployment's policies) of ``scenario`` (module docstring).
    ``tokens()``: the token cost of the attempt being admitted, for a deployment
    limiter with ``tokens_per_minute`` (LLM deployments: ``LLMRouter.admitting_tokens``)."""
    pool = EjectionPool(len(scenario.deployments))
    deployments = []
    for index, entry in enumerate(scenario.deployments):
        limiter = build_limiter(entry.limiter) if entry.limiter is not None else NoLimiter()
        if entry.limiter is not None and entry.limiter.tokens_per_minute is not None:
            if tokens is None:
                raise ValueError(f"deployments.{index}.limiter.tokens_per_minute needs the engine's token source")
            limiter = TokenLimited(limiter, entry.limiter.tokens_per_minute, entry.limiter.tokens_burst, entry.limiter.scope, tokens)
        breaker_config = entry.breaker_of(scenario.breaker)
        breaker = build_breaker(breaker_config, rng(streams.BREAKER, *streams.deployment_key(index)), pool=pool)
        chain = AdmissionChain(limiter, breaker, 0.0, _no_draw)  # validation is drawn once, at the router
        deployments.append(
            DeploymentPolicies(entry.name, index, entry.backend_of(scenario.backend), entry.faults_of(scenario.faults), chain, breaker_config.preset)
        )
    routing_uniform = VariateStream(_uniform, rng(streams.ROUTING))
    gateway = build_gateway([d.chain for d in deployments], scenario.router, [d.weight for d in scenario.deployments], routing_uniform.next)
    return gateway, deployments


__all__ = ["DeploymentPolicies", "build_gateway_policies"]
