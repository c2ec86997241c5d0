"""Issue 15, point 1: every result carries ``diagnosis: [{code, message}]`` and
the recommendation follows from it (simrouter.diagnosis)."""

from __future__ import annotations

import io
import json
import math
import socket

from rich.console import Console

import simrouter
from simrouter.diagnosis import codes, offered_work
from simrouter.report import print_dashboard
from simrouter.report.html_report import build_report

FIXED = 'backend.latency={dist="constant",value=0.1}'
NO_LATENCY_TARGETS = ["targets.p95_ms=inf", "targets.p99_ms=inf"]


def overloaded_scenario(*extra):
    # 300 arrivals/s x 0.1 s = 30 slot-seconds per second on 16 slots
    return simrouter.load_scenario(
        "baseline",
        ["workload.model=open", "workload.users=10", "workload.requests_per_user=0", "workload.rate=300", "duration=5", FIXED, *NO_LATENCY_TARGETS, *extra],
    )


def test_every_item_is_exactly_code_and_message_and_a_healthy_run_has_none():
    result = simrouter.simulate("baseline")
    assert result.summary["diagnosis"] == []
    data = json.loads(json.dumps(simrouter.simulate(overloaded_scenario()).to_dict()))
    assert data["diagnosis"] and all(set(item) == {"code", "message"} for item in data["diagnosis"])


def test_an_overloaded_scenario_is_diagnosed_with_the_slots_needed():
    scenario = overloaded_scenario()
    assert math.isclose(offered_work(scenario), 30.0)
    result = simrouter.simulate(scenario)
    diagnosis = result.summary["diagnosis"]
    assert codes(diagnosis)[0] == "overloaded"
    assert "30 slots" in diagnosis[0]["message"] and "16 slots" in diagnosis[0]["message"]
    advice = result.summary["breaker"]["recommendation"]
    assert "overloaded" in advice and "30 slots" in advice
    # Enough slots: not overloaded (30 < 32).
    assert "overloaded" not in codes(simrouter.simulate(overloaded_scenario("backend.capacity=32")).summary["diagnosis"])


def test_a_closed_workload_offers_users_over_the_cycle():
    # 10 users, no think time: 10 slots of demand, whatever the service time.
    scenario = simrouter.load_scenario("concurrent", ["backend.capacity=4", FIXED])
    assert math.isclose(offered_work(scenario), 10.0)
    assert "overloaded" in codes(simrouter.simulate(scenario).summary["diagnosis"])
    assert "overloaded" not in codes(simrouter.simulate(simrouter.load_scenario("concurrent", ["backend.capacity=10", FIXED])).summary["diagnosis"])


def test_a_latency_floor_above_the_target_says_no_capacity_can_meet_it():
    # lognormal median 300 ms, sigma 0.5: P95 = 300 * exp(0.5 * 1.6449) = 683 ms > 150 ms
    scenario = simrouter.load_scenario("concurrent", ['backend.latency={dist="lognormal",median=0.3,sigma=0.5}', "backend.capacity=48"])
    result = simrouter.simulate(scenario)
    floors = [item for item in result.summary["diagnosis"] if item["code"] == "latency_floor_above_target"]
    expected = 300 * math.exp(0.5 * 1.6448536269514722)
    assert len(floors) == 2 and f"{expected:.0f} ms" in floors[0]["message"] and "targets.p95_ms" in floors[0]["message"]
    advice = result.summary["breaker"]["recommendation"]
    assert "add backend capacity" not in advice and "no capacity can meet it" in advice


def test_a_backend_failing_everything_is_blamed_not_the_traffic():
    scenario = simrouter.load_scenario("concurrent", ["backend.failures.processing=1", "backend.failures.validation=0"])
    result = simrouter.simulate(scenario)
    found = codes(result.summary["diagnosis"])
    assert found[:3] == ["backend_failing", "breaker_tripped_by", "never_recovered"]
    tripped = result.summary["diagnosis"][1]["message"]
    assert "mostly by failures" in tripped and "0 timeouts" in tripped
    assert "investigate the backend" in result.summary["breaker"]["recommendation"]


def test_a_breaker_tripped_by_timeouts_says_so():
    scenario = simrouter.load_scenario("baseline", ['backend.latency={dist="constant",value=2.0}', "router.timeout=0.5", *NO_LATENCY_TARGETS])
    diagnosis = simrouter.simulate(scenario).summary["diagnosis"]
    tripped = next(item for item in diagnosis if item["code"] == "breaker_tripped_by")
    assert "5 timeouts" in tripped["message"] and "mostly by timeouts" in tripped["message"]


def test_a_resilience4j_breaker_tripped_by_slow_calls_says_so():
    overrides = [
        "breaker.preset=resilience4j", "breaker.slow_call_duration_threshold=0.05", "breaker.slow_call_rate_threshold=50",
        "breaker.minimum_number_of_calls=10", "breaker.sliding_window_size=10", "backend.failures.processing=0", *NO_LATENCY_TARGETS,
    ]
    diagnosis = simrouter.simulate(simrouter.load_scenario("baseline", overrides)).summary["diagnosis"]
    tripped = next(item for item in diagnosis if item["code"] == "breaker_tripped_by")
    assert "mostly by slow calls" in tripped["message"] and "10 calls" in tripped["message"]


def test_replications_merge_the_diagnosis_and_report_not_converged():
    scenario = overloaded_scenario()
    replicated = simrouter.replicate(scenario, replications=3)
    assert codes(replicated.summary["diagnosis"])[0] == "overloaded"
    assert "overloaded" in replicated.summary["breaker"]["recommendation"]
    short = simrouter.load_scenario("concurrent", ["workload.requests_per_user=10"])
    sequential = simrouter.replicate(short, replications=10, precision=0.0001, max_replications=10)
    assert sequential.summary["precision"]["converged"] is False
    assert "not_converged" in codes(sequential.summary["diagnosis"])
    assert "not_converged" in codes(sequential.to_dict()["diagnosis"])


def test_the_dashboard_and_the_html_report_show_the_diagnosis(tmp_path):
    result = simrouter.simulate(overloaded_scenario())
    buffer = io.StringIO()
    print_dashboard(result, Console(file=buffer, width=200))
    assert "overloaded: offered work 30.0" in buffer.getvalue()
    path = tmp_path / "run.json"
    path.write_text(json.dumps(result.to_dict()))
    html = build_report([path], progress=False)
    assert "Diagnosis" in html and "<code>overloaded</code>" in html


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_live_target_refusing_connections_is_diagnosed_unreachable():
    from simrouter.live.loadgen import LiveOptions, run_live

    scenario = simrouter.load_scenario("baseline", ["workload.requests_per_user=3"])
    result = run_live(scenario, f"http://127.0.0.1:{_free_port()}", LiveOptions(handle_signals=False))
    assert result.summary["requests"]["connect_errors"] == 3
    diagnosis = result.summary["diagnosis"]
    assert codes(diagnosis)[0] == "unreachable" and "3 of 3" in diagnosis[0]["message"]
    assert "could not connect" in result.summary["breaker"]["recommendation"]
