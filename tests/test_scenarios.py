"""The built-in scenarios end to end: recovery gate, conservation, determinism, limits."""

import json
import subprocess
import sys

import numpy as np
import pytest

import simrouter
from simrouter.cli import EXIT_OK, EXIT_TARGET_FAILED, main
from simrouter.config import builtin_names
from simrouter.outcomes import BACKEND_KINDS

SEEDS = range(1, 6)


@pytest.mark.parametrize("seed", SEEDS)
def test_breaker_failure_trips_and_recovers_within_60s(seed):
    result = simrouter.simulate("breaker-failure", seed=seed)
    breaker = result.summary["breaker"]
    assert breaker["trips"] >= 1
    assert breaker["state"] == "closed"
    assert breaker["recovery_s"] is not None and breaker["recovery_s"] < 60.0
    # Independent computation from the transition log: the breaker re-opens for the last
    # time at `last_open`; the first arrival after `open_duration` (150/s: within a second)
    # moves it to half-open, and its probes are answered within the router timeout.
    scenario = result.scenario
    transitions = breaker["transitions"]
    last_open = max(tr["t"] for tr in transitions if tr["to"] == "open")
    half_open = next(tr["t"] for tr in transitions if tr["to"] == "half_open" and tr["t"] > last_open)
    closed = transitions[-1]["t"]
    assert 0 <= half_open - (last_open + scenario.breaker.open_duration) < 1.0
    assert 0 < closed - half_open <= scenario.router.timeout
    assert breaker["recovery_s"] == pytest.approx(closed - scenario.faults[0].end)
    recovery_target = next(t for t in result.summary["targets"] if t["name"] == "breaker_recovery")
    assert recovery_target["passed"] is True


@pytest.mark.parametrize("name", builtin_names())
def test_every_request_counted_exactly_once(name):
    result = simrouter.simulate(name, seed=3)
    requests = result.summary["requests"]
    assert requests["sent"] == sum(v for k, v in requests.items() if k != "sent")
    assert len(result.sent) == requests["sent"]
    assert np.all(result.done >= result.sent)
    backend = requests["succeeded"] + requests["timeouts"] + requests["failures"]
    # Latency describes every request that spent time: a final try at the backend, or retries that waited.
    waited = int(((result.done > result.sent) & ~np.isin(result.kind, BACKEND_KINDS)).sum())
    assert result.summary["latency_ms"]["count"] == backend + waited


def test_same_seed_same_json_and_other_seed_differs():
    first = json.dumps(simrouter.simulate("breaker-failure", seed=7).to_dict())
    again = json.dumps(simrouter.simulate("breaker-failure", seed=7).to_dict())
    other = json.dumps(simrouter.simulate("breaker-failure", seed=8).to_dict())
    assert first == again
    assert first != other


def test_rate_limit_stress_admits_at_most_rate_times_time_plus_burst():
    result = simrouter.simulate("rate-limit-stress", seed=2)
    s = result.scenario
    requests = result.summary["requests"]
    admitted = requests["sent"] - requests["rate_limited"]
    # Each of the 10 keys gets 40 arrivals/s against 20 tokens/s: its bucket admits at most
    # burst + rate * T, and at twice the rate it is almost never idle with a token to spare.
    ceiling = s.workload.users * (s.limiter.burst + s.limiter.rate * s.duration)
    assert admitted <= ceiling
    assert admitted >= 0.97 * ceiling
    assert requests["rate_limited"] > 0.4 * requests["sent"]


def test_open_workload_sends_rate_times_duration():
    # Poisson arrivals at 400/s for 30 s: 12,000 expected, sd ~110; 5 sd is a wide margin.
    sent = simrouter.simulate("rate-limit-stress", seed=4).summary["requests"]["sent"]
    assert abs(sent - 12_000) < 5 * 12_000**0.5


def test_stages_change_the_arrival_rate():
    result = simrouter.simulate(
        "rate-limit-stress", seed=1,
        overrides=["workload.rate=0", "workload.stages=[{ duration = 10, rate = 50 }, { duration = 10, rate = 200 }]",
                   "workload.arrival=constant", "limiter.algorithm=none", "duration=20"],
    )
    first = int((result.sent < 10).sum())
    second = int((result.sent >= 10).sum())
    assert first == 500 and second == 2000  # constant spacing from each stage's start


