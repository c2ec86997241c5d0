"""``simrouter proxy`` over real loopback HTTP, in front of nginx (echo module) and ``serve``:
transparent pass-through (status, headers, body, SSE pieces as they come), each fault kind
at its rate (binomial bounds), windows on time, the admin API's refusals, no secret logged."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from nginx_fixture import DONE, chat_chunk, free_port, nginx_server, requires_nginx, sse_directives
from simrouter.cli import main
from simrouter.config import Scenario
from simrouter.live.service_thread import serving
from simrouter.proxy.server import ProxyThread

TOKEN = "proxy-admin-token-123"
SSE_FAST = sse_directives([(0, chat_chunk("a")), (0, chat_chunk("b")), (0, chat_chunk("c")), (0, DONE)])
LOCATIONS = {
    "/hello": 'add_header X-Upstream nginx always;\ndefault_type text/plain;\necho_status 201;\necho -n "hello";',
    "/echo": 'default_type text/plain;\necho_read_request_body;\necho "$request_method $request_uri $http_x_custom $http_authorization";\necho_request_body;',
    "/sse": SSE_FAST,
    "/sse-slow": sse_directives([(0, chat_chunk("a")), (0.3, chat_chunk("b")), (0.3, chat_chunk("c")), (0, DONE)]),
    "/slow": 'default_type text/plain;\necho_sleep 0.2;\necho -n "slow";',
}


def bound(n: int, p: float, sigmas: float = 4.5) -> float:
    """A binomial count's allowed distance from n p (4.5 sigma: ~7e-6 two-sided per check)."""
    return sigmas * math.sqrt(n * p * (1 - p)) + 1


