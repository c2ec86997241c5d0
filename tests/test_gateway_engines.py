"""Deployments behind a gateway on both engines (docs/gateway.md).

As ``test_fast_engine.py`` does for one backend: the fast engine
(``fast.run_open_gateway`` / ``run_closed_gateway``) and the SimPy engine
(``engine="events"``: ``client.PolicyRouter`` with ``gateway.GatewayTarget`` on
the event-driven backends) draw from the same streams in the same order, so
they must give the same run request for request AND attempt for attempt, for
every routing strategy and breaker preset. The cases are built to exercise
fallbacks after each kind (breaker rejections, a deployment's own rate limit,
failures, full queues, timeouts) and "no deployment available".

A one-deployment gateway is the single backend: deployment 0 draws from the
single backend's streams and the flow (router limiter, validation, the
deployment's breaker, its backend) is the same, so the runs are identical.
"""

import json

import numpy as np
import pytest

import simrouter
from simrouter.outcomes import BREAKER_REJECTED, FAILURE, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT
from simrouter.policies.routing import ROUTING_STRATEGIES

from test_fast_engine import CASES

DEPLOYMENTS = (  # uneven replicas, one with its own quota, one with its own outage
    "deployments=["
    '{ name = "big", weight = 2.0, backend = { capacity = 6, queue_limit = 4 } },'
    '{ name = "small", backend = { capacity = 3, queue_limit = 2 }, limiter = { algorithm = "token_bucket", rate = 40.0, burst = 5 } },'
    '{ name = "flaky", backend = { capacity = 4, failures = { processing = 0.05 } }, faults = [{ start = 4.0, end = 7.0, error_rate = 1.0 }] }'
    "]"
)
GW_OPEN = [
    "duration=15.0",
    "workload.rate=160",
    "backend.queue_limit=3",
    "backend.failures.timeout=0.003",
    "backend.hang_time=1.0",
    "router.timeout=0.3",
    "breaker.open_duration=1.0",
    "breaker.failure_threshold=3",
    DEPLOYMENTS,
    "faults=[{ start = 10.0, end = 11.0, latency_factor = 5.0 }]",
]
GW_CLOSED = [
    "workload.users=25",
    "workload.requests_per_user=120",
    'workload.think_time={ dist = "exponential", mean = 0.05 }',
    "duration=1e6",
    "limiter.rate=20.0",
    "limiter.burst=3",
    "backend.queue_limit=2",
    "backend.failures.validation=0.01",
    "router.timeout=0.25",
    "router.max_fallbacks=1",
    "breaker.open_duration=0.5",
    "breaker.failure_threshold=3",
    DEPLOYMENTS,
]
GW_CASES = {
    "open": ("breaker-failure", GW_OPEN),
    "closed": ("concurrent", GW_CLOSED),
    "open-litellm": ("breaker-failure", [*GW_OPEN, 'breaker={ preset = "litellm", allowed_fails = 2, cooldown_time = 1.0 }']),
    "open-envoy": ("breaker-failure", [*GW_OPEN, 'breaker={ preset = "envoy", consecutive_5xx = 3, interval = 1.0, base_ejection_time = 1.0, max_ejection_percent = 50 }']),
}


def both_engines(name, overrides, seed=1):
    return simrouter.simulate(name, seed=seed, overrides=overrides), simrouter.simulate(name, seed=seed, overrides=overrides, engine="events")


def assert_same_run(fast, events):
    assert np.array_equal(fast.sent, events.sent)
    assert np.array_equal(fast.kind, events.kind)
    assert np.allclose(fast.done, events.done, rtol=0, atol=1e-9)
    for column in ("deployment", "sent", "done", "kind"):
        assert np.array_equal(getattr(fast.attempt_log, column), getattr(events.attempt_log, column)), column
    assert np.array_equal(fast.fallbacks, events.fallbacks) and np.array_equal(fast.deployment, events.deployment)
    assert [run.transitions for run in fast.deployment_runs] == [run.transitions for run in events.deployment_runs]
    assert fast.sim_time_s == pytest.approx(events.sim_time_s, abs=1e-9)
    assert json.dumps(fast.to_dict()) == json.dumps(events.to_dict())


@pytest.mark.parametrize("case", GW_CASES)
def test_engines_give_the_same_gateway_run(case):
    name, overrides = GW_CASES[case]
    assert_same_run(*both_engines(name, overrides))


@pytest.mark.parametrize("routing", ROUTING_STRATEGIES)
def test_engines_agree_for_every_routing_strategy(routing):
    name, overrides = GW_CASES["open"]
    fast, events = both_engines(name, [*overrides, f'router.routing="{routing}"'], seed=2)
    assert_same_run(fast, events)
    assert (np.bincount(fast.attempt_log.deployment[fast.attempt_log.deployment >= 0], minlength=3) > 0).all()


@pytest.mark.parametrize("case", ("open", "closed"))
def test_the_gateway_cases_exercise_every_fallback_cause(case):
    name, overrides = GW_CASES[case]
    result = simrouter.simulate(name, seed=1, overrides=overrides)
    attempts = result.attempt_log
    kinds = set(np.unique(attempts.kind).tolist())
    assert {SUCCESS, FAILURE, QUEUE_FULL, RATE_LIMITED, BREAKER_REJECTED} <= kinds
    if case == "open":
        assert TIMEOUT in kinds
    assert result.summary["fallbacks"]["total"] > 0 and result.summary["fallbacks"]["succeeded_after_fallback"] > 0
    states = {tr.to_state.value for run in result.deployment_runs for tr in run.transitions}
    assert {"open", "half_open", "closed"} <= states


