"""Routing to k identical M/M/1 deployments against queueing theory (docs/gateway.md).

k deployments, each one slot with exponential service (rate ``MU``), no
limiter, breaker, failures or timeout, fed by one Poisson stream of rate
``LAM`` (rho = LAM / (k MU) = 0.8):

* ``simple-shuffle`` with equal weights splits the Poisson stream at random:
  k independent M/M/1 queues at LAM / k, response time exponential with rate
  MU - LAM / k: mean 1 / (MU - LAM/k), P95 -ln(0.05) / (MU - LAM/k)
  (``simrouter.theory.mmc_*`` with c = 1);
* ``round-robin`` gives each deployment every k-th arrival: Erlang-k
  inter-arrival times, an E_k/M/1 queue. Its response time is exponential with
  rate MU (1 - sigma), sigma the root in (0, 1) of sigma = A*(MU (1 - sigma)),
  A*(s) = (LAM / (LAM + s))^k the Erlang-k LST (Kleinrock, Queueing Systems I,
  6.4), computed here by fixed-point iteration, independently of the engine;
* ``least-busy`` (join the shortest queue) and ``power-of-two`` use the queue
  lengths: lower still than random. Their values have no closed form; the
  ordering random > round-robin and random > power-of-two >= least-busy is
  pinned (within the intervals).

Each figure is checked against the 99 % interval of 10 replications of 120 s
after a 10 s warm-up (about 29,000 requests each); the seed is fixed, so the
test is deterministic, and the interval says how close the simulation must
come. Also at engine level: round-robin shares exact within one request, and
weighted shuffle shares within a binomial bound.
"""

import math

import numpy as np
import pytest

import simrouter
from simrouter import theory

K, MU, LAM = 3, 100.0, 240.0
MM1 = [
    'limiter.algorithm="none"',
    'breaker.preset="none"',
    "backend.failures.processing=0",
    "backend.failures.validation=0",
    "backend.failures.timeout=0",
    'backend.latency={ dist = "exponential", mean = 0.01 }',
    "backend.capacity=1",
    "backend.queue_limit=100000",
    "router.timeout=inf",
    'workload.model="open"',
    f"workload.rate={LAM}",
    "duration=130.0",
    "warmup=10.0",
    "faults=[]",
    'deployments=[{ name = "a" }, { name = "b" }, { name = "c" }]',
]


@pytest.fixture(scope="module")
def runs():
    return {
        routing: simrouter.replicate("baseline", seed=1, replications=10, overrides=[*MM1, f'router.routing="{routing}"'])
        for routing in ("simple-shuffle", "round-robin", "power-of-two", "least-busy")
    }


def within(result, key, value):
    interval = result.interval(key, level=0.99)
    return interval.low <= value <= interval.high, (key, value, interval)


def erlang_sigma(k: int, lam: float, mu: float) -> float:
    """The root in (0, 1) of sigma = (lam / (lam + mu (1 - sigma)))^k (E_k/M/1), by iteration."""
    sigma = 0.0
    for _ in range(10_000):
        sigma, previous = (lam / (lam + mu * (1.0 - sigma))) ** k, sigma
        if abs(sigma - previous) < 1e-15:
            break
    return sigma


def test_random_routing_is_k_independent_mm1_queues(runs):
    result = runs["simple-shuffle"]
    mean_ms = 1000.0 * theory.mmc_response_mean(LAM / K, MU, 1)
    p95_ms = 1000.0 * theory.mmc_response_percentile(0.95, LAM / K, MU, 1)
    assert mean_ms == pytest.approx(1000.0 / (MU - LAM / K)) and p95_ms == pytest.approx(1000.0 * -math.log(0.05) / (MU - LAM / K))
    ok, detail = within(result, "latency_ms.avg", mean_ms)
    assert ok, detail
    ok, detail = within(result, "latency_ms.p95", p95_ms)
    assert ok, detail
    for d in range(K):  # each deployment alone is an M/M/1 at LAM / K
        ok, detail = within(result, f"deployments.{d}.latency_ms.avg", mean_ms)
        assert ok, detail
        assert result.summary["deployments"][d]["utilisation"] == pytest.approx(LAM / K / MU, abs=0.02)


def test_round_robin_is_erlang_k_arrivals(runs):
    sigma = erlang_sigma(K, LAM, MU)
    assert 0.0 < sigma < LAM / K / MU  # Erlang arrivals are more regular than Poisson: sigma < rho
    mean_ms = 1000.0 / (MU * (1.0 - sigma))
    ok, detail = within(runs["round-robin"], "latency_ms.avg", mean_ms)
    assert ok, detail
    ok, detail = within(runs["round-robin"], "latency_ms.p95", mean_ms * -math.log(0.05))
    assert ok, detail


def test_routing_that_sees_queues_does_better(runs):
    mean = {name: result.interval("latency_ms.avg", level=0.99) for name, result in runs.items()}
    assert mean["simple-shuffle"].low > mean["round-robin"].high
    assert mean["simple-shuffle"].low > mean["power-of-two"].high
    assert mean["power-of-two"].high >= mean["least-busy"].low  # p2c >= JSQ
    assert mean["power-of-two"].mean > mean["least-busy"].mean


def test_round_robin_shares_are_exact_within_one_request():
    result = simrouter.simulate("baseline", seed=2, overrides=[*MM1, 'router.routing="round-robin"', "duration=20.0", "warmup=0.0"])
    counts = np.bincount(result.attempt_log.deployment, minlength=K)
    assert counts.max() - counts.min() <= 1
    order = result.attempt_log.deployment[np.argsort(result.attempt_log.sent, kind="stable")]
    so_far = np.cumsum(np.eye(K, dtype=int)[order], axis=0)  # picks per deployment after each send
    assert (so_far.max(axis=1) - so_far.min(axis=1) <= 1).all()  # at every moment, not just at the end


def test_weighted_shuffle_shares_follow_the_weights():
    weighted = 'deployments=[{ name = "a", weight = 1.0 }, { name = "b", weight = 2.0 }, { name = "c", weight = 3.0 }]'
    result = simrouter.simulate("baseline", seed=3, overrides=[*MM1, weighted, "workload.rate=150", "duration=60.0", "warmup=0.0"])
    counts = np.bincount(result.attempt_log.deployment, minlength=K)
    n = counts.sum()
    for count, p in zip(counts, (1 / 6, 2 / 6, 3 / 6)):
        assert abs(count - n * p) <= 4.0 * math.sqrt(n * p * (1 - p))  # 4 sigma of the binomial
    shares = [d["share"] for d in result.summary["deployments"]]
    assert shares == pytest.approx((counts / n).tolist())