async def fetch(url: str, method: str = "GET", headers: dict | None = None, body: bytes | None = None, timeout: float = 10.0, session=None):
    """(status, headers, body, [(time, piece)]) or the exception's class name as status."""
    own = session is None
    session = session or aiohttp.ClientSession(auto_decompress=False)
    pieces = []
    try:
        async with session.request(method, url, headers=headers, data=body, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            async for piece in response.content.iter_any():
                pieces.append((time.monotonic(), piece))
            return response.status, response.headers, b"".join(p for _, p in pieces), pieces
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return type(exc).__name__, None, b"".join(p for _, p in pieces), pieces
    finally:
        if own:
            await session.close()


def run(coro):
    return asyncio.run(coro)


def admin(proxy_url: str, method: str, payload=None, token: str | None = TOKEN, content_type: str = "application/json", raw: bytes | None = None):
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
    status, _, body, _ = run(fetch(proxy_url + "/admin/faults", method, headers, data))
    return status, json.loads(body) if body else None


@pytest.fixture(scope="module")
def nginx():
    with nginx_server(LOCATIONS) as url:
        yield url


@pytest.fixture()
def proxy(nginx):
    with ProxyThread(nginx, admin_token=TOKEN, seed=3) as p:
        yield p


# -- pass-through


@requires_nginx
def test_pass_through_nginx_status_headers_body(nginx, proxy):
    direct = run(fetch(nginx + "/hello"))
    through = run(fetch(proxy.url + "/hello"))
    assert through[0] == direct[0] == 201
    assert through[2] == direct[2] == b"hello"
    for name in ("X-Upstream", "Content-Type", "Content-Length", "Server"):
        assert through[1].get(name) == direct[1].get(name), name
    sent = {"X-Custom": "custom-value", "Authorization": "Bearer sk-abc"}
    status, _, body, _ = run(fetch(proxy.url + "/echo?a=1&b=%20x", "POST", sent, b'{"user": 3}'))
    assert status == 200
    assert body == b"POST /echo?a=1&b=%20x custom-value Bearer sk-abc\n" + b'{"user": 3}'


@requires_nginx
def test_sse_pieces_are_forwarded_as_they_arrive(nginx, proxy):
    direct = run(fetch(nginx + "/sse-slow"))
    through = run(fetch(proxy.url + "/sse-slow"))
    assert through[2] == direct[2] and through[2].endswith(DONE.encode())
    times = [t for t, _ in through[3]]
    # nginx waits 0.3 s before the 2nd and the 3rd chunk: a buffering proxy would deliver all at once.
    assert len(times) >= 3
    assert times[-1] - times[0] >= 0.5


def test_pass_through_serve():
    with serving(Scenario()) as svc, ProxyThread(svc.url, admin_token=TOKEN) as p:
        direct = run(fetch(svc.url + "/submit", "POST", {"Content-Type": "application/json"}, b'{"user": 1}'))
        through = run(fetch(p.url + "/submit", "POST", {"Content-Type": "application/json"}, b'{"user": 1}'))
        assert through[0] == direct[0] == 200 and through[2] == direct[2]
        assert through[1]["X-Simrouter-Outcome"] == "succeeded"
        missing = run(fetch(p.url + "/nowhere"))
        assert missing[0] == 404 and json.loads(missing[2])["error"].startswith("no endpoint /nowhere")
        refused = run(fetch(p.url + "/submit", "POST", {"Content-Type": "application/json"}, b'{"bad": 1}'))
        assert refused[0] == 422


def test_unreachable_upstream_is_a_502_with_an_openai_body():
    with ProxyThread(f"http://127.0.0.1:{free_port()}", admin_token=TOKEN) as p:
        status, _, body, _ = run(fetch(p.url + "/v1/chat/completions", "POST"))
    assert status == 502 and json.loads(body)["error"]["code"] == "bad_gateway"


# -- faults at their rates


async def _many(url: str, n: int, timeout: float = 10.0, concurrency: int = 25):
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
        return await asyncio.gather(*(fetch(url, timeout=timeout, session=session) for _ in range(n)))


def classify_sse(answer) -> str:
    status, _, body, _ = answer
    if status in (500, 429, 503):
        return "error"
    if not isinstance(status, int):
        return "reset"
    if body.endswith(DONE.encode()):
        return "none"
    return "cut_stream" if body.count(b"\n\n") == 2 else f"other:{body!r}"


@requires_nginx
def test_error_reset_and_cut_stream_at_their_rates(proxy):
    rates = {"error": 0.2, "reset": 0.15, "cut_stream": 0.25}
    status, answer = admin(proxy.url, "POST", {"start": 0, "end": 60, "error_rate": 0.2, "reset_rate": 0.15, "cut_stream_rate": 0.25})
    assert status == 200, answer
    n = 600
    answers = run(_many(proxy.url + "/sse", n))
    kinds = [classify_sse(a) for a in answers]
    assert not [k for k in kinds if k.startswith("other")]
    for kind, p in rates.items():
        assert abs(kinds.count(kind) - n * p) <= bound(n, p), (kind, kinds.count(kind))
    # The proxy's own record says the same, request for request.
    totals = proxy.proxy.record.totals()["faults"]
    assert {k: totals[k] for k in rates} == {k: kinds.count(k) for k in rates}


@requires_nginx
def test_hang_rate(proxy):
    admin(proxy.url, "POST", {"start": 0, "end": 60, "hang_rate": 0.3})
    n = 120
    answers = run(_many(proxy.url + "/hello", n, timeout=0.8, concurrency=n))
    hung = sum(1 for a in answers if a[0] == "TimeoutError" or a[0] == "ServerTimeoutError")
    assert all(a[0] == 201 for a in answers if isinstance(a[0], int))
    assert abs(hung - n * 0.3) <= bound(n, 0.3)


@requires_nginx
@pytest.mark.parametrize("status", [500, 429, 503])
def test_injected_status_body_and_retry_after(proxy, status):
    admin(proxy.url, "POST", {"start": 0, "end": 30, "error_rate": 1.0, "status": status})
    code, headers, body, _ = run(fetch(proxy.url + "/hello"))
    assert code == status
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "code"}
    if status == 429:
        assert 29 <= int(headers["Retry-After"]) <= 30
    else:
        assert "Retry-After" not in headers


@requires_nginx
def test_latency_faults_delay_at_least_as_configured(proxy):
    admin(proxy.url, "POST", {"start": 0, "end": 60, "added_latency": 0.3, "per_chunk_latency": 0.2})
    start = time.monotonic()
    status, _, body, pieces = run(fetch(proxy.url + "/sse"))
    assert status == 200 and body.endswith(DONE.encode())
    assert pieces[0][0] - start >= 0.3  # to the first byte
    admin(proxy.url, "DELETE")
    admin(proxy.url, "POST", {"start": 0, "end": 60, "latency_factor": 3.0})
    start = time.monotonic()
    status, _, body, _ = run(fetch(proxy.url + "/slow"))
    assert status == 200 and body == b"slow"
    assert time.monotonic() - start >= 0.2 * 3 - 0.02  # nginx's 0.2 s, three times


