"""The built-in scenarios end to end: recovery gate, conservation, determinism, limits."""

import json
import subprocess
import sys

import numpy as np
import pytest

import simrouter
from simrouter.cli import EXIT_OK, EXIT_TARGET_FAILED, main
from simrouter.config import builtin_names

SEEDS = range(1, 6)


@pytest.mark.parametrize("seed", SEEDS)
def test_breaker_failure_trips_and_recovers_within_60s(seed):
    result = simrouter.simulate("breaker-failure", seed=seed)
    breaker = result.summary["breaker"]
    assert breaker["trips"] >= 1
    assert breaker["state"] == "closed"
    assert breaker["recovery_s"] is not None and breaker["recovery_s"] < 60.0
    # Independent computation from the transition log: the breaker re-opens for the last
    # time at `last_open`, may probe `open_duration` later, and the first arrival after
    # that (150/s) plus three probe answers (P99 234 ms) close it well within a second.
    scenario = result.scenario
    last_open = max(tr["t"] for tr in breaker["transitions"] if tr["to"] == "open")
    earliest = last_open + scenario.breaker.open_duration - scenario.faults[0].end
    assert earliest <= breaker["recovery_s"] < earliest + 1.0
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
    assert result.summary["latency_ms"]["count"] == backend


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