def test_timeout_frees_the_user_not_the_backend():
    result = simrouter.simulate(
        "concurrent", seed=1,
        overrides=["router.timeout=0.05", "breaker.preset=none", "workload.requests_per_user=20"],
    )
    frame = result.to_frame()
    timed_out = frame[frame["outcome"] == "timeouts"]
    assert len(timed_out) > 0
    assert np.allclose(timed_out["latency_ms"], 50.0)
    # The backend kept serving them: busy time exceeds what the users waited for.
    admitted = frame[frame["outcome"].isin(["succeeded", "timeouts", "failures"])]
    assert result.backend_busy_s > admitted["latency_ms"].sum() / 1000 - 1e-9


def test_run_writes_json_and_check_sets_exit_status(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["run", "concurrent", "--json", str(out), "--check"]) == EXIT_OK
    data = json.loads(out.read_text())
    for key in ("scenario", "seed", "sim_time_s", "requests", "latency_ms", "throughput", "error_rate", "breaker", "targets"):
        assert key in data
    assert set(data["latency_ms"]) >= {"p50", "p90", "p95", "p99", "max", "min", "avg", "count"}
    assert set(data["breaker"]) >= {"state", "healthy", "failure_rate", "avg_response_ms", "recommendation", "trips", "transitions", "recovery_s"}
    assert main(["run", "breaker-failure", "--check", "--set", "targets.max_recovery_s=5"]) == EXIT_TARGET_FAILED


def test_module_and_console_script_entry_points():
    listing = subprocess.run([sys.executable, "-m", "simrouter", "scenarios"], capture_output=True, text=True, check=True)
    for name in builtin_names():
        assert name in listing.stdout
    bad = subprocess.run([sys.executable, "-m", "simrouter", "run", "concurrent", "--set", "backend.capacity=0"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "backend.capacity" in bad.stderr and "Traceback" not in bad.stderr


def test_latency_fault_window_slows_requests_inside_it():
    result = simrouter.simulate(
        "breaker-failure", seed=5,
        overrides=["faults.0.error_rate=0", "faults.0.latency_factor=10", "faults.0.start=10", "faults.0.end=20",
                   "duration=30", "backend.capacity=200", "router.timeout=inf", "breaker.preset=none"],
    )
    frame = result.to_frame()
    admitted = frame[frame["outcome"] == "succeeded"]
    inside = admitted[(admitted["sent_s"] >= 10) & (admitted["sent_s"] < 20)]["latency_ms"].median()
    outside = admitted[admitted["sent_s"] < 10]["latency_ms"].median()
    # With 200 slots nothing queues, so the medians differ by the latency factor (within sampling noise).
    assert inside / outside == pytest.approx(10, rel=0.1)


def test_timeseries_shows_the_trip_and_the_recovery():
    result = simrouter.simulate("breaker-failure", seed=1)
    series = result.timeseries(interval=1.0)
    assert {"t_s", "rps", "p95_ms", "breaker_state", "breaker_rejected"} <= set(series.columns)
    assert series["rps"].sum() == pytest.approx(result.summary["requests"]["sent"])
    during = series[(series["t_s"] >= 35) & (series["t_s"] < 45)]
    assert (during["breaker_state"] != "closed").all() and during["breaker_rejected"].sum() > 0
    assert series["breaker_state"].iloc[-1] == "closed"


def test_concurrent_reproduces_the_seed_dashboard_within_10_percent():
    # The seed's dashboard: P50 45.2, P90 89.3, P95 125.7, P99 234.1, average 67.8 ms,
    # 156.3 req/s. Averaged over 40 replications (sd of each mean < 1.5 %). P99 is judged
    # by its median: 0.65 % of calls are slow (~2.3 s), so a 1000-request run has >= 10
    # of them about one time in eight and its P99 jumps into the slow mode; the mean of
    # P99 across runs is dominated by those runs (README, "How the default was chosen").
    runs = [simrouter.simulate("concurrent", seed=1, replication=k).summary for k in range(40)]
    latency = {key: [r["latency_ms"][key] for r in runs] for key in ("p50", "p90", "p95", "p99", "avg")}
    seed = {"p50": 45.2, "p90": 89.3, "p95": 125.7, "avg": 67.8}
    for key, value in seed.items():
        assert np.mean(latency[key]) == pytest.approx(value, rel=0.10), key
    assert np.median(latency["p99"]) == pytest.approx(234.1, rel=0.10)
    assert np.mean([r["throughput"]["rps"] for r in runs]) == pytest.approx(156.3, rel=0.10)
    assert sum(r["requests"]["rate_limited"] for r in runs) == 0  # the default limit sits above one user's rate
