"""The live generator against servers that misbehave (issue 17, items 1-9 and 12).

Each server is ``tests/misbehaving_server.py`` on a free 127.0.0.1 port, one
behaviour per case; every run is bounded (a few hundred requests, a few seconds).
The one case that used to wedge the generator's event loop (a negative chunk size)
runs the client in a subprocess with a hard timeout, so a regression fails instead
of hanging the suite.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

import pytest
from rich.console import Console

import simrouter
from misbehaving_server import misbehaving_server
from simrouter.cli import main
from simrouter.live.loadgen import LiveOptions, LoadGenerator, run_live
from simrouter.live.report import print_live

QUIET = ["limiter.algorithm=none", "breaker.preset=none"]


def closed(users: int, per_user: int, *extra: str):
    return simrouter.load_scenario("concurrent", [f"workload.users={users}", f"workload.requests_per_user={per_user}", *QUIET, *extra])


def open_run(rate: float, seconds: float, *extra: str):
    return simrouter.load_scenario(
        "breaker-failure", [f"duration={seconds}", f"workload.rate={rate}", "workload.arrival=constant", "faults=[]", *QUIET, *extra]
    )


def options(**extra) -> LiveOptions:
    return LiveOptions(handle_signals=False, **{"client_timeout": 2.0, **extra})


# -- item 1: no answer may block the loop


CLIENT = textwrap.dedent(
    """
    import json, sys, time
    import simrouter
    from simrouter.live.loadgen import LiveOptions, run_live
    scenario = simrouter.load_scenario("baseline", ["workload.requests_per_user=3"])
    started = time.monotonic()
    result = run_live(scenario, sys.argv[1], LiveOptions(client_timeout=float(sys.argv[2]), handle_signals=False, client=sys.argv[3]))
    print(json.dumps({"requests": result.summary["requests"], "elapsed": time.monotonic() - started}))
    """
)


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
def test_a_negative_chunk_size_is_a_protocol_error_at_once(client):
    timeout = 3.0
    with misbehaving_server("negative_chunk") as server:
        try:
            done = subprocess.run([sys.executable, "-c", CLIENT, server.url, str(timeout), client], capture_output=True, timeout=30, text=True)
        except subprocess.TimeoutExpired:
            pytest.fail("the generator hung on a negative chunk size (killed after 30 s)")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["requests"]["protocol_errors"] == 3  # not client_timeouts: it did not wait for the timeout
    assert figures["elapsed"] < timeout  # three requests, all within one client timeout


# -- item 2: HTTP/1.0, close after each answer


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "until-close"])
def test_an_http10_server_closing_after_each_answer_gives_no_protocol_error(length):
    with misbehaving_server("http10_close", length=length) as server:
        result = run_live(closed(10, 20), server.url, options())
    requests = result.summary["requests"]
    assert requests["sent"] == requests["succeeded"] == 200, requests
    assert requests["protocol_errors"] == 0
    assert server.connections == len(server.requests) >= 200  # one connection per answer: the client honoured the close


def test_connection_close_as_a_token_in_a_list_closes_the_connection():
    with misbehaving_server("close_token") as server:
        result = run_live(closed(2, 10), server.url, options())
    assert result.summary["requests"]["succeeded"] == 20
    assert server.connections == len(server.requests) >= 20


def test_a_request_on_a_reused_connection_the_server_closed_is_sent_again_once():
    # Each connection answers one request, then closes when the next one arrives.
    with misbehaving_server("reused_close") as server:
        result = run_live(closed(1, 10), server.url, options())
    assert result.summary["requests"]["succeeded"] == 10
    assert result.summary["live"]["generator"]["resent_on_reused_connection"] == 9


# -- item 3: interim answers


def test_early_hints_are_skipped_and_later_answers_are_not_shifted():
    with misbehaving_server("early_hints") as server:
        result = run_live(closed(4, 25), server.url, options())
    requests = result.summary["requests"]
    assert requests["succeeded"] == requests["sent"] == 100, requests
    assert requests["unexpected_status"] == 0 and server.connections == 4 + 1  # kept alive, in step (+ GET /metrics)


# -- item 4: framing from the right header


def test_the_word_chunked_in_another_header_does_not_frame_the_body():
    with misbehaving_server("chunked_word") as server:
        result = run_live(closed(1, 3), server.url, options(client_timeout=0.5))
    assert result.summary["requests"]["succeeded"] == 3


# -- item 5: base path, Host, userinfo


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
def test_the_target_base_path_is_kept_and_userinfo_is_never_in_host_or_output(client):
    with misbehaving_server("ok", path="/api/submit") as server:
        port = server.url.rsplit(":", 1)[1]
        target = f"http://user:s3cret-pw@127.0.0.1:{port}/api"
        result = run_live(closed(1, 3), target, options(client=client))
    assert result.summary["requests"]["succeeded"] == 3
    assert {seen.line for seen in server.requests} == {"POST /api/submit HTTP/1.1", "GET /api/metrics HTTP/1.1"}
    assert {seen.headers["host"] for seen in server.requests} == {f"127.0.0.1:{port}"}
    assert {seen.headers["authorization"] for seen in server.requests} == {"Basic dXNlcjpzM2NyZXQtcHc="}  # user:s3cret-pw
    console = Console(record=True, width=200)
    print_live(result, console)
    for text in (json.dumps(result.to_dict()), console.export_text()):
        assert "s3cret" not in text and "user:" not in text
    assert result.summary["live"]["target"] == f"http://127.0.0.1:{port}/api"


def test_a_target_with_a_query_string_is_a_config_error_naming_it(capsys):
    assert main(["live", "baseline", "--target", "http://u:pw@127.0.0.1:1/api?x=1"]) == 2
    err = capsys.readouterr().err
    assert "--target" in err and "query" in err and "pw" not in err


# -- item 6: timeouts are in the latency figures


def test_timeouts_are_in_the_latency_figures_at_the_time_they_took():
    # 3 requests in 10 are never answered; the client gives up after 0.5 s.
    with misbehaving_server("hang_some", tenths=3) as server:
        result = run_live(closed(10, 20), server.url, options(client_timeout=0.5))
    s = result.summary
    assert s["requests"]["client_timeouts"] == 60 and s["requests"]["succeeded"] == 140
    assert s["latency_ms"]["count"] == 200
    assert s["latency_ms"]["p99"] >= 500.0 and s["latency_ms"]["p95"] >= 500.0
    failed = {t["name"]: t["passed"] for t in s["targets"]}
    assert failed["p95_latency"] is False and failed["p99_latency"] is False


def test_refused_connections_are_in_the_latency_figures():
    with misbehaving_server("ok") as server:
        url = server.url
    result = run_live(closed(1, 3), url, options())  # the server is gone: refused
    assert result.summary["requests"]["connect_errors"] == 3
    assert result.summary["latency_ms"]["count"] == 3


# -- items 7 and 8: dropped arrivals; scheduler lag against pool wait


def test_dropped_arrivals_are_failed_requests_and_slow_targets_are_blamed_for_the_wait():
    # 100 ms target, 100 req/s for 3 s, 4 connections (40 req/s at most), backlog 10.
    with misbehaving_server("slow", delay=0.1) as server:
        result = run_live(open_run(100, 3, "targets.max_error_rate=0.05"), server.url, options(connections=4, max_backlog=10, client_timeout=5.0))
    s = result.summary
    requests, live = s["requests"], s["live"]
    assert requests["sent"] == live["schedule"]["arrivals"] == 300
    assert requests["dropped"] == live["schedule"]["dropped"] >= 100
    assert requests["dropped"] + live["schedule"]["sent"] == 300
    assert s["error_rate"] == pytest.approx((300 - requests["succeeded"]) / 300)
    assert s["error_rates"]["dropped"] == pytest.approx(requests["dropped"] / 300)
    assert {t["name"]: t["passed"] for t in s["targets"]}["error_rate"] is False
    assert s["latency_ms"]["count"] == live["schedule"]["sent"]  # dropped arrivals have no latency
    assert s["throughput"]["rps"] < 50  # 4 connections x 10 answers/s, not the 100/s offered: dropped ones got no answer
    generator = live["generator"]
    assert generator["limited_by"] == "connections"
    assert generator["late_by"]["pool"] > 10 * max(1, generator["late_by"]["scheduler"])
    assert generator["pool_wait_ms"]["max"] > 100.0
    assert not any("generator fell behind" in note for note in live["notes"])
    assert any("waiting for a free connection" in note for note in live["notes"])


def test_a_blocked_generator_loop_is_blamed_on_the_generator():
    scenario = open_run(100, 1.5)

    async def blocked_run(url):
        generator = LoadGenerator(scenario, url, options(connections=32))
        asyncio.get_running_loop().call_later(0.5, time.sleep, 0.3)  # the generator's own loop stalls
        return await generator.run()

    with misbehaving_server("ok") as server:
        result = asyncio.run(blocked_run(server.url))
    generator = result.summary["live"]["generator"]
    assert result.summary["requests"]["succeeded"] == 150
    assert generator["limited_by"] == "generator"
    assert generator["late_by"]["scheduler"] >= 20 and generator["scheduler_lag_ms"]["max"] >= 250
    assert generator["loop_lag_ms"]["max"] >= 250 and generator["generator_limited"] is True
    assert any("generator fell behind" in note for note in result.summary["live"]["notes"])


def test_closed_users_stamp_done_when_the_data_arrived_not_when_they_resumed(monkeypatch):
    # After each answer is read, the loop is kept busy 0.2 s before the user's coroutine resumes.
    from simrouter.live import http1

    finish = http1._Connection._finish

    def finish_then_stall(connection):
        connection.loop.call_soon(time.sleep, 0.2)  # queued before the user's wake-up
        finish(connection)

    monkeypatch.setattr(http1._Connection, "_finish", finish_then_stall)
    with misbehaving_server("ok") as server:
        result = run_live(closed(1, 4), server.url, options(client="fast"))
    order = result.actual.argsort()
    actual, done = result.actual[order], result.done[order]
    assert result.summary["requests"]["succeeded"] == 4
    assert (actual[1:] - done[:-1]).min() >= 0.2  # done is before the stall, the next send after it


def test_max_backlog_on_the_cli(tmp_path, capsys):
    out = tmp_path / "live.json"
    with misbehaving_server("slow", delay=0.2) as server:
        status = main(["live", "breaker-failure", "--target", server.url, "--set", "duration=0.5", "--set", "workload.rate=40", "--set", "faults=[]",
                       "--set", "workload.arrival=constant", "--connections", "1", "--max-backlog", "0", "--json", str(out)])
    assert status == 0
    data = json.loads(out.read_text())
    assert data["requests"]["dropped"] >= 10 and data["requests"]["sent"] == 20
    assert main(["live", "baseline", "--target", "http://127.0.0.1:1", "--max-backlog", "-1"]) == 2
    assert "--max-backlog" in capsys.readouterr().err


# -- item 9: what a foreign target did not report


def test_what_a_foreign_target_did_not_report_is_null_and_shown_as_not_measured():
    with misbehaving_server("ok") as server:
        result = run_live(closed(2, 3), server.url, options())
    data = result.to_dict()
    assert data["backend"]["capacity"] is None and data["backend"]["utilization"] is None
    breaker = data["breaker"]
    assert breaker["state"] is None and breaker["trips"] is None and breaker["healthy"] is None and breaker["transitions"] is None
    assert breaker["failure_rate"] == 0.0  # measured by the generator itself
    assert {"backend.capacity", "backend.utilization", "breaker.state", "breaker.trips"} <= set(data["live"]["not_measured"])
    console = Console(record=True, width=200)
    print_live(result, console)
    text = console.export_text()
    assert text.count("not measured") >= 4


# -- item 12: the admin token goes only where asked


def test_the_environment_admin_token_never_goes_to_a_foreign_target(monkeypatch, tmp_path):
    monkeypatch.setenv("SIMROUTER_ADMIN_TOKEN", "env-secret-token")
    run = ["live", "breaker-failure", "--set", "duration=0.2", "--set", "workload.rate=20", "--json"]
    with misbehaving_server("ok") as server:
        assert main([*run, str(tmp_path / "a.json"), "--target", server.url]) == 0
        foreign = list(server.requests)
    assert any(seen.line.startswith("POST /admin/faults") for seen in foreign)  # faults asked for, without the token
    assert not any("env-secret-token" in json.dumps(seen.headers) for seen in foreign)
    data = (tmp_path / "a.json").read_text()
    assert "env-secret-token" not in data and "--target-is-serve" in data  # the note says how to send it
    with misbehaving_server("ok") as server:
        assert main([*run, str(tmp_path / "b.json"), "--target", server.url, "--target-is-serve"]) == 0
        named = [seen for seen in server.requests if seen.line.startswith("POST /admin/faults")]
    assert named and named[0].headers["authorization"] == "Bearer env-secret-token"
    assert "env-secret-token" not in (tmp_path / "b.json").read_text()
