"""``diagnosis`` behind a gateway: each deployment's own backend and breaker.

The overload check weighs the offered rate against the deployments' service
rates (capacity / own mean service time, summed), and, for the weight-split
strategies, each deployment's weight share against its own rate; the latency
floor is the smallest of the deployments' own quantiles; each deployment's
breaker trips are explained from its own attempts, with the litellm and envoy
windows. Every figure below is worked out by hand in its comment; the
simulated runs confirm that the diagnosis describes what happened.
"""

from __future__ import annotations

import math

import pytest

import simrouter
from simrouter.config import scenario_from_dict
from simrouter.diagnosis import _breaker_window, codes, deployment_rates, mean_service_s, overloaded

NO_LATENCY_TARGETS = {"p95_ms": math.inf, "p99_ms": math.inf}


def constant(seconds: float) -> dict:
    return {"dist": "constant", "value": seconds}


def gateway(rate: float, deployments: list[dict], routing: str = "least-busy", latency: float = 0.05, **extra) -> object:
    return scenario_from_dict(
        {
            "name": "gw-diagnosis",
            "duration": 30.0,
            "workload": {"model": "open", "rate": rate, "arrival": "poisson", "users": 10},
            "backend": {"capacity": 4, "latency": constant(latency), "failures": {"processing": 0.0, "timeout": 0.0, "validation": 0.0}},
            "breaker": {"preset": "none"},
            "router": {"routing": routing, "max_fallbacks": 0},
            "targets": NO_LATENCY_TARGETS,
            "deployments": deployments,
            **extra,
        }
    )


def test_a_slow_deployment_lowers_the_gateways_service_rate():
    # a, b: 4 slots / 50 ms = 80/s each; c: 4 slots / 400 ms = 10/s; 170/s in all.
    # The old check (12 slots x the top-level 50 ms: 240/s) called 200/s fine.
    slow = gateway(200.0, [{"name": "a"}, {"name": "b"}, {"name": "c", "backend": {"latency": constant(0.4)}}])
    assert [round(row[3], 6) for row in deployment_rates(slow)] == [80.0, 80.0, 10.0]
    assert mean_service_s(slow) == pytest.approx(12 / 170)
    found = overloaded(slow)
    assert found is not None and "170.0/s" in found["message"] and "200.0/s" in found["message"]
    assert "at least 15 slots" in found["message"]  # ceil(12 x 200 / 170) = 15
    result = simrouter.simulate(slow)
    assert codes(result.summary["diagnosis"])[0] == "overloaded"
    # It really is: of 200 arrivals/s at most 170/s can be served, so the backlog grows (the
    # router's timeouts cut it), successes stay under the bound and every slot is busy.
    assert result.summary["throughput"]["success_rps"] <= 170 * 1.02
    assert result.summary["requests"]["timeouts"] > 0
    assert all(d["utilisation"] > 0.95 for d in result.summary["deployments"])
    assert "overloaded" not in codes(simrouter.simulate(gateway(150.0, [{"name": "a"}, {"name": "b"}, {"name": "c", "backend": {"latency": constant(0.4)}}])).summary["diagnosis"])


def test_fast_deployments_are_not_overloaded_by_a_slow_top_level_latency():
    # Top-level 200 ms, but every deployment sets 20 ms: 3 x 4 / 0.02 = 600/s for 300/s offered.
    # The old check (300 x 0.2 = 60 slot-seconds on 12 slots) called it overloaded.
    fast = gateway(300.0, [{"name": n, "backend": {"latency": constant(0.02)}} for n in "abc"], latency=0.2)
    assert overloaded(fast) is None
    result = simrouter.simulate(fast)
    assert "overloaded" not in codes(result.summary["diagnosis"])
    assert result.summary["backend"]["utilization"] == pytest.approx(300 * 0.02 / 12, rel=0.05)  # offered work / slots: 0.5