def test_a_fallback_is_sent_when_its_failed_attempt_is_answered():
    result = simrouter.simulate("breaker-failure", seed=1, overrides=GW_OPEN)
    attempts = result.attempt_log
    total = result.summary["attempts"]
    # Every attempt that passed the router-wide chain is in the attempt log (no top-level limiter here).
    assert attempts.kind.size == total["total"] - result.summary["requests"]["validation_errors"]
    assert total["fallbacks"] == int(result.fallbacks.sum())
    # Answer order, and each fallback's send time is an earlier attempt's answer time.
    assert np.all(np.diff(attempts.done) >= 0)
    # Every attempt goes out when its request is sent or when an earlier attempt is answered.
    sent_at = set(result.sent.tolist()) | set(attempts.done.tolist())
    assert all(t in sent_at for t in attempts.sent.tolist())
    assert np.count_nonzero(~np.isin(attempts.sent, result.sent)) > 0  # some after a backend answer
    # A request's latency runs from its first send; its final kind is its last attempt's.
    frame = result.to_frame()
    assert (frame["attempts"] == 1 + result.fallbacks).all()
    assert set(frame["deployment"].cat.categories) == {"big", "small", "flaky", ""}


def test_deployment_figures_add_up():
    result = simrouter.simulate("breaker-failure", seed=1, overrides=GW_OPEN)
    summary = result.summary
    deployments = summary["deployments"]
    assert [d["name"] for d in deployments] == ["big", "small", "flaky"]
    assert sum(d["share"] for d in deployments) == pytest.approx(1.0)
    routed = int(np.count_nonzero(result.attempt_log.deployment >= 0))
    assert sum(d["requests"]["sent"] for d in deployments) == routed
    for d in deployments:
        assert d["requests"]["sent"] == sum(v for k, v in d["requests"].items() if k != "sent")
        assert 0 < d["utilisation"] == d["utilization"] < 1
        answered = d["requests"]["succeeded"] + d["requests"]["failures"] + d["requests"]["timeouts"]
        assert d["latency_ms"]["count"] == answered
    # The overall breaker is never better than the worst deployment.
    assert summary["breaker"]["preset"] == "per-deployment"
    assert summary["breaker"]["trips"] == sum(d["breaker"]["trips"] for d in deployments)
    assert summary["backend"]["capacity"] == 6 + 3 + 4


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("engine", ("auto", "events"))
def test_one_deployment_gateway_is_the_single_backend(case, engine):
    name, overrides = CASES[case]
    single = simrouter.simulate(name, seed=3, overrides=overrides, engine=engine)
    gateway = simrouter.simulate(name, seed=3, overrides=[*overrides, 'deployments=[{ name = "only" }]'], engine=engine)
    assert np.array_equal(single.sent, gateway.sent) and np.array_equal(single.kind, gateway.kind)
    assert np.array_equal(single.done, gateway.done)
    assert [tr.to_dict() for tr in single.transitions] == gateway.summary["deployments"][0]["breaker"]["transitions"]
    assert single.backend_busy_s == gateway.backend_busy_s
    assert gateway.summary["deployments"][0]["share"] == 1.0
    assert gateway.summary["fallbacks"]["total"] == 0  # no other deployment to fall back to


def test_deployments_draw_from_their_own_streams():
    # Two identical deployments must not be served identically (their latency streams differ).
    result = simrouter.simulate("baseline", seed=1, overrides=['deployments=[{ name = "a" }, { name = "b" }]', "router.routing=\"round-robin\""])
    a, b = (run.services[1] - run.services[0] for run in result.deployment_runs)
    n = min(a.size, b.size)
    assert n > 10 and not np.allclose(a[:n], b[:n])
    again = simrouter.simulate("baseline", seed=1, overrides=['deployments=[{ name = "a" }, { name = "b" }]', "router.routing=\"round-robin\""])
    assert np.array_equal(result.attempt_log.done, again.attempt_log.done)


POLICY = [*GW_OPEN[:-2], DEPLOYMENTS]


@pytest.mark.parametrize(
    "extra",
    (
        ["router.retry.max_attempts=3"],
        ["router.hedge.max_hedges=1", "router.hedge.delay=0.05"],
        ["router.hedge.max_hedges=1", "router.hedge.delay=0.05", "router.hedge.cancel_loser=false"],
        ['deployments.0.limiter={ algorithm = "concurrency", max_in_flight = 4 }'],
        ['deployments.1.limiter={ algorithm = "leaky_bucket", rate = 30.0, burst = 5 }'],
    ),
    ids=("retries", "hedges-cancel", "hedges-keep", "holding-limiter", "delaying-limiter"),
)
def test_the_policy_path_runs_deployments(extra):
    result = simrouter.simulate("breaker-failure", seed=1, overrides=[*POLICY, *extra])
    summary = result.summary
    attempts = result.attempt_log
    # Every attempt (first tries, retries, hedges, fallbacks) that passed the router-wide chain is
    # logged when answered; a cancelled hedge loser has no answer.
    logged = summary["attempts"]["total"] - summary["requests"]["validation_errors"]
    if "hedge" in extra[0]:
        assert logged - summary["attempts"]["hedges"] <= attempts.kind.size <= logged
    else:
        assert attempts.kind.size == logged
    assert summary["attempts"]["fallbacks"] == int(result.fallbacks.sum()) > 0
    assert sum(d["requests"]["sent"] for d in summary["deployments"]) == int(np.count_nonzero(attempts.deployment >= 0))
    if "leaky_bucket" in extra[0]:  # the deployment's limiter delays: some attempt took longer than its send instant
        small = attempts.deployment == 1
        assert np.any(attempts.done[small] > attempts.sent[small])