@requires_nginx
def test_windows_start_and_end_on_time(proxy):
    async def sequential(duration: float):
        async with aiohttp.ClientSession() as session:
            async with session.post(proxy.url + "/admin/faults", json={"start": 0.4, "end": 0.8, "error_rate": 1.0}, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 200
            posted = time.monotonic()
            seen = []
            while time.monotonic() - posted < duration:
                sent = time.monotonic() - posted
                async with session.get(proxy.url + "/hello") as r:
                    await r.read()
                    seen.append((sent, time.monotonic() - posted, r.status))
            return seen

    seen = run(sequential(1.2))
    errors = [(s, d) for s, d, status in seen if status == 500]
    assert errors and len(seen) > 100
    first_sent, last_done = errors[0][0], errors[-1][1]
    assert abs(first_sent - 0.4) <= 0.05 and abs(last_done - 0.8) <= 0.05
    assert all(status == 201 for s, d, status in seen if d < 0.35 or s > 0.85)
    assert all(status == 500 for s, d, status in seen if 0.45 < s and d < 0.75)


@requires_nginx
def test_delete_ends_windows_now(proxy):
    admin(proxy.url, "POST", {"start": 0, "end": 60, "error_rate": 1.0})
    assert run(fetch(proxy.url + "/hello"))[0] == 500
    status, answer = admin(proxy.url, "DELETE")
    assert status == 200 and answer["cleared"]
    assert run(fetch(proxy.url + "/hello"))[0] == 201
    windows = json.loads(run(fetch(proxy.url + "/metrics"))[2])["faults"]
    assert len(windows) == 1 and windows[0]["end"] < 60


# -- the admin API


@requires_nginx
@pytest.mark.parametrize(
    "kwargs, status, text",
    [
        ({"payload": {"start": 0, "end": 1, "error_rate": 1}, "token": None}, 401, "missing admin token"),
        ({"payload": {"start": 0, "end": 1, "error_rate": 1}, "token": "wrong"}, 403, "wrong admin token"),
        ({"payload": {"start": 0, "end": 1, "error_rate": 1}, "content_type": "text/plain"}, 422, "Content-Type"),
        ({"raw": b"{not json"}, 422, "not valid JSON"),
        ({"payload": {"start": 0, "end": 1, "error_rate": 1, "colour": "red"}}, 422, "colour"),
        ({"payload": {"start": 0, "end": 1, "error_rate": 1, "status": 418}}, 422, "faults.0.status"),
        ({"payload": {"start": 0, "end": 1, "error_rate": 0.7, "hang_rate": 0.7}}, 422, "at most 1"),
        ({"payload": {"faults": [{"start": 0, "end": 2, "error_rate": 1}, {"start": 1, "end": 3, "error_rate": 1}]}}, 422, "overlaps"),
        ({"payload": {"faults": [], "extra": 1}}, 422, "extra"),
    ],
)
def test_bad_admin_requests_are_rejected(proxy, kwargs, status, text):
    code, answer = admin(proxy.url, "POST", **kwargs)
    assert code == status and text in answer["error"]
    assert proxy.proxy.fault_history == []
    assert "wrong" not in json.dumps(answer) or status != 403 or answer == {"error": "wrong admin token"}


@requires_nginx
def test_delete_needs_the_token_too(proxy):
    assert admin(proxy.url, "DELETE", token=None)[0] == 401
    assert admin(proxy.url, "DELETE", token="nope")[0] == 403


# -- the command and its secrets


def test_cli_rejects_bad_upstream_and_listen(capsys):
    assert main(["proxy", "--upstream", "ftp://example.com"]) == 2
    assert "--upstream" in capsys.readouterr().err
    assert main(["proxy", "--upstream", "http://u:secretpw@example.com"]) == 2
    err = capsys.readouterr().err
    assert "--upstream" in err and "secretpw" not in err
    assert main(["proxy", "--upstream", "http://127.0.0.1:9", "--listen", "nowhere"]) == 2
    assert "--listen" in capsys.readouterr().err


@requires_nginx
def test_secrets_are_never_logged_nor_recorded(nginx, tmp_path):
    port = free_port()
    secret, api_key, wrong = "adm-SECRET-4242", "sk-APIKEY-9999", "adm-WRONG-7777"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "simrouter", "proxy", "--upstream", nginx, "--listen", f"127.0.0.1:{port}", "--admin-token", secret],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if run(fetch(url + "/metrics", timeout=1))[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        forwarded = run(fetch(url + "/echo", "POST", {"Authorization": f"Bearer {api_key}"}, b"{}"))
        assert api_key.encode() in forwarded[2]  # it reached the backend, unchanged
        assert admin(url, "POST", {"start": 0, "end": 1, "error_rate": 1}, token=wrong) == (403, {"error": "wrong admin token"})
        assert admin(url, "POST", {"start": 0, "end": 1, "error_rate": 1, "bad": api_key}, token=secret)[0] == 422
        assert admin(url, "POST", {"start": 0, "end": 1, "error_rate": 1}, token=secret)[0] == 200
        run(fetch(url + "/hello", headers={"Authorization": f"Bearer {api_key}"}))
        metrics = run(fetch(url + "/metrics?rows=1"))[2].decode()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "listening on" in out
    for text in (out, err, metrics):
        for value in (secret, api_key, wrong):
            assert value not in text
