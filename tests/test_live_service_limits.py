"""The reference service's limits on what a client can hold (issue 17, item 11).

* Header-read timeout: a connection that sends its header block a byte at a
  time, or nothing at all, is closed within the timeout (here 0.5 s), while a
  kept-alive connection that sent a whole request and then idles is not.
  Real HTTP over loopback; each wait is bounded (5 s).
* User keys: ``{"user": 3}``, ``{"user": "3"}`` and ``X-User-Id: 3`` are one
  limiter key; anything else is a 422 naming the field.
* The per-user limiter table is bounded: idle keys whose limit is fresh again
  are evicted (decisions identical to the unbounded table's), and no more than
  ``max_keys`` are kept.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import simrouter
from simrouter.live.service import RouterService
from simrouter.live.service_thread import serving
from simrouter.policies import build_limiter

TIMEOUT_S = 0.5
DEADLINE_S = 5.0  # how long a test waits for the close at most


def quiet(*overrides):
    return simrouter.load_scenario(
        "concurrent", ["backend.latency=0.001", "backend.failures.processing=0.0", "backend.failures.validation=0.0", *overrides]
    )


def host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def closed_after(sock: socket.socket, drip: bytes) -> float | None:
    """Send ``drip`` a byte every 0.05 s (then nothing) until the server closes the
    connection: seconds until then, None if still open after DEADLINE_S."""
    start = time.monotonic()
    sock.settimeout(0.05)
    position = 0
    while time.monotonic() - start < DEADLINE_S:
        try:
            if position < len(drip):
                sock.sendall(drip[position : position + 1])
                position += 1
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


SLOW_HEAD = b"POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" + b"X-Padding: " + b"a" * 400


def test_a_slowloris_connection_is_closed_within_the_header_timeout():
    with serving(quiet(), header_timeout=TIMEOUT_S) as svc:
        with socket.create_connection(host_port(svc.url)) as sock:
            elapsed = closed_after(sock, SLOW_HEAD)
        assert elapsed is not None, "still open after 5 s"
        assert TIMEOUT_S * 0.9 <= elapsed <= TIMEOUT_S + 1.5
        with socket.create_connection(host_port(svc.url)) as silent:
            assert closed_after(silent, b"") is not None  # a connection that never sends is closed too
        assert svc.service.metrics()["service"]["header_timeouts"] == 2
        assert svc.service.metrics()["service"]["header_timeout_s"] == TIMEOUT_S


def test_a_kept_alive_connection_may_idle_but_not_drip_its_next_request():
    request = b'POST /submit HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"user": 1}'
    with serving(quiet(), header_timeout=TIMEOUT_S) as svc:
        with socket.create_connection(host_port(svc.url)) as sock:
            sock.settimeout(DEADLINE_S)
            sock.sendall(request)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            time.sleep(3 * TIMEOUT_S)  # idle, whole request answered: the header timeout does not apply
            sock.sendall(request)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            assert closed_after(sock, SLOW_HEAD) is not None  # the next request dripped: closed


def test_serve_has_a_header_timeout_option():
    from simrouter.cli import build_parser

    args = build_parser().parse_args(["serve", "--header-timeout", "2.5"])
    assert args.header_timeout == 2.5
    from simrouter.live.header_timeout import DEFAULT_HEADER_TIMEOUT_S

    assert build_parser().parse_args(["serve"]).header_timeout == DEFAULT_HEADER_TIMEOUT_S == 10.0


def post(url: str, body: bytes, headers: dict | None = None):
    request = urllib.request.Request(url + "/submit", data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_user_given_as_number_string_or_header_is_one_key():
    scenario = quiet("limiter.algorithm=token_bucket", "limiter.rate=0.001", "limiter.burst=2")
    with serving(scenario) as svc:
        assert post(svc.url, b'{"user": 3}')[0] == 200
        assert post(svc.url, b'{"user": "3"}')[0] == 200
        assert post(svc.url, b'{"user": "3"}')[0] == 429  # the same bucket of 2
        assert post(svc.url, b"{}", {"X-User-Id": "3"})[0] == 429
        assert post(svc.url, b'{"user": 4}')[0] == 200


@pytest.mark.parametrize(
    "body, headers, phrase",
    [
        (b'{"user": "alice"}', None, 'user: expected a whole number or a string of digits (e.g. 3 or "3"), got \'alice\''),
        (b'{"user": 3.5}', None, "user: expected a whole number or a string of digits"),
        (b'{"user": null}', None, "user: expected a whole number or a string of digits"),
        (b"{}", {"X-User-Id": "bob"}, "X-User-Id: expected a whole number or a string of digits"),
    ],
    ids=["name", "fraction", "null", "header"],
)
def test_other_user_keys_are_refused_naming_the_field(body, headers, phrase):
    with serving(quiet()) as svc:
        status, data = post(svc.url, body, headers)
    assert status == 422 and data["outcome"] == "validation_errors"
    assert phrase in data["error"]


LIMITERS = [
    ["limiter.algorithm=token_bucket", "limiter.rate=5", "limiter.burst=3"],
    ["limiter.algorithm=gcra", "limiter.rate=5", "limiter.burst=2"],
    ["limiter.algorithm=sliding_window_log", "limiter.size=0.5", "limiter.limit=2"],
    ["limiter.algorithm=sliding_window_counter", "limiter.size=0.5", "limiter.limit=2"],
    ["limiter.algorithm=fixed_window", "limiter.size=0.5", "limiter.limit=2"],
    ["limiter.algorithm=fixed_window", "limiter.size=0.5", "limiter.limit=2", "limiter.align=first_request"],
]


@pytest.mark.parametrize("overrides", LIMITERS, ids=lambda o: "-".join(v.split("=")[1] for v in o[::2]))
def test_evicting_idle_keys_changes_no_decision(overrides):
    from simrouter.live.limiter_table import LimiterTable, idle_horizon

    config = quiet(*overrides).limiter
    table, unbounded = LimiterTable(config), build_limiter(config)
    rng = np.random.default_rng(7)
    times = np.cumsum(rng.exponential(0.01, 20_000))
    keys = rng.integers(0, 2_000, times.size)  # many keys, each used now and then
    largest = 0
    for now, key in zip(times.tolist(), keys.tolist()):
        assert table.try_acquire(key, now) == unbounded.try_acquire(key, now)
        largest = max(largest, len(table))
    # Keys used within the idle horizon (~100 per second), not all 2,000.
    assert largest < 2_000 * 0.5
    assert largest <= 100 * idle_horizon(config) * 3 + 20


def test_the_table_never_holds_more_than_max_keys():
    from simrouter.live.limiter_table import LimiterTable

    config = quiet("limiter.algorithm=token_bucket", "limiter.rate=0.001", "limiter.burst=1").limiter  # never idle: 1000 s horizon
    table = LimiterTable(config, max_keys=50)
    for i in range(5_000):
        table.try_acquire(i, i * 0.001)
    assert len(table) == 50


def test_a_service_met_by_many_users_keeps_a_bounded_table():
    service = RouterService(quiet("limiter.algorithm=token_bucket", "limiter.rate=10", "limiter.burst=1"))  # idle horizon 0.1 s
    for i in range(5_000):
        service.limiter.try_acquire(i, 1.0 + i * 0.05)
    assert service.metrics()["service"]["limiter_keys"] <= 3


def test_handle_is_the_core_other_front_ends_wrap():
    import asyncio

    from simrouter.live.service import Answer, user_key
    from simrouter.outcomes import RATE_LIMITED, SUCCESS

    service = RouterService(quiet("limiter.algorithm=token_bucket", "limiter.rate=0.001", "limiter.burst=1"))
    assert user_key("3") == user_key(3) == 3
    with pytest.raises(ValueError, match="user: expected a whole number"):
        user_key("three")

    async def two():
        return await service.handle(user_key(3)), await service.handle(user_key("3"))

    first, second = asyncio.run(two())
    assert isinstance(first, Answer) and first.kind == SUCCESS and first.status == 200 and first.done >= first.sent
    assert second.kind == RATE_LIMITED and second.status == 429 and second.done == second.sent
    assert service.metrics()["requests"]["sent"] == 2
