"""The router's breaker observed from outside through ``simrouter proxy``.

``observe`` on synthetic traffic against its stated rule; then ``simrouter serve``
(default breaker) whose backend is reached through the proxy, the proxy injecting the
fault: ``simrouter compare breaker-failure --fault-proxy`` (a live run plus the
simulation) observes a recovery within 1 s of the service's own breaker transitions
(read from its ``/metrics``) and lines them up against the simulated ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simrouter.cli import main
from simrouter.config import FaultWindow, Scenario, load_scenario
from simrouter.live.classify import LIVE_KIND_NAMES
from simrouter.live.observed_breaker import BIN_S, observe
from simrouter.live.service_thread import ServiceThread, serving
from simrouter.outcomes import BREAKER_REJECTED, SUCCESS
from simrouter.proxy.server import ProxyThread
from simrouter.proxy.upstream import upstream_factory

TOKEN = "breaker-test-token"


def synthetic(open_from: float, open_until: float, fault: FaultWindow, rate: float = 200.0, end: float = 10.0):
    sent = np.arange(0, end, 1 / rate)
    rejected = (sent >= open_from) & (sent < open_until)
    kinds = np.where(rejected, BREAKER_REJECTED, SUCCESS).astype(np.int8)
    reached = sent[~rejected] + 0.002  # the router's own latency to the backend
    return observe(sent, kinds == SUCCESS, kinds, LIVE_KIND_NAMES, reached, ["none"] * reached.size, [fault], end)


# Expected by hand (200 req/s, 50 a bin). Opened: 3.2 leaves 40 of 50 through in [3.0, 3.25) (80 %, not
# under half): open from 3.25. Recovered, from the fault's end at 4.0, at the first bin from which the next
# second has 90 % through: 5.2 -> [5.25, 6.25); 6.01 -> [6.0, 7.0) has 198 of 200; 6.2 -> [6.0, 7.0) has 160
# of 200 (80 %), [6.25, 7.25) all.
@pytest.mark.parametrize(
    "open_from, open_until, opened, expected", [(3.0, 5.2, 3.0, 1.25), (3.2, 6.01, 3.25, 2.0), (3.0, 6.2, 3.0, 2.25), (3.0, 4.0, 3.0, 0.0)]
)
def test_observe_follows_its_rule(open_from, open_until, opened, expected):
    fault = FaultWindow(start=3.0, end=4.0, error_rate=1.0)
    found = synthetic(open_from, open_until, fault)
    timeline = found["timeline"]
    assert [t["to"] for t in timeline] == ["open", "closed"]
    # Opened at the bin holding the first rejection (less than half reached), closed within a bin of the last.
    assert timeline[0]["t"] == pytest.approx(opened)
    assert open_until - BIN_S <= timeline[1]["t"] <= open_until + BIN_S
    assert found["observed_recovery_s"] == pytest.approx(expected)
    assert found["reference"] == {"reach": 1.0, "success": 1.0}
    assert sum(row["sent"] for row in found["per_second"]) == 2000


def test_observe_reports_no_recovery_when_traffic_never_flows_again():
    fault = FaultWindow(start=3.0, end=4.0, error_rate=1.0)
    found = synthetic(3.0, 99.0, fault)
    assert found["observed_recovery_s"] is None and found["state"] == "open"


def test_a_one_bin_stall_is_not_an_open_breaker_nor_a_late_recovery():
    fault = FaultWindow(start=3.0, end=4.0, error_rate=1.0)
    sent = np.arange(0, 10, 1 / 200)
    kinds = np.full(sent.size, SUCCESS, dtype=np.int8)
    rejected = (sent >= 3.0) & (sent < 5.0)
    kinds[rejected] = BREAKER_REJECTED
    reached = sent[~rejected] + 0.002
    stalled = lambda lo, hi: (reached >= lo) & (reached < hi)  # noqa: E731 - these reach the backend 0.3 s late
    reached = np.where(stalled(1.0, 1.25) | stalled(5.25, 5.5), reached + 0.3, reached)
    found = observe(sent, kinds == SUCCESS, kinds, LIVE_KIND_NAMES, np.sort(reached), ["none"] * reached.size, [fault], 10.0)
    assert [(t["t"], t["to"]) for t in found["timeline"]] == [(3.0, "open"), (5.0, "closed")]
    assert found["observed_recovery_s"] == pytest.approx(1.0)


def test_breaker_observed_through_the_proxy_matches_the_services_own(tmp_path, capsys):
    backend = Scenario().replace(['limiter.algorithm="none"', 'breaker.preset="none"', "backend.capacity=64"])
    overrides = ["duration=12", "workload.rate=100", "faults.0.start=3", "faults.0.end=6", "breaker.open_duration=2", 'limiter.algorithm="none"', "backend.capacity=64"]
    scenario = load_scenario("breaker-failure", overrides)
    out = tmp_path / "compare.json"
    with serving(backend) as real, ProxyThread(real.url, admin_token=TOKEN) as proxy, ServiceThread(scenario, backend_factory=upstream_factory(proxy.url + "/submit")) as gateway:
        args = ["compare", "breaker-failure", "--replications", "3", "--target", gateway.url, "--fault-proxy", proxy.url, "--admin-token", TOKEN, "--json", str(out)]
        for item in overrides:
            args += ["--set", item]
        assert main(args) == 0, capsys.readouterr().err
        proxied = proxy.proxy.record.totals()
    data = json.loads(out.read_text())
    live = data["live"]
    observed = live["live"]["faults"]["observed_breaker"]
    own = live["breaker"]
    # The service's breaker tripped and recovered (its /metrics), from what the proxy injected.
    assert proxied["faults"]["error"] > 0 and own["trips"] >= 1
    assert own["recovery_s"] is not None and observed["observed_recovery_s"] is not None
    assert abs(observed["observed_recovery_s"] - own["recovery_s"]) <= 1.0
    first_open = next(t["t"] for t in own["transitions"] if t["to"] == "open")
    last_closed = [t["t"] for t in own["transitions"] if t["to"] == "closed"][-1]
    assert abs(observed["timeline"][0]["t"] - first_open) <= 1.0
    assert observed["timeline"][-1]["to"] == "closed" and abs(observed["timeline"][-1]["t"] - last_closed) <= 1.0
    # compare: the observed recovery next to the simulated one, and the three timelines side by side.
    row = next(r for r in data["rows"] if r["metric"] == "breaker.observed_recovery_s")
    assert row["live"] == observed["observed_recovery_s"] and row["sim_mean"] is not None
    timeline = data["breaker_timeline"]
    assert timeline["observed"] == observed["timeline"] and timeline["simulated"] and timeline["target"]
    assert any(t["to"] == "closed" for t in timeline["simulated"])
    shown = capsys.readouterr().out
    assert "breaker transitions" in shown and "observed (proxy)" in shown


def test_fault_proxy_option_is_checked(capsys):
    assert main(["live", "baseline", "--target", "http://127.0.0.1:9", "--fault-proxy", "ftp://proxy"]) == 2
    assert "--fault-proxy" in capsys.readouterr().err


def test_unreachable_fault_proxy_is_a_note_not_a_crash():
    from simrouter.live.loadgen import LiveOptions, run_live
    from nginx_fixture import free_port

    scenario = load_scenario("breaker-failure", ["duration=1", "workload.rate=20", "faults.0.start=0.2", "faults.0.end=0.5"])
    with serving(scenario) as svc:
        result = run_live(scenario, svc.url, LiveOptions(fault_proxy=f"http://127.0.0.1:{free_port()}", admin_token=TOKEN, handle_signals=False))
    faults = result.summary["live"]["faults"]
    assert faults["injected"] is False and faults["observed_breaker"] is None
    assert any("fault proxy" in note for note in result.notes)
