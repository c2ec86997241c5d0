"""Building and feeding a run on the LLM backend (``backend.model = "llm"``).

An LLM scenario always runs on the SimPy engine (``client.PolicyRouter``'s
path, as ``simulate(engine="events")``): the continuous-batching backend
(``llm_backend``) decides a request's end only as later requests join the
batch, which the fast engine's resolve-at-admission cannot express. The
pieces: the token source (``requests``), the token limiter composed with the
request limiter (``policies.limiters.tokens``), the backend, and
``llm_router.LLMRouter``. A ``[workload.tokens] trace`` replaces the open
arrival process by the file's arrival times (``trace_arrivals``).
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


def build_llm_router(env: simpy.Environment, scenario, breaker, recorder, rng) -> LLMRouter:
    router_box: list[LLMRouter] = []

    def current():
        return router_box[0].current()

    backend = LLMBackend(
        env,
        scenario.backend,
        scenario.faults,
        current,
        uniform=VariateStream(_uniform, rng(streams.BACKEND_OUTCOME)),
        fault_uniform=VariateStream(_uniform, rng(streams.FAULT_OUTCOME)),
    )
    lim = scenario.limiter
    limiter = build_limiter(lim)
    if lim.tokens_per_minute is not None:
        limiter = TokenLimited(limiter, lim.tokens_per_minute, lim.tokens_burst, lim.scope, lambda: current().admission_tokens)
    validation = VariateStream(_uniform, rng(streams.VALIDATION))
    core = SimRouter(env, scenario, limiter, breaker, backend, recorder, validation_uniform=validation)
    c = scenario.router.retry
    budget = RetryBudget(c.budget_ratio, c.budget_window, c.budget_min_per_s) if c.budget else None
    router = LLMRouter(
        core,
        RetryPolicy(c),
        HedgePolicy(scenario.router.hedge),
        budget,
        jitter=VariateStream(_uniform, rng(streams.RETRY_JITTER)),
        source=token_source(scenario, rng),
    )
    router_box.append(router)
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