def test_a_weight_split_overloads_the_small_deployment_alone():
    # simple-shuffle, equal weights: 60/s each; big 8 / 50 ms = 160/s, small 2 / 50 ms = 40/s.
    # The gateway (200/s) keeps up with 120/s; the small one does not (60 >= 40).
    deployments = [{"name": "big", "backend": {"capacity": 8}}, {"name": "small", "backend": {"capacity": 2}}]
    shuffled = gateway(120.0, deployments, routing="simple-shuffle")
    found = overloaded(shuffled)
    assert found is not None and found["message"].startswith("deployment small gets 60.0/s") and "40.0/s" in found["message"]
    assert "at least 3 slots (deployments.1.backend.capacity)" in found["message"]  # ceil(60 x 0.05)
    result = simrouter.simulate(shuffled)
    big, small = result.summary["deployments"]
    assert small["latency_ms"]["avg"] > 20 * big["latency_ms"]["avg"]  # its queue grew; big's did not
    # A load-aware strategy moves the excess: the gateway's bound is the only one.
    assert overloaded(gateway(120.0, deployments, routing="least-busy")) is None
    assert overloaded(gateway(120.0, [{**deployments[0], "weight": 3.0}, deployments[1]], routing="simple-shuffle")) is None  # small: 30/s < 40/s


def test_the_latency_floor_is_the_fastest_deployments_quantile():
    targets = {"p95_ms": 100.0, "p99_ms": 500.0}
    # Top-level 300 ms misses both targets, but deployment b answers in 20 ms: routing to it can meet them.
    mixed = gateway(10.0, [{"name": "a"}, {"name": "b", "backend": {"latency": constant(0.02)}}], latency=0.3, targets=targets)
    assert "latency_floor_above_target" not in codes(simrouter.simulate(mixed).summary["diagnosis"])
    # Both slow (300 ms and 200 ms): the floor is the lower one, 200 ms, above the 100 ms P95 target only.
    slow = gateway(10.0, [{"name": "a"}, {"name": "b", "backend": {"latency": constant(0.2)}}], latency=0.3, targets=targets)
    floors = [item for item in simrouter.simulate(slow).summary["diagnosis"] if item["code"] == "latency_floor_above_target"]
    assert len(floors) == 1 and "targets.p95_ms" in floors[0]["message"]
    assert "deployment b's (deployments.1.backend.latency), 200 ms" in floors[0]["message"]


@pytest.mark.parametrize(
    ("breaker", "window"),
    [
        ({"preset": "litellm", "allowed_fails": 3, "cooldown_time": 5.0}, ("time", 5.0)),  # failed_calls TTL = cooldown_time
        ({"preset": "litellm", "cooldown_time": 5.0}, ("time", 60.0)),  # unset allowed_fails: the current minute's counters
        ({"preset": "envoy", "consecutive_5xx": 7}, ("count", 7)),  # consecutive 5xx: the last 7 calls
    ],
)
def test_the_gateway_presets_breaker_windows(breaker, window):
    scenario = gateway(10.0, [{"name": "a"}], breaker=breaker)
    assert _breaker_window(scenario.breaker) == window


def test_each_deployments_trips_are_explained_from_its_own_attempts():
    # failover: west fails every call from 30 s to 90 s; LiteLLM (allowed_fails 3, cooldown 5 s)
    # cools it down at its 4th failure within 5 s, so its window holds at least 4 failures.
    result = simrouter.simulate("failover")
    tripped = next(item for item in result.summary["diagnosis"] if item["code"] == "breaker_tripped_by")
    message = tripped["message"]
    assert "first west's at 30." in message and "mostly by failures" in message
    west = next(d for d in result.summary["deployments"] if d["name"] == "west")
    assert f"west: {west['breaker']['trips']}" in message
    # An envoy ejection after 5 consecutive 5xx: the window is those 5 calls, all failures.
    envoy = simrouter.simulate("failover", overrides=['breaker={preset="envoy", consecutive_5xx=5, max_ejection_percent=50}'])
    tripped = next(item for item in envoy.summary["diagnosis"] if item["code"] == "breaker_tripped_by")
    assert "window held 5 calls: 5 failures" in tripped["message"]


def test_never_recovered_names_the_deployment_that_stayed_out():
    # west's own cooldown of 1000 s outlasts the run: it is still cooled down at the end; east and central closed.
    result = simrouter.simulate("failover", overrides=["deployments.1.breaker={preset=\"litellm\", allowed_fails=3, cooldown_time=1000}"])
    (item,) = [item for item in result.summary["diagnosis"] if item["code"] == "never_recovered"]
    assert item["message"].startswith("the breaker of deployment(s) west opened")
