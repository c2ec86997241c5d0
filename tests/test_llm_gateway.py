"""LLM deployments behind the gateway (``[[deployments]]`` with ``backend.model = "llm"``).

Each deployment is its own continuously batching server (its merged ``[backend]``,
its fault windows, its random streams), behind ``LLMRouter`` on the SimPy engine
with the gateway as its target. Checks:

* **Wiring.** One deployment is the single LLM backend draw for draw (deployment 0
  draws from the single backend's streams): the same answers, times and first tokens,
  with hedges, a breaker and a fault window. A deployment's own ``tokens_per_minute``
  rate-limits attempts there, and they fall back. ``usage-based`` routing counts the
  tokens each attempt carries (prompt + max_tokens): every minute's token sums stay
  within one request's cost of each other, which counting requests would not give.
* **Poisson splitting.** k identical replicas behind ``simple-shuffle`` (random,
  equal weights) at total rate R are k independent servers at R / k: mean TTFT and
  E2E equal one replica's at R / k. Independent replications on each side (20 each);
  the 99.9 % Welch interval of the difference covers 0, and it is narrow enough to
  mean something (E2E half-width < 10 % of the mean).
* **Round-robin beats random** at rho = 0.7 on one-sequence servers
  (``max_num_seqs = 1``, ``base = per_prefill_token = 0``: S = 10 ms x output tokens,
  an M/G/1 queue per deployment): random routing's mean E2E is Pollaczek-Khinchine's
  (within the replications' 99.9 % interval), round-robin's (Erlang-3 arrivals at each
  deployment) is lower: the paired interval of RR - random (common random numbers) is
  below 0.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy.stats import t as student_t

from simrouter.config import load_scenario, scenario_from_dict
from simrouter.outcomes import RATE_LIMITED, SUCCESS
from simrouter.replications import replicate
from simrouter.sim import simulate
from simrouter.stats import paired_t_interval, t_interval

NO_FAILURES = {"processing": 0, "timeout": 0, "validation": 0}
NO_TARGETS = {"p95_ms": math.inf, "p99_ms": math.inf, "min_rps": 0}


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------- wiring


def test_one_deployment_is_the_single_llm_backend_draw_for_draw():
    overrides = ["duration=60", "workload.rate=12", "router.hedge.delay=0.5", "router.hedge.max_hedges=1", 'breaker.preset="default"', "faults=[{start=20.0, end=30.0, error_rate=0.5}]"]
    single = quiet(simulate, "llm-chat", seed=2, overrides=overrides)
    gateway = quiet(simulate, "llm-chat", seed=2, overrides=[*overrides, 'deployments=[{name="only"}]', "router.max_fallbacks=0"])
    assert gateway.deployment_runs is not None and gateway.summary["deployments"][0]["share"] == 1.0
    for column in ("sent", "done", "kind"):
        assert np.array_equal(getattr(single, column), getattr(gateway, column)), column
    assert np.array_equal(single.llm.first_token, gateway.llm.first_token, equal_nan=True)
    assert single.summary["batch"] == gateway.summary["batch"]
    assert single.summary["requests"]["breaker_rejected"] > 0  # the breaker and the fault did something
    assert gateway.summary["deployments"][0]["capacity"] == 64  # sequence slots


def small_llm(**sections):
    data = {
        "duration": 60.0,
        "warmup": 0.0,
        "workload": {"model": "open", "rate": 6.0, "users": 4, "tokens": {"prompt": {"dist": "lognormal", "p50": 200, "p99": 1500}, "output": {"dist": "exponential", "mean": 20}}},
        "limiter": {"algorithm": "none"},
        "breaker": {"preset": "none"},
        "backend": {"model": "llm", "max_num_seqs": 16, "max_num_batched_tokens": 2048, "step_time": {"base": 0.005, "per_prefill_token": 0.00001, "per_decode_token": 0.0005}, "failures": NO_FAILURES},
        "router": {"timeout": 1000.0},
        "targets": NO_TARGETS,
    }
    for name, value in sections.items():
        data[name] = {**data[name], **value} if isinstance(value, dict) and name in data else value
    return scenario_from_dict(data)


def test_a_deployments_token_limit_rate_limits_there_and_falls_back():
    s = small_llm(
        router={"routing": "round-robin", "max_fallbacks": 1, "fallback_on": ["rate_limited"]},
        deployments=[{"name": "small", "limiter": {"algorithm": "none", "tokens_per_minute": 6000.0, "tokens_burst": 2000.0}}, {"name": "big", "backend": {"max_num_seqs": 32}}],
    )
    result = quiet(simulate, s, seed=3)
    summary = result.summary
    assert summary["requests"]["succeeded"] == summary["requests"]["sent"]  # every refused attempt fell back to "big"
    small, big = summary["deployments"]
    assert small["requests"]["rate_limited"] > 20 and big["requests"].get("rate_limited", 0) == 0
    assert summary["fallbacks"]["total"] == small["requests"]["rate_limited"]
    assert big["capacity"] == 32 and small["capacity"] == 16  # each its own merged backend
    log = result.attempt_log
    refused = log.kind == RATE_LIMITED
    assert set(log.deployment[refused]) == {0}


def test_usage_based_routing_counts_the_tokens_each_attempt_carries():
    s = small_llm(router={"routing": "usage-based"}, deployments=[{"name": "a"}, {"name": "b"}], duration=180.0)
    result = quiet(simulate, s, seed=4)
    assert (result.kind == SUCCESS).all()
    # Per logical request (recording order): its tokens, prompt + output (no max_tokens: the client asks for its output).
    cost = result.llm.prompt_tokens + result.llm.output_tokens
    by_sent = dict(zip(result.sent.tolist(), cost.tolist()))
    log = result.attempt_log
    minute = np.floor(log.sent / 60.0).astype(int)
    tokens = np.array([by_sent[t] for t in log.sent.tolist()])
    count_spread = []
    for m in np.unique(minute):
        here = minute == m
        per_deployment = [tokens[here & (log.deployment == d)].sum() for d in (0, 1)]
        counts = [int((here & (log.deployment == d)).sum()) for d in (0, 1)]
        assert abs(per_deployment[0] - per_deployment[1]) <= tokens[here].max(), (m, per_deployment)
        count_spread.append(abs(counts[0] - counts[1]))
    # Counting requests instead would keep the counts within one of each other (and the token sums apart).
    assert max(count_spread) > 1


# ---------------------------------------------------------------- Poisson splitting


def replicas(k: int, rate_per_replica: float, routing: str = "simple-shuffle"):
    return scenario_from_dict(
        {
            "name": f"llm-{k}-replicas",
            "duration": 300.0,
            "warmup": 30.0,
            "workload": {"model": "open", "rate": rate_per_replica * k, "users": 10, "tokens": {"prompt": {"dist": "lognormal", "p50": 200, "p99": 1000}, "output": {"dist": "exponential", "mean": 50}}},
            "limiter": {"algorithm": "none"},
            "breaker": {"preset": "none"},
            "backend": {"model": "llm", "max_num_seqs": 8, "max_num_batched_tokens": 512, "step_time": {"base": 0.01, "per_prefill_token": 0.00002, "per_decode_token": 0.002}, "failures": NO_FAILURES},
            "router": {"timeout": 1000.0, "routing": routing},
            "deployments": [{"name": f"r{i}"} for i in range(k)] if k > 1 else [],
            "targets": NO_TARGETS,
        }
    )


def welch(a: np.ndarray, b: np.ndarray, level: float) -> tuple[float, float]:
    """(b - a mean difference, half-width of its Welch interval at ``level``)."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return float(b.mean() - a.mean()), float(student_t.ppf(0.5 + level / 2, dof) * math.sqrt(va + vb))


