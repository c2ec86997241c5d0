"""``simrouter live`` against a gateway: the live summary carries the target's
``deployments``, ``fallbacks`` and ``attempts`` (``LiveResult``), on the generator's clock.

One shortened ``failover`` (three deployments, 30 req/s for 8 s, ``west`` failing
every call from 2 s to 5 s, LiteLLM cooldowns of 1 s) against a ``ServiceThread``
in this process, started for this run (so the service's whole-run population
is this run's requests, warm-up 0). About 9 s.

What could fail: the sections missing (the summary of a plain target); figures
that differ from the target's ``/metrics`` read right after the run; transitions
left on the service's clock (its clock started before the generator's, by the
service's start-up, so ``/metrics`` times are larger by ``clock_offset_s``'s
magnitude); the run's ``breaker`` left at no trips (the target's run-wide
transitions are empty behind a gateway); ``recovery:west`` not judged.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

import simrouter
from simrouter.live.loadgen import LiveOptions, run_live
from simrouter.live.service_thread import ServiceThread

SEED = 1
FAULT_START, FAULT_END = 2.0, 5.0
COOLDOWN = 1.0
SLACK = 0.5  # event-loop timing on a shared 2-core machine
OVERRIDES = [
    "duration=8",
    "workload.rate=30",
    f"breaker.cooldown_time={COOLDOWN}",
    f"deployments.1.faults.0.start={FAULT_START}",
    f"deployments.1.faults.0.end={FAULT_END}",
]
STARTUP_GAP_S = 0.3  # the service's clock runs this long before the generator's starts


@pytest.fixture(scope="module")
def run():
    scenario = simrouter.load_scenario("failover", OVERRIDES)
    with ServiceThread(scenario, seed=SEED, admin_token="T") as service:
        time.sleep(STARTUP_GAP_S)  # so the two clocks differ by a measurable offset, not by chance
        live = run_live(scenario, service.url, LiveOptions(admin_token="T", handle_signals=False, progress=False, seed=SEED))
        with urllib.request.urlopen(service.url + "/metrics", timeout=5) as answer:
            metrics = json.loads(answer.read())
    return live, metrics


def test_the_live_summary_has_the_targets_gateway_sections(run):
    live, metrics = run
    summary = live.summary
    assert [d["name"] for d in summary["deployments"]] == ["east", "west", "central"]
    assert summary["fallbacks"] == metrics["fallbacks"] and summary["fallbacks"]["total"] > 0
    assert summary["attempts"] == metrics["attempts"]
    assert summary["attempts"]["total"] == summary["requests"]["sent"] + summary["fallbacks"]["total"]  # a fresh service, warm-up 0
    for own, served in zip(summary["deployments"], metrics["deployments"]):
        assert own["requests"] == served["requests"] and own["share"] == served["share"]
    as_json = live.to_dict()  # what `simrouter live --json` writes
    assert [d["name"] for d in as_json["deployments"]] == ["east", "west", "central"] and "fallbacks" in as_json


def test_deployment_transitions_are_on_the_generators_clock(run):
    live, metrics = run
    offset = live.target_metrics["clock_offset_s"]
    assert offset < -STARTUP_GAP_S / 2  # the service's clock is ahead of the generator's
    west = next(d for d in live.summary["deployments"] if d["name"] == "west")["breaker"]
    served = next(d for d in metrics["deployments"] if d["name"] == "west")["breaker"]
    assert west["trips"] >= 1
    assert [tr["t"] for tr in west["transitions"]] == pytest.approx([tr["t"] + offset for tr in served["transitions"][: len(west["transitions"])]])
    # live posted the fault at the generator's 0 + FAULT_START: west opened within its cooldown of that.
    first_open = next(tr["t"] for tr in west["transitions"] if tr["to"] == "open")
    assert FAULT_START <= first_open <= FAULT_START + COOLDOWN + SLACK
    (recovery,) = west["recoveries"]
    assert recovery["fault_end"] == pytest.approx(FAULT_END, abs=SLACK)


def test_the_runs_breaker_and_targets_come_from_the_deployments(run):
    live, _ = run
    summary = live.summary
    west = next(d for d in summary["deployments"] if d["name"] == "west")["breaker"]
    breaker = summary["breaker"]
    assert breaker["preset"] == "per-deployment" and breaker["trips"] == west["trips"]
    assert breaker["recovered"] is True and breaker["recovery_s"] == west["recovery_s"]
    names = {t["name"]: t for t in summary["targets"]}
    assert names["recovery:west"]["value"] == west["recovery_s"] and names["recovery:west"]["passed"] is True
