"""``simrouter live --dashboard``: the dashboard drawn from the generator's own
measurements (``report.live_dashboard.GeneratorBoard``), for a target that has no
``/metrics``.

The rolling figures are checked exactly against numpy on columns written by hand
(a stand-in generator with the public attributes the board reads); a real run
against a small foreign asyncio target (404 on everything but POST /submit) shows
that frames are drawn during the run without asking the target anything else.
"""

from __future__ import annotations

import asyncio
import io
import threading
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest
from rich.console import Console

import simrouter
from simrouter.cli import main
from simrouter.live.answer_record import AnswerColumns, AnswerRecord
from simrouter.live.classify import LIVE_KIND_NAMES
from simrouter.live.loadgen import LiveOptions, _Columns, run_live
from simrouter.report.live_dashboard import GeneratorBoard

SUCCESS, FAILURE, DROPPED = LIVE_KIND_NAMES.index("succeeded"), LIVE_KIND_NAMES.index("failures"), LIVE_KIND_NAMES.index("dropped")
RATE_LIMITED = LIVE_KIND_NAMES.index("rate_limited")


def stand_in(now: float, rows, stream=False, answers=None, arrivals=0):
    """An object with what GeneratorBoard reads from a LoadGenerator."""
    columns = _Columns()
    for sent, actual, done, kind in rows:
        columns.add(sent, actual, actual, done, kind)
    scenario = simrouter.load_scenario("baseline", ["workload.model=open", "workload.rate=10", "duration=60"])
    return SimpleNamespace(columns=columns, answers=answers or AnswerColumns(), arrivals=arrivals, now=lambda: now, scenario=scenario,
                           stream=stream, options=SimpleNamespace(seed=1), display_target="http://127.0.0.1:1")


def test_window_figures_are_exact_over_the_requests_answered_in_the_window():
    rng = np.random.default_rng(2)
    n = 400
    sent = np.sort(rng.uniform(0, 20, n))
    actual = sent + rng.uniform(0, 0.002, n)
    done = actual + rng.exponential(0.05, n)
    kind = rng.choice([SUCCESS, FAILURE, RATE_LIMITED, DROPPED], size=n, p=[0.8, 0.1, 0.05, 0.05])
    order = np.argsort(done)  # rows are added as requests end
    rows = [(sent[i], actual[i], done[i] if kind[i] != DROPPED else sent[i], int(kind[i])) for i in order]
    generator = stand_in(20.0, rows, arrivals=n)
    board = GeneratorBoard(generator, window=5.0)
    summary = board.figures()
    s, a, d, k = (np.array([r[j] for r in rows]) for j in range(4))
    inside = d >= 15.0
    timed = inside & np.isin(k, [SUCCESS, FAILURE])  # rate limited: the router's rejection; dropped: never sent
    expected = np.percentile((d - s)[timed] * 1000, [50, 90, 95, 99])
    got = [summary["latency_ms"][key] for key in ("p50", "p90", "p95", "p99")]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert summary["latency_ms"]["count"] == int(timed.sum())
    np.testing.assert_allclose(summary["live"]["latency_ms_uncorrected"]["p99"], np.percentile((d - a)[timed] * 1000, 99), rtol=1e-12)
    assert summary["requests"]["sent"] == int(inside.sum())
    for code, name in ((FAILURE, "failures"), (RATE_LIMITED, "rate_limited"), (DROPPED, "dropped")):
        assert summary["requests"][name] == int((inside & (k == code)).sum())
        assert summary["error_rates"][name] == pytest.approx((inside & (k == code)).sum() / inside.sum())
    assert summary["throughput"]["goodput_rps"] == pytest.approx((inside & (k == SUCCESS)).sum() / 5.0)
    assert summary["throughput"]["rps"] == pytest.approx((inside & (k != DROPPED)).sum() / 5.0)
    assert summary["live"]["ttft_ms"] is None  # not streaming
    assert {t["metric"] for t in summary["targets"]} >= {"latency_ms.p95", "error_rate"}
    text = io.StringIO()
    board.console = Console(file=text, width=130)
    board.draw(summary)
    out = text.getvalue()
    assert "AI ROUTER LIVE" in out and "not measured" in out and "generator's own figures" in out


def test_window_moves_on_and_ttft_comes_from_the_streamed_answers():
    answers = AnswerColumns()
    rows = []
    for i in range(10):  # sent at i, first token 0.1 + i/100 s later, done at i + 0.5
        rows.append((float(i), float(i), i + 0.5, SUCCESS))
        answers.add(i, AnswerRecord(first_token=i + 0.1 + i / 100))
    generator = stand_in(9.6, rows, stream=True, answers=answers, arrivals=10)
    board = GeneratorBoard(generator, window=3.0)
    summary = board.figures()  # done in [6.6, 9.6]: rows 7, 8, 9
    assert summary["requests"]["sent"] == 3
    ttft = summary["live"]["ttft_ms"]
    assert ttft["count"] == 3
    np.testing.assert_allclose([ttft["p50"], ttft["max"]], [180.0, 190.0])
    generator.now = lambda: 13.0  # nothing ended in [10, 13]: an empty window
    later = board.figures()
    assert later["requests"]["sent"] == 0 and later["latency_ms"]["p50"] is None and later["live"]["ttft_ms"]["count"] == 0


@contextmanager
def foreign_target():
    """A bare asyncio HTTP/1.1 server: POST /submit -> 200 {}; anything else -> 404. Records the paths."""
    paths = []
    ready, state = threading.Event(), {}

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                length = 0
                for header in head.split(b"\r\n")[1:]:
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                method, path = line.split(" ")[:2]
                paths.append((method, path))
                if method == "POST" and path == "/submit":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
                else:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["url"] = "http://127.0.0.1:%d" % server.sockets[0].getsockname()[1]
        state["loop"], state["stop"] = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        async with server:
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield state["url"], paths
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def test_dashboard_draws_during_a_run_against_a_target_without_metrics():
    scenario = simrouter.load_scenario(
        "baseline", ["workload.model=open", "workload.rate=40", "workload.arrival=constant", "duration=2.2", "limiter.algorithm=none", "breaker.preset=none", "warmup=0"]
    )
    text = io.StringIO()
    with foreign_target() as (url, paths):
        result = run_live(scenario, url, LiveOptions(handle_signals=False, dashboard_interval=0.5, dashboard_console=Console(file=text, width=130)))
    out = text.getvalue()
    frames = out.count("AI ROUTER LIVE")
    assert frames >= 3  # at 0.5, 1.0, 1.5 (2.0) s
    assert "LATENCY METRICS" in out and "Samples" in out and "not measured" in out
    assert result.summary["requests"]["succeeded"] == 88
    submits = [i for i, (method, path) in enumerate(paths) if path == "/submit"]
    others = [i for i, (method, path) in enumerate(paths) if path != "/submit"]
    assert all(i > max(submits) for i in others)  # the dashboard asked the target nothing; only the end-of-run /metrics read


def test_dashboard_options_are_checked(capsys):
    assert main(["live", "baseline", "--target", "http://127.0.0.1:9", "--dashboard", "--interval", "0"]) == 2
    assert "--interval" in capsys.readouterr().err
    base = ["live", "baseline", "--target", "http://127.0.0.1:9", "--set", "workload.model=open", "--set", "workload.rate=5"]
    assert main([*base, "--dashboard", "--processes", "2"]) == 2
    assert "--dashboard" in capsys.readouterr().err