def test_k_random_replicas_are_k_servers_at_a_kth_of_the_rate():
    one = quiet(replicate, replicas(1, 4.0), seed=11, replications=20)
    three = quiet(replicate, replicas(3, 4.0), seed=12, replications=20)
    for metric in ("ttft_ms.avg", "latency_ms.avg"):
        a, b = one.values(metric), three.values(metric)
        difference, half = welch(a, b, 0.999)
        assert abs(difference) <= half, (metric, a.mean(), b.mean(), half)
    difference, half = welch(one.values("latency_ms.avg"), three.values("latency_ms.avg"), 0.999)
    assert half < 0.10 * one.values("latency_ms.avg").mean()  # narrow enough to see a 10 % change
    # Each replica is as busy as the lone one (sequence slots, summed over the three).
    assert three.values("backend.utilization").mean() == pytest.approx(one.values("backend.utilization").mean(), rel=0.05)


# ---------------------------------------------------------------- round-robin against random

P = 1 - math.exp(-1 / 20)  # output = ceil(Exp(mean 20)) tokens: geometric on 1, 2, ... with this p
STEP = 0.01  # seconds per step, one token each: S = STEP x output
ES, ES2 = STEP / P, STEP**2 * (2 - P) / P**2
K, RHO = 3, 0.7
RATE = RHO / ES  # per deployment


def one_sequence_servers(routing: str):
    return scenario_from_dict(
        {
            "name": f"mg1-{routing}",
            "duration": 300.0,
            "warmup": 40.0,
            "workload": {"model": "open", "rate": RATE * K, "users": 10, "tokens": {"prompt": {"dist": "constant", "value": 1}, "output": {"dist": "exponential", "mean": 20}}},
            "limiter": {"algorithm": "none"},
            "breaker": {"preset": "none"},
            "backend": {"model": "llm", "max_num_seqs": 1, "max_num_batched_tokens": 64, "step_time": {"base": 0.0, "per_prefill_token": 0.0, "per_decode_token": STEP}, "failures": NO_FAILURES},
            "router": {"timeout": 1e6, "routing": routing},
            "deployments": [{"name": f"r{i}"} for i in range(K)],
            "targets": NO_TARGETS,
        }
    )


@pytest.fixture(scope="module")
def random_and_round_robin():
    return tuple(quiet(replicate, one_sequence_servers(routing), seed=21, replications=12) for routing in ("simple-shuffle", "round-robin"))


def test_random_routing_to_one_sequence_servers_is_pollaczek_khinchine(random_and_round_robin):
    randomly, _ = random_and_round_robin
    assert randomly.values("backend.utilization").mean() == pytest.approx(RHO, rel=0.03)
    expected_ms = (ES + RATE * ES2 / (2 * (1 - RHO))) * 1000.0  # M/G/1 mean response
    interval = t_interval(randomly.values("latency_ms.avg"), 0.999)
    assert interval.low <= expected_ms <= interval.high, (expected_ms, interval)


def test_round_robin_beats_random_on_mean_e2e_at_rho_07(random_and_round_robin):
    randomly, cyclic = random_and_round_robin
    difference = paired_t_interval(randomly.values("latency_ms.avg"), cyclic.values("latency_ms.avg"), 0.999)  # same arrivals and tokens
    assert difference.high < 0, difference
    shares = np.array(cyclic.summaries[0]["deployments"][0]["share"])
    assert shares == pytest.approx(1 / K, abs=0.001)  # exact within one request
