"""``simulate``: run a scenario once in simulated time and return a ``RunResult``
(many independent replications: ``simrouter.replications.replicate``).

The run ends when every user has finished (closed workloads), arrivals have
stopped at ``duration`` (open workloads), and every admitted request has been
answered: no request is left uncounted.

``engine``: ``"auto"`` runs a scenario on the fast path (``fast``: no SimPy
event) unless it needs the SimPy engine (retries, hedges, a delaying or holding
limiter); ``"events"`` forces the straightforward model, the SimPy engine with
the event-driven backend (every service end and timeout its own event), which
gives the same runs from the same seed, only slower: the reference the fast
path is tested against.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import simpy

from ..config import Scenario, load_scenario
from ..distributions import Exponential, VariateStream
from ..errors import ConfigError
from ..metrics import AttemptRecorder, Recorder
from ..policies import HedgePolicy, RetryBudget, RetryPolicy, build_breaker, build_limiter
from ..result import RunResult
from ..warmup import resolve_warmup
from ..workload import open_schedule
from . import fast, streams
from .backend import Backend, ServiceModel
from .client import PolicyRouter
from .event_backend import EventBackend
from .gateway import GatewayRouter, build_deployments, needs_policy_path
from .model import SimRouter, closed_user, open_arrivals

ENGINES = ("auto", "events")


def _uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size)


def simulate(
    scenario: Scenario | str | Path,
    seed: int = 1,
    overrides=(),
    replication: int = 0,
    engine: str = "auto",
    progress: bool = False,
) -> RunResult:
    """Simulate ``scenario`` (a Scenario, built-in name or TOML path) once -> ``RunResult``.

    ``replication`` picks the replication's own random streams (0 .. R-1 of the
    same ``seed`` are independent); many replications, their means and
    intervals: ``simrouter.replicate``. ``engine``: see the module docstring.
    ``progress``: a transient bar of simulated time on standard error (the fast engine)."""
    if engine not in ENGINES:
        raise ConfigError("engine", f"expected one of {', '.join(ENGINES)}, got {engine!r}")
    scenario = load_scenario(scenario, overrides)
    _warn_proxy_only_faults(scenario)
    started = time.perf_counter()
    env = simpy.Environment(initial_time=0.0)  # float time: a transition at the start is 0.0 on both engines
    recorder = Recorder()

    def rng(source: int, *index: int) -> np.random.Generator:
        return streams.stream(seed, replication, source, *index)

    if scenario.deployments:
        return _simulate_gateway(scenario, seed, replication, engine, progress, env, recorder, rng, started)
    breaker = build_breaker(scenario.breaker, rng(streams.BREAKER))
    router = build_router(env, scenario, breaker, recorder, rng, events=engine == "events")
    if isinstance(router, SimRouter):
        with _progress(scenario, progress) as tick:
            end, finished = _run_fast(scenario, router, rng, tick)
    else:
        finished = _start_policy_workload(env, scenario, router, rng)
        env.run()
        end = router.end_time(env.now)
    breaker.advance(end)  # timer-driven transitions due by the end (e.g. automatic half-open)
    sent, done, kind = recorder.final_columns()
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
        sim_time_s=float(end),
        full_load_end_s=min(finished) if finished else float(end),
        backend_busy_s=router.backend.busy_time_until(end),
        services=router.backend.services.columns(),
        **({} if isinstance(router, SimRouter) else router.columns()),
        wall_time_s=time.perf_counter() - started,
    )


def _simulate_gateway(scenario: Scenario, seed: int, replication: int, engine: str, progress: bool, env, recorder: Recorder, rng, started: float) -> RunResult:
    """``simulate`` behind a gateway (``[[deployments]]``): each deployment's
    breaker, backend and service log go into the result (``deployment_summary``)."""
    from ..deployment_summary import DeploymentRun

    router = build_gateway_router(env, scenario, recorder, rng, events=engine == "events")
    core = router if isinstance(router, GatewayRouter) else router.core
    if isinstance(router, GatewayRouter):
        with _progress(scenario, progress) as tick:
            end, finished = _run_fast_gateway(scenario, router, rng, tick)
    else:
        finished = _start_policy_workload(env, scenario, router, rng)
        env.run()
        end = router.end_time(env.now)
    runs = []
    for entry, deployment in zip(scenario.deployments, core.deployments):
        breaker = deployment.breaker
        breaker.advance(end)
        runs.append(
            DeploymentRun(
                name=deployment.name,
                preset=deployment.preset,
                capacity=deployment.config.max_num_seqs if deployment.config.is_llm else deployment.config.capacity,  # LLM: sequence slots
                transitions=list(breaker.transitions),
                final_state=breaker.state,
                busy_s=deployment.backend.busy_time_until(end),
                services=deployment.backend.services.columns(),
                faults=entry.faults_of(scenario.faults),
            )
        )
    sent, done, kind = recorder.final_columns()
    scenario, warmup = resolve_warmup(scenario, sent, done, kind)
    starts = np.concatenate([run.services[0] for run in runs])
    ends = np.concatenate([run.services[1] for run in runs])
    return RunResult(
        scenario=scenario,
        warmup=warmup,
        seed=seed,
        replication=replication,
        sent=sent,
        done=done,
        kind=kind,
        transitions=[],  # per deployment (``deployments``); the overall breaker figures are their worst
        final_state=DeploymentRun.worst_state(runs),
        sim_time_s=float(end),
        full_load_end_s=min(finished) if finished else float(end),
        backend_busy_s=sum(run.busy_s for run in runs),
        services=(starts, ends),
        **router.columns(),
        attempt_log=core.attempts.columns(),
        deployment_runs=runs,
        wall_time_s=time.perf_counter() - started,
    )


def build_gateway_router(env: simpy.Environment, scenario: Scenario, recorder: Recorder, rng, events: bool = False) -> GatewayRouter | PolicyRouter:
    """Behind a gateway: the fast path (``GatewayRouter``) unless the scenario
    needs the policy path (as ``build_router``, or a deployment limiter that
    delays or holds), then ``PolicyRouter`` with the gateway as its target."""
    if scenario.backend.is_llm:  # always the policy path, one batching backend per deployment (llm_gateway)
        from .llm_gateway import build_llm_gateway_router

        return build_llm_gateway_router(env, scenario, recorder, rng)
    retry, hedge = RetryPolicy(scenario.router.retry), HedgePolicy(scenario.router.hedge)
    cancels = events or (hedge.enabled and hedge.cancel_loser)
    gateway, deployments = build_deployments(env, scenario, rng, cancels)
    limiter = build_limiter(scenario.limiter)
    validation = VariateStream(_uniform, rng(streams.VALIDATION))
    core = GatewayRouter(env, scenario, limiter, gateway, deployments, recorder, AttemptRecorder(), validation_uniform=validation)
    if not (events or retry.enabled or hedge.enabled or limiter.delays or limiter.holds or needs_policy_path(deployments)):
        return core
    c = scenario.router.retry
    budget = RetryBudget(c.budget_ratio, c.budget_window, c.budget_min_per_s) if c.budget else None
    return PolicyRouter(core, retry, hedge, budget, jitter=VariateStream(_uniform, rng(streams.RETRY_JITTER)), target=core.target)


def _run_fast_gateway(scenario: Scenario, router: GatewayRouter, rng, tick=None) -> tuple[float, list[float]]:
    """The workload on the fast engine behind a gateway."""
    w = scenario.workload
    if w.model in ("closed", "sequential"):
        return fast.run_closed_gateway(router, [stream.next for stream in _think_streams(scenario, rng)], w.requests_per_user, scenario.duration, tick)
    gaps, keys = _arrival_streams(scenario, rng)
    return fast.run_open_gateway(router, open_schedule(scenario), w.arrival == "poisson", gaps, keys.next, w.max_requests, tick)


def build_router(env: simpy.Environment, scenario: Scenario, breaker, recorder: Recorder, rng, events: bool = False) -> SimRouter | PolicyRouter:
    """The fast path (``SimRouter`` on the resolve-at-admission backend) unless the
    scenario needs the policy path: retries, hedges, a delaying or holding limiter;
    the event-driven backend only when hedge losers are cancelled. ``events``:
    the policy path on the event-driven backend whatever the scenario.
    ``backend.model = "llm"``: always the policy path on the batching backend (``llm_run``)."""
    if scenario.backend.is_llm:
        from .llm_run import build_llm_router

        return build_llm_router(env, scenario, breaker, recorder, rng)
    backend_config = scenario.backend
    service = ServiceModel(
        backend_config,
        scenario.faults,
        latency=VariateStream(backend_config.latency.sample, rng(streams.LATENCY)),
        uniform=VariateStream(_uniform, rng(streams.BACKEND_OUTCOME)),
        fault_uniform=VariateStream(_uniform, rng(streams.FAULT_OUTCOME)),
    )
    retry, hedge = RetryPolicy(scenario.router.retry), HedgePolicy(scenario.router.hedge)
    cancels = events or (hedge.enabled and hedge.cancel_loser)
    backend = EventBackend(env, backend_config, service) if cancels else Backend(backend_config, service)
    limiter = build_limiter(scenario.limiter)
    validation = VariateStream(_uniform, rng(streams.VALIDATION))
    core = SimRouter(env, scenario, limiter, breaker, backend, recorder, validation_uniform=validation)
    if not (events or retry.enabled or hedge.enabled or limiter.delays or limiter.holds):
        return core
    c = scenario.router.retry
    budget = RetryBudget(c.budget_ratio, c.budget_window, c.budget_min_per_s) if c.budget else None
    return PolicyRouter(core, retry, hedge, budget, jitter=VariateStream(_uniform, rng(streams.RETRY_JITTER)))


def _run_fast(scenario: Scenario, router: SimRouter, rng, tick=None) -> tuple[float, list[float]]:
    """The workload on the fast engine: (end time, when each user / the arrivals stopped)."""
    w = scenario.workload
    if w.model in ("closed", "sequential"):
        return fast.run_closed(router, [stream.next for stream in _think_streams(scenario, rng)], w.requests_per_user, scenario.duration, tick)
    gaps, keys = _arrival_streams(scenario, rng)
    return fast.run_open(router, open_schedule(scenario), w.arrival == "poisson", gaps, keys.next, w.max_requests, tick)


@contextmanager
def _progress(scenario: Scenario, enabled: bool):
    """``tick(now)`` for the fast engine: a bar of simulated seconds up to ``duration``
    (a closed workload that runs out of requests ends early), or None when disabled."""
    if not enabled:
        yield None
        return
    from ..report.progress import progress_bar

    with progress_bar(scenario.duration, f"{scenario.name}: simulated s") as advance:
        shown = 0.0

        def tick(now: float) -> None:
            nonlocal shown
            now = min(now, scenario.duration)
            advance(now - shown)
            shown = now

        yield tick


def _start_policy_workload(env: simpy.Environment, scenario: Scenario, router: PolicyRouter, rng) -> list[float]:
    """``_start_workload``, or on the LLM backend a ``[workload.tokens] trace`` 's arrivals (``llm_run``)."""
    if scenario.backend.is_llm and scenario.workload.tokens is not None and scenario.workload.tokens.trace:
        from .llm_run import start_trace

        return start_trace(env, scenario, router, rng)
    return _start_workload(env, scenario, router, rng)


