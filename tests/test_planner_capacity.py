"""Issue 15, point 2: ``simrouter capacity`` / ``simrouter.capacity`` against Erlang C inverted exactly.

An open Poisson workload into ``c`` FIFO slots with exponential service, no
limiter, breaker, failures or timeout, is M/M/c (tests/test_queueing_model.py).
With only the P95 target checked, the highest passing arrival rate is the rate
lambda* at which the M/M/c P95 response time equals the target (found here by
Brent's method on ``theory.mmc_response_percentile``).

Tolerance: each probe is 4 replications of 2,000 s (about 235k measured
requests at lambda*); the pooled P95's 95 % sectioning interval is about +/- 4 %
there, and the P95's elasticity to lambda near lambda* is about 1.5
(theory: +2 % lambda gives +3.2 % P95), so one probe's verdict is uncertain
within about +/- 2.7 % of lambda*. The search's answer must lie within
REL_TOL = 4 % of lambda* (measured while writing: +0.05 % with seed 1), and
lambda* inside the reported ci95. Seeds are fixed: the test is deterministic.
"""

from __future__ import annotations

import json
import math

import pytest
from scipy.optimize import brentq

import simrouter
from simrouter import BackendConfig, BreakerConfig, Exponential, Failures, LimiterConfig, RouterConfig, Scenario, Targets, WorkloadConfig, theory
from simrouter.cli import main

MU, C, P95_S = 10.0, 4, 0.4
REL_TOL = 0.04


def mmc(rate: float, capacity: int, p95_s: float, duration: float) -> Scenario:
    return Scenario(
        name="mmc",
        duration=duration,
        warmup=20.0,
        workload=WorkloadConfig(model="open", rate=rate, arrival="poisson", users=1),
        limiter=LimiterConfig(algorithm="none"),
        breaker=BreakerConfig(preset="none"),
        backend=BackendConfig(capacity=capacity, queue_limit=10**9, latency=Exponential(1.0 / MU), failures=Failures(0, 0, 0)),
        router=RouterConfig(timeout=math.inf),
        targets=Targets(p95_ms=p95_s * 1000.0, p99_ms=math.inf, min_rps=0, max_error_rate=0.5, max_recovery_s=math.inf),
    )


def test_the_highest_passing_rate_is_erlang_c_inverted():
    lam_star = brentq(lambda lam: theory.mmc_response_percentile(0.95, lam, MU, C) - P95_S, 1.0, C * MU - 1e-9)
    result = simrouter.capacity(mmc(20.0, C, P95_S, 2000.0), "workload.rate", (10.0, 39.0), replications=4, tolerance=0.25)
    data = result.to_dict()
    assert data["parameter"] == "workload.rate" and "min_passing" not in data
    assert abs(data["max_passing"] / lam_star - 1) < REL_TOL, (data["max_passing"], lam_star)
    low, high = data["ci95"]
    assert low <= lam_star <= high and low <= data["max_passing"] <= high
    assert data["binding_target"] == "p95_latency"
    values = sorted(p["value"] for p in data["probes"])
    assert values[0] == 10.0 and values[-1] == 39.0
    # the final bracket: the answer passed, a probe within the tolerance above it failed
    failing_above = [p["value"] for p in data["probes"] if not p["passed"] and p["value"] > data["max_passing"]]
    assert min(failing_above) - data["max_passing"] <= 0.25


def test_the_fewest_slots_is_the_smallest_c_whose_mmc_p95_meets_the_target():
    lam, target = 25.0, 0.325
    # theory: c = 4 misses it by 5 %, c = 5 meets it with 5 % to spare
    assert theory.mmc_response_percentile(0.95, lam, MU, 4) > 1.05 * target
    assert theory.mmc_response_percentile(0.95, lam, MU, 5) < 0.95 * target
    result = simrouter.capacity(mmc(lam, 8, target, 1000.0), "backend.capacity", (3, 12), replications=4)
    data = result.to_dict()
    assert data["min_passing"] == 5 and "max_passing" not in data
    assert data["binding_target"] == "p95_latency"


def test_probes_share_their_random_numbers(monkeypatch):
    import simrouter.capacity_search as search

    seeds = []
    real = search.replicate

    def spy(scenario, seed, **kwargs):
        seeds.append((seed, kwargs["replications"]))
        return real(scenario, seed, **kwargs)

    monkeypatch.setattr(search, "replicate", spy)
    simrouter.capacity(mmc(20.0, C, P95_S, 100.0), "workload.rate", (10.0, 39.0), replications=2, seed=7, tolerance=5.0)
    assert len(seeds) >= 3 and set(seeds) == {(7, 2)}


def test_a_range_that_fails_at_its_passing_end_has_no_answer():
    result = simrouter.capacity(mmc(20.0, C, 0.2, 100.0), "workload.rate", (10.0, 39.0), replications=2)  # below 1/mu * ln 20
    assert result.answer is None and "fail already" in result.note and result.to_dict()["max_passing"] is None


def test_the_command_writes_the_json_contract_and_a_plot(tmp_path):
    out, plots = tmp_path / "capacity.json", tmp_path / "plots"
    status = main([
        "capacity", "concurrent", "--vary", "backend.capacity", "--range", "2:16", "--replications", "2",
        "--set", "workload.requests_per_user=30", "--set", "targets.p99_ms=5000", "--json", str(out), "--plot", str(plots), "--label", "small",
    ])
    assert status == 0
    data = json.loads(out.read_text())
    assert {"parameter", "min_passing", "ci95", "probes", "binding_target"} <= set(data)
    assert data["parameter"] == "backend.capacity" and isinstance(data["min_passing"], int)
    assert [p.name for p in plots.iterdir()] == ["capacity-concurrent-backend.capacity-small.png"]


@pytest.mark.parametrize("argv, field", [
    (["--vary", "workload.rate", "--range", "9"], "--range"),
    (["--vary", "workload.rate", "--range", "50:10"], "--range"),
    (["--vary", "backend.nope", "--range", "1:5"], "--vary"),
    (["--vary", "backend.capacity", "--range", "1.5:5"], "--range"),
])
def test_bad_search_arguments_are_one_configuration_error(argv, field, capsys):
    assert main(["capacity", "concurrent", *argv]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
