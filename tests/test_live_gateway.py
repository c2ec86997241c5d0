"""``simrouter serve`` as a gateway: several stand-in deployments behind one router, live.

One shortened ``failover`` (three deployments, 40 req/s for 15 s, ``west`` failing
every call from 3 s to 9 s, LiteLLM cooldowns of 1 s) is served by ``simrouter
serve`` in a subprocess (the path ``simrouter compare failover`` takes: the scenario
written as TOML, ``serve`` picking the gateway) and run by ``compare`` against it,
which posts ``west``'s fault window to ``/admin/faults`` with ``"deployment":
"west"``. A thread scrapes ``/metrics`` every 0.25 s meanwhile, so each
deployment's attempts can be cut into intervals of the service's own clock (the
fault window is reported on that clock). About 20 s in all; the admin checks run
against a ``ServiceThread`` without load.

Why the bounds hold (healthy share 1/3 each, ~13 attempts/s to west):

* LiteLLM with ``allowed_fails = 3`` cools west down at its 4th failure within a
  cooldown of the first: 0.18-0.65 s into the fault in 20 simulated runs (live:
  0.66 s), inside ``COOLDOWN + SLACK`` = 1.5 s;
* during the fault (after its first cooldown) west is available a fraction of
  each ~1.3 s cycle: its share of the attempts was 7.4-10.7 % in those 20 runs
  (live: 9.7 %), bounded here at 20 % (healthy: 33 %; ~220 attempts, so 20 % is
  ~5 sd above 9 %);
* after the fault (and its last cooldown) west is back to ~1/3 (28-37 % in the
  20 runs, live 30 %): bounded below at 20 % (~180 attempts: ~3.5 sd under 1/3);
* the live service draws replication 0's random numbers (common random numbers),
  so its healthy deployments' shares match replication 0's ("paired") up to what
  the real clock reorders: within ``PAIRED_SHARE_TOLERANCE`` = 2 points (measured:
  0.1-0.3 points), while the replications' own spread is ~2.3 points.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

import simrouter
from simrouter.config import scenario_from_dict
from simrouter.live.compare import compare, serve_subprocess
from simrouter.live.loadgen import LiveOptions
from simrouter.live.service import ATTEMPTS_HEADER, DEPLOYMENT_HEADER
from simrouter.live.service_thread import ServiceThread

SEED = 1
FAULT_START, FAULT_END = 3.0, 9.0
COOLDOWN = 1.0
SLACK = 0.5  # event-loop and scrape timing on a shared 2-core machine
OVERRIDES = [
    "duration=15",
    "workload.rate=40",
    f"breaker.cooldown_time={COOLDOWN}",
    f"deployments.1.faults.0.start={FAULT_START}",
    f"deployments.1.faults.0.end={FAULT_END}",
]
FAILED, HEALTHY = "west", ("east", "central")
PAIRED_SHARE_TOLERANCE = 0.02


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


class MetricsSampler(threading.Thread):
    """Scrapes ``/metrics`` every ``period`` s: (service clock, attempts per deployment)."""

    def __init__(self, url: str, period: float = 0.25):
        super().__init__(daemon=True)
        self.url, self.period = url, period
        self.samples: list[tuple[float, dict[str, int]]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.period):
            data = _get_json(self.url + "/metrics")
            self.samples.append((data["service"]["uptime_s"], {d["name"]: d["requests"]["sent"] for d in data["deployments"]}))

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def share(self, name: str, start: float, end: float) -> tuple[float, int]:
        """(``name``'s share of the attempts routed from ``start`` to ``end``, their number),
        between the first samples at or after each time."""
        first = next(counts for t, counts in self.samples if t >= start)
        last = next((counts for t, counts in self.samples if t >= end), self.samples[-1][1])
        routed = sum(last.values()) - sum(first.values())
        return (last[name] - first[name]) / routed, routed


@dataclass
class Run:
    comparison: object
    sampler: MetricsSampler
    metrics: dict
    prometheus: str

    @property
    def fault(self) -> dict:
        (window,) = [w for w in self.metrics["service"]["faults"] if w["deployment"] == FAILED]
        return window

    def deployment(self, name: str) -> dict:
        return next(d for d in self.metrics["deployments"] if d["name"] == name)


@pytest.fixture(scope="module")
def run() -> Run:
    scenario = simrouter.load_scenario("failover", OVERRIDES)
    with serve_subprocess(scenario, SEED) as (url, token):
        sampler = MetricsSampler(url)
        sampler.start()
        try:
            comparison = compare(scenario, seed=SEED, replications=5, target=url, options=LiveOptions(admin_token=token, handle_signals=False, progress=False))
        finally:
            sampler.stop()
        metrics = _get_json(url + "/metrics")
        with urllib.request.urlopen(url + "/metrics/prometheus", timeout=5) as answer:
            prometheus = answer.read().decode()
    return Run(comparison, sampler, metrics, prometheus)


def test_live_posts_the_deployments_fault_to_that_deployment_only(run):
    live = run.comparison.live
    assert live.fault_injection["requested"] == 1 and live.fault_injection["injected"]
    windows = run.metrics["service"]["faults"]
    assert [w["deployment"] for w in windows] == [FAILED]
    assert run.fault["end"] - run.fault["start"] == pytest.approx(FAULT_END - FAULT_START)
    for name in HEALTHY:  # they saw no window, so their attempts failed only at the backend's own 0.2 %
        assert run.deployment(name)["requests"]["failures"] <= 0.02 * run.deployment(name)["requests"]["sent"]
        assert run.deployment(name)["breaker"]["trips"] == 0


def test_traffic_leaves_the_failed_deployment_within_its_cooldown(run):
    start, end = run.fault["start"], run.fault["end"]
    west = run.deployment(FAILED)["breaker"]
    first_open = next(tr["t"] for tr in west["transitions"] if tr["to"] == "open")
    assert start <= first_open <= start + COOLDOWN + SLACK
    share, routed = run.sampler.share(FAILED, start + COOLDOWN + SLACK, end)
    assert routed > 150
    assert share < 0.20, f"west kept {share:.1%} of {routed} attempts during its fault (healthy: 33 %)"


def test_success_stays_high_with_fallbacks(run):
    live = run.comparison.live.summary
    assert live["error_rate"] <= 0.01
    fallbacks = run.metrics["fallbacks"]
    west_failures = run.deployment(FAILED)["requests"]["failures"]
    assert west_failures >= 20  # the fault was felt ...
    assert fallbacks["total"] >= west_failures  # ... and each failed attempt at west fell back
    assert fallbacks["succeeded_after_fallback"] >= 0.95 * fallbacks["total"]
    assert run.metrics["requests"]["failures"] <= west_failures / 10


def test_the_failed_deployment_gets_its_traffic_back_after_the_fault(run):
    west = run.deployment(FAILED)["breaker"]
    assert west["state"] == "closed" and west["recovered"] is True
    assert 0 <= west["recovery_s"] <= COOLDOWN + SLACK  # back at its last cooldown's end
    share, routed = run.sampler.share(FAILED, run.fault["end"] + COOLDOWN + SLACK, float("inf"))
    assert routed > 100
    assert share > 0.20, f"west got only {share:.1%} of {routed} attempts after its fault (healthy: 33 %)"


def test_metrics_deployments_section_adds_up(run):
    m = run.metrics
    attempts, requests = m["attempts"], m["requests"]
    # Two independent tallies: one per request (+ its fallbacks), one per attempt where it went.
    assert attempts["total"] == requests["sent"] + m["fallbacks"]["total"]
    assert attempts["total"] == attempts["routed"] + attempts["no_deployment"] + attempts["router_rejected"]
    assert attempts["routed"] == sum(d["requests"]["sent"] for d in m["deployments"])
    for d in m["deployments"]:
        counts = d["requests"]
        assert counts["sent"] == sum(v for k, v in counts.items() if k != "sent")
        assert set(d["breaker"]) >= {"state", "trips", "transitions", "recovery_s"} and 0 <= d["utilisation"] < 1
    assert sum(d["share"] for d in m["deployments"]) == pytest.approx(1.0)
    assert requests["sent"] == run.comparison.live.summary["requests"]["sent"]  # the generator's own count
    assert m["breaker"]["preset"] == "per-deployment" and m["breaker"]["trips"] == run.deployment(FAILED)["breaker"]["trips"]
    # Prometheus: the same counts per deployment label.
    lines = [line for line in run.prometheus.splitlines() if line.startswith("simrouter_deployment_attempts_total{")]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in lines) == attempts["routed"]
    west_failures = f'simrouter_deployment_attempts_total{{deployment="{FAILED}",kind="failures"}}'
    assert any(line.startswith(west_failures + " ") and float(line.rsplit(" ", 1)[1]) == run.deployment(FAILED)["requests"]["failures"] for line in lines)
    assert f"simrouter_fallbacks_total {float(m['fallbacks']['total'])}" in run.prometheus


def test_compare_lines_up_per_deployment_share_and_recovery(run):
    comparison = run.comparison
    metrics = [r.metric for r in comparison.rows]
    for name in (FAILED, *HEALTHY):
        assert f"deployments.{name}.share" in metrics
    assert f"deployments.{FAILED}.breaker.recovery_s" in metrics
    assert "breaker.recovery_s" not in metrics  # the run-wide breaker's figures are the deployments'
    paired = {d["name"]: d["share"] for d in comparison.sim_summaries[0]["deployments"]}
    for name in HEALTHY:
        row = comparison.row(f"deployments.{name}.share")
        assert row.verdict in ("yes", "inconclusive") and row.sim_runs == 5
        assert abs(row.live - paired[name]) <= PAIRED_SHARE_TOLERANCE, (name, row.live, paired[name])
    recovery = comparison.row(f"deployments.{FAILED}.breaker.recovery_s")
    assert recovery.live is not None and recovery.verdict != "no"


# -- the admin endpoint and the answers' headers, without load

GATEWAY = {
    "name": "gw-admin",
    "duration": 5.0,
    "backend": {"capacity": 4, "latency": {"dist": "constant", "value": 0.002}, "failures": {"processing": 0.0, "validation": 0.0}},
    "router": {"routing": "round-robin", "max_fallbacks": 0},
    "deployments": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
}


def _post(url: str, path: str, body: dict, token: str | None = "T") -> tuple[int, dict, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_admin_fault_naming_one_deployment_hits_only_it_and_answers_name_the_deployment():
    with ServiceThread(scenario_from_dict(GATEWAY), admin_token="T") as svc:
        status, _, body = _post(svc.url, "/admin/faults", {"start": 0, "end": 30, "error_rate": 1.0, "deployment": "b"})
        assert status == 200 and body["added"][0]["deployment"] == "b"
        answers = [_post(svc.url, "/submit", {"user": i}, token=None) for i in range(30)]
    by_deployment = {}
    for status, headers, _ in answers:
        assert headers[ATTEMPTS_HEADER] == "1"  # max_fallbacks = 0
        by_deployment.setdefault(headers[DEPLOYMENT_HEADER], set()).add(status)
    # b fails every call it gets (until its breaker takes it out of the rotation); a and c none.
    assert set(by_deployment) <= {"a", "b", "c"} and by_deployment["a"] == {200} and by_deployment["c"] == {200}
    assert 200 not in by_deployment["b"]


def test_admin_fault_with_an_unknown_deployment_is_a_422_naming_the_field():
    with ServiceThread(scenario_from_dict(GATEWAY), admin_token="T") as svc:
        status, _, body = _post(svc.url, "/admin/faults", {"faults": [{"start": 0, "end": 1, "error_rate": 1.0, "deployment": "nowhere"}]})
        assert status == 422
        assert body["error"].startswith("deployment:") and "'nowhere'" in body["error"] and "a, b, c" in body["error"]
        # Overlaps count per deployment: a window for all over one of b's own is refused, naming where.
        assert _post(svc.url, "/admin/faults", {"start": 1, "end": 3, "error_rate": 1.0, "deployment": "b"})[0] == 200
        status, _, body = _post(svc.url, "/admin/faults", {"start": 2, "end": 4, "error_rate": 1.0})
        assert status == 422 and "overlaps" in body["error"] and "deployments.1" in body["error"]
        metrics = _get_json(svc.url + "/metrics")
        assert [w["deployment"] for w in metrics["service"]["faults"]] == ["b"]
    single = {key: value for key, value in GATEWAY.items() if key != "deployments"}
    with ServiceThread(scenario_from_dict(single), admin_token="T") as svc:
        status, _, body = _post(svc.url, "/admin/faults", {"start": 0, "end": 1, "error_rate": 1.0, "deployment": "a"})
        assert status == 422 and body["error"].startswith("deployment:")