def _start_workload(env: simpy.Environment, scenario: Scenario, router: PolicyRouter, rng) -> list[float]:
    """Start the users or the arrival process on the SimPy engine; returns the
    list each appends to when it stops sending (its first entry is when full load ended)."""
    finished: list[float] = []
    w = scenario.workload
    if w.model in ("closed", "sequential"):
        for user, think in enumerate(_think_streams(scenario, rng)):
            env.process(closed_user(env, router, user, w.requests_per_user, think, scenario.duration, finished))
        return finished
    gaps, keys = _arrival_streams(scenario, rng)
    env.process(open_arrivals(env, router, open_schedule(scenario), w.arrival == "poisson", gaps, keys, w.max_requests, finished))
    return finished


def _think_streams(scenario: Scenario, rng) -> list[VariateStream]:
    """Each closed user's think times, from its own stream."""
    w = scenario.workload
    return [VariateStream(w.think_time.sample, rng(streams.THINK, user)) for user in range(w.users)]


def _arrival_streams(scenario: Scenario, rng) -> tuple[VariateStream, VariateStream]:
    """An open workload's unit-exponential gaps and user keys."""
    users = scenario.workload.users
    keys = VariateStream(lambda g, n: g.integers(0, users, n), rng(streams.USER_KEYS))
    return VariateStream(Exponential(1.0).sample, rng(streams.ARRIVALS)), keys


def _warn_proxy_only_faults(scenario: Scenario) -> None:
    """Say (once per message) which fault fields this simulation does not apply."""
    from ..faults import proxy_only_fields

    ignored = proxy_only_fields([*scenario.faults, *(window for deployment in scenario.deployments for window in deployment.faults)])
    if ignored:
        import warnings

        from ..errors import ScenarioWarning

        warnings.warn(f"{', '.join(ignored)}: applied by `simrouter proxy` only; the simulation applies error_rate and latency_factor", ScenarioWarning, stacklevel=3)

