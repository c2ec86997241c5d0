"""Conservation in the simulator: every request sent is counted once, in exactly one kind.

For each built-in scenario, and for random valid scenarios drawn by hypothesis (random
workload model, limiter algorithm, breaker preset, retries and hedges, fault windows,
small sizes), the checks are:

* ``requests.sent`` = succeeded + every error kind, and equals the number of records;
* the number of requests is what the workload sends, computed here from its
  definition: ``users x requests_per_user`` for closed and sequential workloads, the
  constant arrival times ``stage start + k / rate`` (each exactly once) for evenly
  spaced open arrivals, capped by ``max_requests``;
* no request is recorded twice: with Poisson arrivals every send time is distinct
  (a request is recorded at its first send time, whatever its retries);
* attempts >= requests: ``attempts.total`` = requests + retries + hedges, each request
  made between 1 and ``max_attempts x (1 + max_hedges)`` attempts, at most
  ``max_attempts - 1`` of them retries;
* every answer comes at or after its send, and the latency count is the number of
  requests admitted to the backend.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

import simrouter
from simrouter import ConfigError, scenario_from_dict
from simrouter.config import builtin_names, load_scenario
from simrouter.outcomes import BACKEND_KINDS, KIND_NAMES


def expected_constant_arrivals(scenario) -> np.ndarray:
    """The evenly spaced arrival times an open workload must send, from its definition."""
    w = scenario.workload
    stages = [(s.duration, s.rate) for s in w.stages] or [(scenario.duration, w.rate)]
    times, start = [], 0.0
    for length, rate in stages:
        end = min(start + length, scenario.duration)
        if rate > 0:
            k = 0
            while start + k / rate < end:
                times.append(start + k / rate)
                k += 1
        start = end
    if w.max_requests:
        times = times[: w.max_requests]
    return np.array(times)


def assert_conserved(result) -> None:
    scenario = result.scenario
    summary = result.summary
    requests = summary["requests"]
    sent = requests["sent"]
    assert sent == sum(requests[name] for name in KIND_NAMES)
    assert sent == len(result.sent) == len(result.kind)  # warm-up 0: every record is measured
    assert np.all(result.done >= result.sent)
    # Latency describes every request that spent time (metrics.latency_population).
    assert summary["latency_ms"]["count"] == int((np.isin(result.kind, BACKEND_KINDS) | (result.done > result.sent)).sum())

    w = scenario.workload
    if w.model in ("closed", "sequential") and w.requests_per_user:
        assert sent == w.users * w.requests_per_user
    elif w.model == "open" and w.arrival == "constant":
        assert np.array_equal(np.sort(result.sent), expected_constant_arrivals(scenario))
    elif w.model == "open":
        assert np.unique(result.sent).size == sent  # Poisson: distinct times, none recorded twice
        assert not w.max_requests or sent <= w.max_requests

    attempts = summary["attempts"]
    assert attempts["total"] == sent + attempts["retries"] + attempts["hedges"] + attempts.get("fallbacks", 0) >= sent  # fallbacks: behind a gateway
    per_request = result.to_frame()["attempts"].to_numpy()
    assert per_request.sum() == attempts["total"]
    retry, hedge = scenario.router.retry, scenario.router.hedge
    if sent:
        fallbacks = 1 + scenario.router.max_fallbacks if scenario.deployments else 1  # behind a gateway: fallback attempts per try
        assert per_request.min() >= 1 and per_request.max() <= retry.max_attempts * (1 + hedge.max_hedges) * fallbacks
    if result.retries is not None:
        assert result.retries.max(initial=0) <= retry.max_attempts - 1
    else:
        assert attempts["retries"] == attempts["hedges"] == 0


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_conserves_requests(name):
    assert_conserved(simrouter.simulate(name, seed=3))


# ---------------------------------------------------------------- random valid scenarios


LIMITERS = {
    "none": st.just({}),
    "token_bucket": st.fixed_dictionaries({"rate": st.floats(5, 200), "burst": st.integers(1, 10)}),
    "gcra": st.fixed_dictionaries({"rate": st.floats(5, 200), "burst": st.integers(0, 10)}),
    "leaky_bucket": st.fixed_dictionaries({"rate": st.floats(5, 200), "burst": st.integers(0, 10), "nodelay": st.booleans()}),
    "sliding_window_log": st.fixed_dictionaries({"size": st.floats(0.05, 1), "limit": st.integers(1, 20)}),
    "sliding_window_counter": st.fixed_dictionaries({"size": st.floats(0.05, 1), "limit": st.integers(1, 20)}),
    "fixed_window": st.fixed_dictionaries({"size": st.floats(0.05, 1), "limit": st.integers(1, 20), "align": st.sampled_from(["clock", "first_request"])}),
    "concurrency": st.fixed_dictionaries({"max_in_flight": st.integers(1, 8)}),
}
BREAKERS = {
    "none": st.just({}),
    "default": st.fixed_dictionaries({"failure_threshold": st.integers(0, 5), "window_size": st.integers(1, 10), "minimum_calls": st.integers(1, 5),
                                      "open_duration": st.floats(0.05, 0.5), "half_open_max_calls": st.just(3), "success_threshold": st.integers(1, 3)})
                          .filter(lambda d: d["minimum_calls"] <= d["window_size"]),  # config refuses minimum_calls > window_size
    "resilience4j": st.fixed_dictionaries({"sliding_window_type": st.sampled_from(["COUNT_BASED", "TIME_BASED"]), "sliding_window_size": st.integers(1, 10),
                                           "minimum_number_of_calls": st.integers(1, 10), "wait_duration_in_open_state": st.floats(0.05, 0.5),
                                           "permitted_number_of_calls_in_half_open_state": st.integers(1, 4),
                                           "automatic_transition_from_open_to_half_open_enabled": st.booleans()}),
    "pybreaker": st.fixed_dictionaries({"fail_max": st.integers(1, 5), "reset_timeout": st.floats(0.05, 0.5)}),
    "hystrix": st.fixed_dictionaries({"request_volume_threshold": st.integers(0, 10), "sleep_window": st.floats(0.05, 0.5),
                                      "rolling_window": st.just(1.0), "health_snapshot_interval": st.floats(0.05, 0.5)}),
    "polly": st.fixed_dictionaries({"failure_ratio": st.floats(0.05, 1), "minimum_throughput": st.integers(2, 10), "sampling_duration": st.floats(0.5, 2),
                                    "break_duration": st.floats(0.5, 1)}),
}


@st.composite
def workloads(draw) -> tuple[dict, float]:
    model = draw(st.sampled_from(["closed", "sequential", "open", "open"]))
    think = draw(st.sampled_from([0.0, {"dist": "exponential", "mean": 0.01}]))
    if model == "closed":
        return {"model": "closed", "users": draw(st.integers(1, 6)), "requests_per_user": draw(st.integers(1, 25)), "think_time": think}, 1000.0
    if model == "sequential":
        return {"model": "sequential", "users": 1, "requests_per_user": draw(st.integers(1, 60)), "think_time": think}, 1000.0
    duration = draw(st.floats(0.2, 1.5))
    workload = {"model": "open", "users": draw(st.integers(1, 6)), "arrival": draw(st.sampled_from(["poisson", "constant"])),
                "requests_per_user": 0, "max_requests": draw(st.sampled_from([0, 0, 50]))}
    if draw(st.booleans()):
        workload["rate"] = draw(st.floats(10, 300))
    else:
        stages = draw(st.lists(st.fixed_dictionaries({"duration": st.floats(0.1, 0.8), "rate": st.sampled_from([0.0, 40.0, 150.0, 300.0])}), min_size=1, max_size=3))
        if not any(stage["rate"] for stage in stages):
            stages[0]["rate"] = 100.0
        workload.update(rate=0.0, stages=stages)
    return workload, duration


@st.composite
def faults(draw, duration: float) -> list[dict]:
    windows, start = [], 0.0
    for _ in range(draw(st.integers(0, 2))):
        start += draw(st.floats(0.0, duration / 2))
        end = start + draw(st.floats(0.05, duration / 2))
        error_rate = draw(st.sampled_from([0.0, 0.5, 1.0]))
        latency_factor = draw(st.sampled_from([1.0, 5.0] if error_rate else [5.0, 20.0]))
        windows.append({"start": start, "end": end, "error_rate": error_rate, "latency_factor": latency_factor})
        start = end
    return windows


@st.composite
def scenarios(draw):
    workload, duration = draw(workloads())
    algorithm = draw(st.sampled_from(sorted(LIMITERS)))
    preset = draw(st.sampled_from(sorted(BREAKERS)))
    processing, hung, validation = draw(st.sampled_from([0.0, 0.05, 0.3])), draw(st.sampled_from([0.0, 0.05])), draw(st.sampled_from([0.0, 0.05]))
    hedge = {"max_hedges": draw(st.integers(0, 2)), "cancel_loser": draw(st.booleans())}
    hedge.update({"delay": draw(st.floats(0.002, 0.05))} if draw(st.booleans()) else {"percentile": draw(st.floats(50, 99))})
    data = {
        "duration": duration,
        "workload": workload,
        "limiter": {"algorithm": algorithm, "scope": draw(st.sampled_from(["per_user", "global"])), **draw(LIMITERS[algorithm])},
        "breaker": {"preset": preset, **draw(BREAKERS[preset])},
        "backend": {
            "capacity": draw(st.integers(1, 8)),
            "queue_limit": draw(st.integers(0, 20)),
            "latency": {"dist": "exponential", "mean": draw(st.floats(0.002, 0.05))},
            "failures": {"processing": processing, "timeout": hung, "validation": validation},
            "hang_time": draw(st.floats(0.05, 0.5)),
        },
        "router": {
            "timeout": draw(st.sampled_from([0.01, 0.05, 0.3, math.inf])),
            "retry": {"max_attempts": draw(st.integers(1, 4)), "budget": draw(st.booleans()),
                      "retry_on": draw(st.lists(st.sampled_from(["timeouts", "failures", "queue_full", "breaker_rejected", "rate_limited"]), min_size=1, max_size=5, unique=True)),
                      "jitter": draw(st.sampled_from(["none", "full", "equal", "decorrelated"]))},
            "hedge": hedge,
        },
        "faults": draw(faults(duration)),
    }
    try:
        return scenario_from_dict(data)
    except ConfigError:
        reject()  # a combination the loader refuses (its own tests cover why)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(scenario=scenarios(), seed=st.integers(0, 2**32))
def test_random_scenarios_conserve_requests(scenario, seed):
    result = simrouter.simulate(scenario, seed=seed)
    assert_conserved(result)
    # What the draws covered (pytest --hypothesis-show-statistics).
    attempts = result.summary["attempts"]
    event(f"workload {scenario.workload.model}" + (f" {scenario.workload.arrival}" if scenario.workload.model == "open" else ""))
    event("retried" if attempts["retries"] else "no retries")
    event("hedged" if attempts["hedges"] else "no hedges")
    event("breaker tripped" if result.summary["breaker"]["trips"] else "breaker never tripped")
    for name in ("rate_limited", "breaker_rejected", "timeouts", "failures", "queue_full"):
        event(f"some {name}" if result.summary["requests"][name] else f"no {name}")


def test_the_property_reaches_the_policy_path():
    """The random scenarios above do exercise retries and hedges (not only the fast path)."""
    scenario = load_scenario("retry-storm", ["duration=2", "workload.rate=200", "router.hedge.max_hedges=2", "router.hedge.delay=0.01",
                                             "faults=[{ start = 0.2, end = 1.0, latency_factor = 20.0 }]"])
    result = simrouter.simulate(scenario, seed=5)
    assert_conserved(result)
    attempts = result.summary["attempts"]
    assert attempts["retries"] > 0 and attempts["hedges"] > 0
