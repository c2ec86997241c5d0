"""``simulate``: run a scenario in simulated time and return a ``RunResult``.

The run ends when every user has finished (closed workloads), arrivals have
stopped at ``duration`` (open workloads), and every admitted request has been
answered: no request is left uncounted.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import simpy

from ..config import Scenario, load_scenario
from ..distributions import Exponential, VariateStream
from ..metrics import Recorder
from ..policies import HedgePolicy, RetryBudget, RetryPolicy, build_breaker, build_limiter
from ..result import RunResult
from ..warmup import resolve_warmup
from ..workload import open_schedule
from . import streams
from .backend import Backend, ServiceModel
from .client import PolicyRouter
from .event_backend import EventBackend
from .model import SimRouter, closed_user, open_arrivals


def _uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size)


def simulate(scenario: Scenario | str | Path, seed: int = 1, overrides=(), replication: int = 0, replications: int | None = None, **replication_options):
    """Simulate ``scenario`` (a Scenario, built-in name or TOML path) once -> ``RunResult``.

    With ``replications=R`` (or ``precision=``): replications 0..R-1 of the same
    seed -> ``ReplicatedResult``; ``replication_options`` go to
    ``simrouter.replications.replicate`` (precision, max_replications, executor ...)."""
    if replications is not None or replication_options:
        from ..replications import replicate

        return replicate(scenario, seed=seed, overrides=overrides, replications=replications, **replication_options)
    scenario = load_scenario(scenario, overrides)
    started = time.perf_counter()
    env = simpy.Environment()
    recorder = Recorder()

    def rng(source: int, *index: int) -> np.random.Generator:
        return streams.stream(seed, replication, source, *index)

    breaker = build_breaker(scenario.breaker, rng(streams.BREAKER))
    router = build_router(env, scenario, breaker, recorder, rng)
    finished = _start_workload(env, scenario, router, rng)
    env.run()
    breaker.advance(env.now)  # timer-driven transitions due by the end (e.g. automatic half-open)
    sent, done, kind = recorder.columns()
    scenario, warmup = resolve_warmup(scenario, sent, done, kind)
    return RunResult(
        scenario=scenario,
        warmup=warmup,
        seed=seed,
        replication=replication,
        sent=sent,
        done=done,
        kind=kind,
        transitions=list(breaker.transitions),
        final_state=breaker.state,
        sim_time_s=float(router.end_time(env.now)),
        full_load_end_s=min(finished) if finished else float(env.now),
        backend_busy_s=router.backend.busy_time,
        **router.columns(),
        wall_time_s=time.perf_counter() - started,
    )


def build_router(env: simpy.Environment, scenario: Scenario, breaker, recorder: Recorder, rng) -> SimRouter | PolicyRouter:
    """The fast path (``SimRouter`` on the resolve-at-admission backend) unless the
    scenario needs the policy path: retries, hedges, a delaying or holding limiter;
    the event-driven backend only when hedge losers are cancelled."""
    backend_config = scenario.backend
    service = ServiceModel(
        backend_config,
        scenario.faults,
        latency=VariateStream(backend_config.latency.sample, rng(streams.LATENCY)),
        uniform=VariateStream(_uniform, rng(streams.BACKEND_OUTCOME)),
        fault_uniform=VariateStream(_uniform, rng(streams.FAULT_OUTCOME)),
    )
    retry, hedge = RetryPolicy(scenario.router.retry), HedgePolicy(scenario.router.hedge)
    cancels = hedge.enabled and hedge.cancel_loser
    backend = EventBackend(env, backend_config, service) if cancels else Backend(backend_config, service)
    limiter = build_limiter(scenario.limiter)
    validation = VariateStream(_uniform, rng(streams.VALIDATION))
    core = SimRouter(env, scenario, limiter, breaker, backend, recorder, validation_uniform=validation)
    if not (retry.enabled or hedge.enabled or limiter.delays or limiter.holds):
        return core
    c = scenario.router.retry
    budget = RetryBudget(c.budget_ratio, c.budget_window, c.budget_min_per_s) if c.budget else None
    return PolicyRouter(core, retry, hedge, budget, jitter=VariateStream(_uniform, rng(streams.RETRY_JITTER)))


def _start_workload(env: simpy.Environment, scenario: Scenario, router: SimRouter, rng) -> list[float]:
    """Start the users or the arrival process; returns the list each appends to
    when it stops sending (its first entry is when full load ended)."""
    finished: list[float] = []
    w = scenario.workload
    if w.model in ("closed", "sequential"):
        for user in range(w.users):
            think = VariateStream(w.think_time.sample, rng(streams.THINK, user))
            env.process(closed_user(env, router, user, w.requests_per_user, think, scenario.duration, finished))
        return finished
    schedule = open_schedule(scenario)
    users = w.users
    keys = VariateStream(lambda g, n: g.integers(0, users, n), rng(streams.USER_KEYS))
    gaps = VariateStream(Exponential(1.0).sample, rng(streams.ARRIVALS))
    env.process(open_arrivals(env, router, schedule, w.arrival == "poisson", gaps, keys, w.max_requests, finished))
    return finished
