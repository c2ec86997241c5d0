"""``simrouter live`` against misbehaving targets: every request ends, counted, within its timeout.

Each target is a TCP server on a free 127.0.0.1 port started by the test (``raw_target``
from ``test_live``), misbehaving in one way: refusing connections, resetting or
closing in the middle of an answer, answering slower than the client timeout,
trickling an answer byte by byte, sending endless headers, closing without a word,
or answering only some requests. The workload is open (constant arrivals, 50 per
second for 0.3 s: exactly 15 requests, several in flight at once) with a 0.2 s
client timeout, on both HTTP clients. The checks:

* every request sent is counted exactly once, in the transport kind that says what
  happened (and the JSON's notes say it in words);
* no request takes longer than the client timeout (plus scheduling slack), and the
  run ends within duration + client timeout (+ slack), not later;
* through the CLI, the JSON's ``requests`` and ``live.transport_errors`` agree.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

import simrouter
from simrouter.cli import main
from simrouter.live.classify import LIVE_KIND_NAMES
from simrouter.live.loadgen import LiveOptions, run_live
from test_live import free_port, raw_target

CLIENT_TIMEOUT = 0.2
DURATION = 0.3
RATE = 50
SENT = 15  # constant arrivals at k / 50 s for k / 50 < 0.3
SLACK = 0.5  # event-loop scheduling on a busy 2-core machine
OPEN = ["workload.model=open", "workload.users=4", f"workload.rate={RATE}", "workload.arrival=constant", f"duration={DURATION}",
        "workload.requests_per_user=0", "faults=[]"]
PARTIAL_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"outco"


async def _request(reader):
    await reader.readuntil(b"\r\n\r\n")


async def reset_mid_answer(reader, writer):
    await _request(reader)
    writer.write(PARTIAL_HEAD)
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.transport.abort()  # RST


async def close_mid_answer(reader, writer):
    await _request(reader)
    writer.write(PARTIAL_HEAD)
    await writer.drain()
    writer.close()  # FIN before the promised 100 bytes


async def close_without_answer(reader, writer):
    await _request(reader)
    writer.close()


async def slower_than_timeout(reader, writer):
    await _request(reader)
    await asyncio.sleep(CLIENT_TIMEOUT * 3)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()


async def trickle(reader, writer):
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(100):  # one byte every 20 ms: always something arriving, never the end
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.02)


async def endless_headers(reader, writer):
    await _request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 200_000)
    await writer.drain()
    await asyncio.sleep(CLIENT_TIMEOUT * 3)


FAULTS = [
    (reset_mid_answer, "protocol_errors"),
    (close_mid_answer, "protocol_errors"),
    (close_without_answer, "protocol_errors"),
    (slower_than_timeout, "client_timeouts"),
    (trickle, "client_timeouts"),
    (endless_headers, "protocol_errors"),
]


def open_scenario(*extra):
    return simrouter.load_scenario("breaker-failure", [*OPEN, *extra])


def run_timed(url: str, client: str):
    started = time.monotonic()
    result = run_live(open_scenario(), url, LiveOptions(client_timeout=CLIENT_TIMEOUT, handle_signals=False, client=client))
    return result, time.monotonic() - started


def assert_every_request_ended_in_time(result, elapsed):
    requests = result.summary["requests"]
    assert requests["sent"] == len(result.kind) == SENT
    assert requests["sent"] == sum(v for k, v in requests.items() if k != "sent")  # each once
    assert np.all(result.done - result.actual <= CLIENT_TIMEOUT + SLACK)
    assert elapsed <= DURATION + CLIENT_TIMEOUT + SLACK + 1.0  # + the run's start-up and /metrics probe


@pytest.mark.parametrize("client", ["fast", "aiohttp"])
@pytest.mark.parametrize("behaviour, kind", FAULTS, ids=[f[0].__name__ for f in FAULTS])
def test_each_request_ends_in_its_kind_within_the_timeout(behaviour, kind, client):
    with raw_target(behaviour) as url:
        result, elapsed = run_timed(url, client)
    assert_every_request_ended_in_time(result, elapsed)
    assert result.summary["requests"][kind] == SENT
    assert result.summary["live"]["transport_errors"][kind] == SENT
    meaning = {"protocol_errors": "reset or closed mid-answer", "client_timeouts": f"within the client timeout of {CLIENT_TIMEOUT:g} s"}[kind]
    assert any(f"{SENT} of {SENT} requests" in note and meaning in note for note in result.summary["live"]["notes"])


def test_refused_connections_end_at_once_and_the_run_on_time():
    url = f"http://127.0.0.1:{free_port()}"
    result, elapsed = run_timed(url, "fast")
    assert_every_request_ended_in_time(result, elapsed)
    assert result.summary["requests"]["connect_errors"] == SENT
    assert np.all(result.done - result.actual < 0.1)  # refused at once, not after a timeout


def test_a_target_that_fails_some_requests_gets_each_counted_once():
    """Every third connection is reset mid-answer, every third hangs, the others are answered."""
    connections = []

    async def mixed(reader, writer):
        connections.append(None)
        n = len(connections) % 3
        if n == 1:
            await reset_mid_answer(reader, writer)
        elif n == 2:
            await slower_than_timeout(reader, writer)
        else:
            while True:  # keep-alive: answer every request on this connection
                try:
                    await _request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}')
                await writer.drain()

    with raw_target(mixed) as url:
        result, elapsed = run_timed(url, "fast")
    assert_every_request_ended_in_time(result, elapsed)
    requests = result.summary["requests"]
    assert requests["succeeded"] > 0 and requests["protocol_errors"] > 0 and requests["client_timeouts"] > 0
    assert requests["succeeded"] + requests["protocol_errors"] + requests["client_timeouts"] == SENT


def test_the_cli_json_says_what_happened(tmp_path, capsys):
    out = tmp_path / "reset.json"
    argv = ["live", "breaker-failure", "--client-timeout", str(CLIENT_TIMEOUT), "--json", str(out)]
    for item in OPEN:
        argv += ["--set", item]
    with raw_target(reset_mid_answer) as url:
        status = main([*argv[:2], "--target", url, *argv[2:]])
    captured = capsys.readouterr()
    assert status == 0 and "Traceback" not in captured.out + captured.err
    data = json.loads(out.read_text())
    assert data["requests"]["sent"] == data["requests"]["protocol_errors"] == SENT
    assert data["live"]["transport_errors"] == {name: (SENT if name == "protocol_errors" else 0) for name in LIVE_KIND_NAMES[7:12]}  # the transport kinds
    assert data["error_rate"] == 1.0 and data["live"]["cut_short"] is False
    assert any("reset or closed mid-answer" in note for note in data["live"]["notes"])
