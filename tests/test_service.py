"""The reference router service (``simrouter serve``) over real HTTP on loopback.

Each test starts the service on a free 127.0.0.1 port in a background thread
(``ServiceThread``) and talks to it with ``urllib``. Backend latencies are short
constants so nothing here waits long; every check is on status codes, headers
and the service's own counts, which are exact.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

import simrouter
from simrouter.live.service import MAX_BODY, REASON_HEADER
from simrouter.live.service_thread import serving

TOKEN = "test-token"


def fast(name: str = "concurrent", *overrides: str):
    return simrouter.load_scenario(
        name,
        ["backend.latency=0.002", "backend.failures.processing=0.0", "backend.failures.validation=0.0", *overrides],
    )


def post(url: str, body: bytes | None = b'{"user": 1}', content_type: str = "application/json", headers: dict | None = None, method: str = "POST"):
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_success_and_metrics_shaped_like_the_simulation():
    with serving(fast(), admin_token=TOKEN) as svc:
        for _ in range(5):
            status, headers, body = post(svc.url + "/submit")
            assert status == 200
            assert json.loads(body) == {"outcome": "succeeded"}
        metrics = get_json(svc.url + "/metrics")
    simulated = simrouter.simulate(fast(), seed=1).to_dict()
    assert set(simulated) - {"config"} <= set(metrics)  # every simulated field, plus "service"
    assert metrics["requests"]["sent"] == metrics["requests"]["succeeded"] == 5
    assert metrics["latency_ms"]["count"] == 5
    # A constant 2 ms backend: every answer takes at least that, and not much more on loopback.
    assert 2.0 <= metrics["latency_ms"]["min"] and metrics["latency_ms"]["max"] < 100.0
    assert metrics["breaker"]["state"] == "closed"


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"user": 1}', "text/plain"),
        (b'{"user": [1]}', "application/json"),
        (b'{"user": 1, "pad": "' + b"x" * (MAX_BODY + 10) + b'"}', "application/json"),
    ],
    ids=["malformed-json", "not-an-object", "wrong-content-type", "bad-user", "oversize"],
)
def test_malformed_requests_get_422_and_are_counted(body, content_type):
    with serving(fast()) as svc:
        status, headers, _ = post(svc.url + "/submit", body, content_type)
        metrics = get_json(svc.url + "/metrics")
    assert status == 422
    assert headers["X-Simrouter-Outcome"] == "validation_errors"
    assert metrics["requests"]["validation_errors"] == metrics["requests"]["sent"] == 1


def test_rate_limit_429_after_the_burst():
    scenario = fast("concurrent", "limiter.rate=0.001", "limiter.burst=3")
    with serving(scenario) as svc:
        statuses = [post(svc.url + "/submit")[0] for _ in range(5)]
        other_user = post(svc.url + "/submit", b'{"user": 2}')[0]
    assert statuses == [200, 200, 200, 429, 429]
    assert other_user == 200  # per-user buckets


def test_breaker_opens_on_failures_then_503_with_reason():
    scenario = fast("concurrent", "backend.failures.processing=1.0", "breaker.failure_threshold=3", "breaker.open_duration=60")
    with serving(scenario) as svc:
        answers = [post(svc.url + "/submit") for _ in range(5)]
        metrics = get_json(svc.url + "/metrics")
    assert [a[0] for a in answers] == [500, 500, 500, 503, 503]
    assert answers[3][1][REASON_HEADER] == "breaker-open"
    assert metrics["breaker"]["state"] == "open" and metrics["breaker"]["trips"] == 1


def test_router_timeout_504_while_the_backend_keeps_the_slot():
    scenario = fast("concurrent", "backend.latency=0.5", "router.timeout=0.05", "backend.capacity=1", "backend.queue_limit=0", "breaker.preset=none")
    with serving(scenario) as svc:
        first = post(svc.url + "/submit")
        second = post(svc.url + "/submit")  # the timed-out call still holds the only slot
        metrics = get_json(svc.url + "/metrics")
    assert first[0] == 504
    assert second[0] == 503 and second[1][REASON_HEADER] == "queue-full"
    assert metrics["requests"]["timeouts"] == 1 and metrics["requests"]["queue_full"] == 1
    assert 50.0 <= metrics["latency_ms"]["max"] < 400.0  # answered at the timeout, not after 500 ms


def test_admin_faults_need_the_token_and_apply_relative_to_now():
    with serving(fast("concurrent", "breaker.preset=none"), admin_token=TOKEN) as svc:
        fault = json.dumps({"start": 0, "end": 60, "error_rate": 1.0}).encode()
        assert post(svc.url + "/admin/faults", fault)[0] == 401
        assert post(svc.url + "/admin/faults", fault, headers={"X-Admin-Token": "wrong"})[0] == 403
        bad = json.dumps({"start": 5, "end": 1, "error_rate": 1.0}).encode()
        status, _, body = post(svc.url + "/admin/faults", bad, headers={"X-Admin-Token": TOKEN})
        assert status == 422 and b"faults.0.end" in body
        status, _, body = post(svc.url + "/admin/faults", fault, headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        added = json.loads(body)["added"][0]
        assert added["end"] - added["start"] == pytest.approx(60.0)
        during = [post(svc.url + "/submit")[0] for _ in range(3)]
        assert post(svc.url + "/admin/faults", None, headers={"X-Admin-Token": TOKEN}, method="DELETE")[0] == 200
        after = post(svc.url + "/submit")[0]
        metrics = get_json(svc.url + "/metrics")
    assert during == [500, 500, 500]
    assert after == 200
    (window,) = metrics["service"]["faults"]
    assert window["end"] < window["start"] + 60.0  # cleared: ended early


def test_prometheus_text_counts_match_json():
    with serving(fast()) as svc:
        for _ in range(4):
            post(svc.url + "/submit")
        post(svc.url + "/submit", b"junk")
        with urllib.request.urlopen(svc.url + "/metrics/prometheus", timeout=10) as response:
            text = response.read().decode()
            content_type = response.headers["Content-Type"]
    assert content_type.startswith("text/plain")
    assert 'simrouter_requests_total{kind="succeeded"} 4.0' in text
    assert 'simrouter_requests_total{kind="validation_errors"} 1.0' in text
    assert "simrouter_request_latency_seconds_count 4.0" in text
    assert "simrouter_breaker_state 0.0" in text


def test_serve_command_rejects_a_bad_config_with_exit_2(capsys):
    from simrouter.cli import main

    assert main(["serve", "--config", "concurrent", "--set", "backend.capacty=3"]) == 2
    assert "backend.capacty" in capsys.readouterr().err
