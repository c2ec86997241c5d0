"""``simrouter dashboard``: polling a live target's /metrics, against a tiny aiohttp server.

The server runs in a thread on a free 127.0.0.1 port and serves a real summary
(``RunResult.to_dict()``); its behaviour per request is scripted (answer, hang,
answer garbage), so every outcome is decided by the script, not by timing.
A hung request is released only when the test ends; the poller gives up on it
after its own timeout.
"""

from __future__ import annotations

import asyncio
import io
import socketserver
import threading

import pytest
from aiohttp import web
from rich.console import Console

import simrouter
from simrouter.cli import main
from simrouter.errors import ConfigError
from simrouter.report.live_dashboard import metrics_url, poll_once, watch


class ScriptedTarget:
    """GET /metrics answers with ``script[i]`` for the i-th request (the last one repeats):
    a dict -> that JSON; "hang" -> no answer until shutdown; "garbage" -> not JSON;
    an int -> that HTTP status."""

    def __init__(self, script):
        self.script = list(script)
        self.requests = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _handle(self, request):
        step = self.script[min(self.requests, len(self.script) - 1)]
        self.requests += 1
        if step == "hang":
            await self._stop.wait()
            return web.Response(status=503)
        if step == "garbage":
            return web.Response(text="<html>not json</html>", content_type="text/html")
        if isinstance(step, int):
            return web.Response(status=step, text="error")
        return web.json_response(step)

    async def _main(self):
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10), "test server did not start"
        return self

    def __exit__(self, *exc):
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture(scope="module")
def summary():
    return simrouter.simulate("concurrent", seed=1).to_dict()


def plain_console(width=120):
    buffer = io.StringIO()
    return Console(file=buffer, width=width), buffer


def test_metrics_url_forms():
    assert metrics_url("127.0.0.1:8080") == "http://127.0.0.1:8080/metrics"
    assert metrics_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/metrics"
    assert metrics_url("http://127.0.0.1:8080/metrics") == "http://127.0.0.1:8080/metrics"
    assert metrics_url("https://h.example/api") == "https://h.example/api/metrics"
    with pytest.raises(ConfigError) as info:
        metrics_url("ftp://127.0.0.1/x")
    assert info.value.field == "--target"


def test_answering_target_is_drawn_once_per_change(summary):
    with ScriptedTarget([summary]) as target:
        console, buffer = plain_console()
        state = watch(target.url, interval=0.01, count=3, console=console)
    text = buffer.getvalue()
    assert state.polls == 3 and target.requests == 3
    assert all(poll.ok for poll in state.history)
    assert text.count("answering, figures of") == 3
    # unchanged figures are printed once in plain-text mode
    assert text.count("LATENCY METRICS") == 1
    assert f"{summary['latency_ms']['p95']:.1f} ms" in text
    assert "AI ROUTER LIVE — concurrent" in text
    assert "\x1b[" not in text  # not a terminal: no escape codes


def test_changed_figures_are_printed_again(summary):
    later = {**summary, "requests": {**summary["requests"], "sent": summary["requests"]["sent"] + 500}}
    with ScriptedTarget([summary, later]) as target:
        console, buffer = plain_console()
        watch(target.url, interval=0.01, count=2, console=console)
    text = buffer.getvalue()
    assert text.count("LATENCY METRICS") == 2
    assert f"{later['requests']['sent']:,}" in text


def test_target_that_stops_answering_keeps_stale_figures(summary):
    with ScriptedTarget([summary, summary, "hang"]) as target:
        console, buffer = plain_console(width=200)  # the status line on one line
        state = watch(target.url, interval=0.01, count=4, timeout=0.3, console=console)
    assert [poll.ok for poll in state.history] == [True, True, False, False]
    assert "not answering" in state.history[-1].error
    assert state.last_good is state.history[1]
    text = buffer.getvalue()
    assert "not answering" in text and "stale figures" in text
    assert "Traceback" not in text


def test_stopped_target_is_reported_without_crashing(summary):
    with ScriptedTarget([summary]) as target:
        url = target.url
    console, buffer = plain_console()
    state = watch(url, interval=0.01, count=2, console=console)  # the port is closed now
    assert state.polls == 2 and state.last_good is None
    assert all("not answering" in poll.error for poll in state.history)
    assert "LATENCY METRICS" not in buffer.getvalue()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("garbage", "not with JSON"),
        ({"hello": "world"}, "not a simrouter summary (missing scenario, requests"),
        (500, "HTTP 500"),
    ],
)
def test_bad_answers_become_errors(step, message):
    with ScriptedTarget([step]) as target:
        poll = poll_once(metrics_url(target.url), timeout=2.0)
    assert not poll.ok
    assert message in poll.error


def test_target_that_does_not_speak_http():
    class Junk(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(1024)
            self.request.sendall(b"SSH-2.0-not-http\r\n\r\n")

    with socketserver.TCPServer(("127.0.0.1", 0), Junk) as server:
        thread = threading.Thread(target=server.handle_request, daemon=True)
        thread.start()
        poll = poll_once(f"http://127.0.0.1:{server.server_address[1]}/metrics", timeout=2.0)
        thread.join(5)
    assert not poll.ok and "not answering HTTP" in poll.error


def test_terminal_redraws_in_place(summary):
    buffer = io.StringIO()
    console = Console(file=buffer, width=140, force_terminal=True)
    with ScriptedTarget([summary, "hang"]) as target:
        state = watch(target.url, interval=0.01, count=2, timeout=0.3, console=console)
    text = buffer.getvalue()
    assert state.polls == 2
    assert "\x1b[" in text  # drawn with terminal control codes (rich.live)
    assert "LATENCY METRICS" in text and "stale figures" in text


def test_duration_bounds_the_watch(summary):
    with ScriptedTarget([summary]) as target:
        console, _ = plain_console()
        state = watch(target.url, interval=0.05, duration=0.2, console=console)
    assert state.polls >= 1
    assert all(poll.ok for poll in state.history)


def test_cli_dashboard(summary, capsys):
    with ScriptedTarget([summary]) as target:
        status = main(["dashboard", "--target", target.url, "--interval", "0.01", "--count", "2"])
    out = capsys.readouterr().out
    assert status == 0
    assert "PERFORMANCE TARGETS" in out and out.count("answering, figures of") == 2


@pytest.mark.parametrize("argv", [["--target", "ftp://127.0.0.1:1"], ["--target", "127.0.0.1:1", "--interval", "0"]])
def test_cli_dashboard_bad_options_exit_2(argv, capsys):
    assert main(["dashboard", *argv, "--count", "1"]) == 2
    assert "configuration error" in capsys.readouterr().err
