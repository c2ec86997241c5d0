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
from ..policies import build_breaker, build_limiter
from ..result import RunResult
from . import streams
from .backend import Backend
from .model import SimRouter, closed_user, open_arrivals


def _uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size)


def simulate(scenario: Scenario | str | Path, seed: int = 1, overrides=(), replication: int = 0) -> RunResult:
    """Simulate ``scenario`` (a Scenario, built-in name or TOML path) once."""
    scenario = load_scenario(scenario, overrides)
    started = time.perf_counter()
    env = simpy.Environment()
    recorder = Recorder()

    def rng(source: int, *index: int) -> np.random.Generator:
        return streams.stream(seed, replication, source, *index)

    backend_config = scenario.backend
    backend = Backend(
        backend_config,
        scenario.faults,
        latency=VariateStream(backend_config.latency.sample, rng(streams.LATENCY)),
        uniform=VariateStream(_uniform, rng(streams.BACKEND_OUTCOME)),
        fault_uniform=VariateStream(_uniform, rng(streams.FAULT_OUTCOME)),
    )
    breaker = build_breaker(scenario.breaker)
    router = SimRouter(
        env,
        scenario,
        build_limiter(scenario.limiter),
        breaker,
        backend,
        recorder,
        validation_uniform=VariateStream(_uniform, rng(streams.VALIDATION)),
    )
    _start_workload(env, scenario, router, rng)
    env.run()
    sent, done, kind = recorder.columns()
    return RunResult(
        scenario=scenario,
        seed=seed,
        replication=replication,
        sent=sent,
        done=done,
        kind=kind,
        transitions=list(breaker.transitions),
        final_state=breaker.state,
        sim_time_s=float(env.now),
        backend_busy_s=backend.busy_time,
        wall_time_s=time.perf_counter() - started,
    )


def _start_workload(env: simpy.Environment, scenario: Scenario, router: SimRouter, rng) -> None:
    w = scenario.workload
    if w.model in ("closed", "sequential"):
        for user in range(w.users):
            think = VariateStream(w.think_time.sample, rng(streams.THINK, user))
            env.process(closed_user(env, router, user, w.requests_per_user, think, scenario.duration))
        return
    if w.stages:
        schedule, end = [], 0.0
        for stage in w.stages:
            end += stage.duration
            schedule.append((min(end, scenario.duration), stage.rate))
    else:
        schedule = [(scenario.duration, w.rate)]
    users = w.users
    keys = VariateStream(lambda g, n: g.integers(0, users, n), rng(streams.USER_KEYS))
    gaps = VariateStream(Exponential(1.0).sample, rng(streams.ARRIVALS))
    env.process(open_arrivals(env, router, schedule, w.arrival == "poisson", gaps, keys, w.max_requests))
