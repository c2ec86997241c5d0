"""Building a run of LLM deployments behind the gateway (``[[deployments]]``, ``backend.model = "llm"``).

``build_llm_gateway_router``: ``llm_router.LLMRouter`` with the gateway as its
target (``gateway.GatewayTarget``), each deployment its own batching backend
and, with ``tokens_per_minute``, its own token limiter
(``gateway.build_deployments`` with ``llm_run``'s pieces); the router-wide
``[limiter]`` counts tokens as without a gateway. Always the SimPy engine.
"""

from __future__ import annotations

import simpy

from ..distributions import VariateStream
from ..metrics import AttemptRecorder
from ..policies import build_limiter
from . import streams
from .gateway import GatewayRouter, build_deployments
from .llm_router import LLMRouter
from .llm_run import AdmittingTokens, policies, token_limited, token_source


def _uniform(rng, size):
    return rng.random(size)


def build_llm_gateway_router(env: simpy.Environment, scenario, recorder, rng) -> LLMRouter:
    """Behind ``[[deployments]]`` on the LLM backend: ``LLMRouter`` with the gateway as
    its target, each deployment its own batching backend (``gateway.build_deployments``)."""
    tokens = AdmittingTokens()
    gateway, deployments = build_deployments(env, scenario, rng, cancels=True, tokens=tokens)
    limiter = token_limited(build_limiter(scenario.limiter), scenario.limiter, tokens)
    validation = VariateStream(_uniform, rng(streams.VALIDATION))
    core = GatewayRouter(env, scenario, limiter, gateway, deployments, recorder, AttemptRecorder(), validation_uniform=validation)
    retry, hedge, budget = policies(scenario)
    router = LLMRouter(
        core, retry, hedge, budget, jitter=VariateStream(_uniform, rng(streams.RETRY_JITTER)), source=token_source(scenario, rng),
        backends=[d.backend for d in deployments], target=core.target,
    )
    tokens.bind(router)
    return router
