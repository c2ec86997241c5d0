"""Building and feeding a run on the LLM backend (``backend.model = "llm"``).

An LLM scenario always runs on the SimPy engine (``client.PolicyRouter``'s
path, as ``simulate(engine="events")``): the continuous-batching backend
(``llm_backend``) decides a request's end only as later requests join the
batch, which the fast engine's resolve-at-admission cannot express. The
pieces: the token source (``requests``), the token limiter composed with the
request limiter (``policies.limiters.tokens``), the backend, and
``llm_router.LLMRouter``; behind ``[[deployments]]`` (``llm_gateway``) the
same pieces per deployment (``llm_backend``, ``token_limited``). A
``[workload.tokens] trace`` replaces the open arrival process by the file's
arrival times (``trace_arrivals``).
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

from ..distributions import VariateStream
from ..policies import HedgePolicy, RetryBudget, RetryPolicy, build_limiter
from ..policies.limiters.tokens import TokenLimited
from . import streams
from .llm_backend import LLMBackend
from .llm_router import LLMRouter
from .model import SimRouter
from .requests import TokenSource, TraceSource, load_trace


def _uniform(rng, size):
    return rng.random(size)


def token_source(scenario, rng):
    """The logical requests' tokens: the trace's, or drawn from [workload.tokens]."""
    from ..config.sections import TokensConfig

    tokens = scenario.workload.tokens or TokensConfig()
    max_tokens = scenario.request.max_tokens
    if tokens.trace:
        return TraceSource(load_trace(tokens.trace, max_tokens)[1])
    return TokenSource(tokens, rng(streams.PROMPT_TOKENS), rng(streams.OUTPUT_TOKENS), max_tokens)


def llm_backend(env: simpy.Environment, config, faults, rng, *key: int) -> LLMBackend:
    """A batching backend of ``config`` with its outcome and fault streams (``key``:
    a deployment's ``streams.deployment_key``; none: the single backend's)."""
    return LLMBackend(
        env,
        config,
        faults,
        uniform=VariateStream(_uniform, rng(streams.BACKEND_OUTCOME, *key)),
        fault_uniform=VariateStream(_uniform, rng(streams.FAULT_OUTCOME, *key)),
    )


def token_limited(limiter, config, tokens):
    """``limiter`` with ``config.tokens_per_minute`` on top when set (``tokens()``: the cost
    of the copy being admitted, ``LLMRouter.admitting_tokens``), else ``limiter``."""
    if config.tokens_per_minute is None:
        return limiter
    return TokenLimited(limiter, config.tokens_per_minute, config.tokens_burst, config.scope, tokens)


class AdmittingTokens:
    """``tokens()`` for a limiter built before its router: the router's
    ``admitting_tokens`` once ``bind`` gave it the router."""

    __slots__ = ("_router",)

    def __init__(self) -> None:
        self._router = None

    def bind(self, router) -> None:
        self._router = router

    def __call__(self) -> int:
        return self._router.admitting_tokens()


def policies(scenario):
    """(RetryPolicy, HedgePolicy, RetryBudget or None) of the scenario's ``[router.retry]`` / ``[router.hedge]``."""
    c = scenario.router.retry
    budget = RetryBudget(c.budget_ratio, c.budget_window, c.budget_min_per_s) if c.budget else None
    return RetryPolicy(c), HedgePolicy(scenario.router.hedge), budget


def build_llm_router(env: simpy.Environment, scenario, breaker, recorder, rng) -> LLMRouter:
    backend = llm_backend(env, scenario.backend, scenario.faults, rng)
    tokens = AdmittingTokens()
    limiter = token_limited(build_limiter(scenario.limiter), scenario.limiter, tokens)
    validation = VariateStream(_uniform, rng(streams.VALIDATION))
    core = SimRouter(env, scenario, limiter, breaker, backend, recorder, validation_uniform=validation)
    retry, hedge, budget = policies(scenario)
    router = LLMRouter(core, retry, hedge, budget, jitter=VariateStream(_uniform, rng(streams.RETRY_JITTER)), source=token_source(scenario, rng), backends=[backend])
    tokens.bind(router)
    return router


def trace_arrivals(env: simpy.Environment, router, times: list[float], keys: VariateStream, stop_at: float, finished: list[float]) -> Generator:
    """Arrivals at a trace's times (before ``stop_at``), user keys at random."""
    for t in times:
        if t >= stop_at:
            break
        if t > env.now:
            yield env.timeout(t - env.now)
        router.call(keys.next(), env.now)
    finished.append(env.now)


def start_trace(env: simpy.Environment, scenario, router, rng) -> list[float]:
    """Start a trace's arrival process; returns the list it appends to when it stops."""
    finished: list[float] = []
    users = scenario.workload.users
    keys = VariateStream(lambda g, n: g.integers(0, users, n), rng(streams.USER_KEYS))
    times, _ = load_trace(scenario.workload.tokens.trace)
    env.process(trace_arrivals(env, router, times, keys, scenario.duration, finished))
    return finished
