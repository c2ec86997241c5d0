"""The reference service (``simrouter serve``) under bad requests: 4xx with a JSON error, never a 500.

One service per test module or test, on a free 127.0.0.1 port. Its backend never fails
(``failures`` all 0) and never times out, so any 500 or 504 would be a crash, not an
outcome. Hypothesis sends random bodies, content types and user headers to
``/submit`` and random payloads to ``/admin/faults``; fixed cases cover tokens (401
missing, 403 wrong, compared with ``hmac.compare_digest``), unknown paths and methods,
JSON nested past Python's recursion limit, chunked oversize bodies, bytes that are not
HTTP, and the loopback default of ``simrouter serve``. Every ``/submit`` that reached
the router is counted exactly once in the service's own ``/metrics``.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simrouter
from simrouter.live import service as service_module
from simrouter.live.service import MAX_BODY
from simrouter.live.service_thread import serving

TOKEN = "reliability-token"
QUIET_BACKEND = ["backend.latency=0.001", "backend.failures.processing=0.0", "backend.failures.validation=0.0", "limiter.algorithm=none"]


def quiet_scenario():
    return simrouter.load_scenario("concurrent", QUIET_BACKEND)


def request(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, parsed JSON body or None) over one plain connection."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        try:
            data = json.loads(raw) if raw else None
        except ValueError:
            data = None
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data
    finally:
        connection.close()


@pytest.fixture(scope="module")
def svc():
    with serving(quiet_scenario(), admin_token=TOKEN) as running:
        yield running


# ---------------------------------------------------------------- /submit fuzzed


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({}, optional={"user": json_values, "prompt": json_values, "extra": json_values}).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded", "multipart/form-data"])
user_headers = st.none() | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types, user=user_headers)
def test_any_submit_gets_an_outcome_and_malformed_ones_a_json_error(svc, body, content_type, user):
    headers = {"Content-Type": content_type} if content_type else {}
    if user is not None:
        headers["X-User-Id"] = user
    status, answer_headers, data = request(svc.url, "POST", "/submit", body, headers)
    assert status in (200, 422), (status, data)
    assert isinstance(data, dict) and data["outcome"] == answer_headers["x-simrouter-outcome"]
    if status == 422:
        assert data["outcome"] == "validation_errors" and data["error"]
    else:
        assert data == {"outcome": "succeeded"}


@pytest.mark.parametrize(
    "body, content_type, phrase",
    [
        (b'{"user": 1, "usr": 2}', "application/json", "unknown field 'usr'; accepted fields: user, prompt"),
        (b'{"user": 1, "prompt": 5}', "application/json", "prompt: expected a string"),
        (b'{"user": true}', "application/json", 'user: expected a whole number or a string of digits (e.g. 3 or "3"), got True'),
        (b'{"user": "' + b"u" * 300 + b'"}', "application/json", "user: expected a whole number or a string of digits"),
        (b'{"user": "9' + b"9" * 19 + b'"}', "application/json", "user: expected a 64-bit whole number"),
        (b'{"user": 1}', "text/plain", "expected Content-Type: application/json"),
        (b"[" * 100_00 + b"]" * 100_00, "application/json", "not valid JSON"),  # deeper than Python's recursion limit
        (b"\xff\xfe{}", "application/json", "not valid JSON"),
    ],
    ids=["unknown-field", "bad-prompt", "bool-user", "long-user", "huge-user", "content-type", "nested-too-deep", "not-utf8"],
)
def test_malformed_submit_says_what_is_wrong(svc, body, content_type, phrase):
    status, headers, data = request(svc.url, "POST", "/submit", body, {"Content-Type": content_type})
    assert status == 422 and headers["x-simrouter-outcome"] == "validation_errors"
    assert phrase in data["error"]


def test_chunked_oversize_body_is_refused_with_422(svc):
    parts = urllib.parse.urlsplit(svc.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    chunks = (b'{"user": 1, "prompt": "' if i == 0 else b"x" * 4096 for i in range(MAX_BODY // 4096 + 4))
    connection.request("POST", "/submit", body=chunks, headers={"Content-Type": "application/json"}, encode_chunked=True)
    response = connection.getresponse()
    data = json.loads(response.read())
    connection.close()
    assert response.status == 422 and f"over {MAX_BODY} bytes" in data["error"]


# ---------------------------------------------------------------- paths, methods, raw bytes


@pytest.mark.parametrize(
    "method, path, status, phrase",
    [
        ("GET", "/submit", 405, "use POST"),
        ("PUT", "/admin/faults", 405, "use POST, DELETE"),
        ("GET", "/admin/reset", 405, "use POST"),
        ("GET", "/nope", 404, "endpoints: POST /submit"),
        ("POST", "/submit/extra", 404, "no endpoint /submit/extra"),
    ],
)
def test_unknown_paths_and_methods_get_json_404_405(svc, method, path, status, phrase):
    got, headers, data = request(svc.url, method, path, b"{}", {"Content-Type": "application/json"})
    assert got == status and phrase in data["error"]
    if status == 405:
        assert headers["allow"] in phrase


def test_bytes_that_are_not_http_get_400_and_the_service_keeps_answering(svc):
    parts = urllib.parse.urlsplit(svc.url)
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"POST /submit HTTP/1.1\r\nContent-Length: -5\r\n\r\n"):
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(junk)
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.") and answer[9:12] == b"400", answer[:80]
    assert request(svc.url, "GET", "/health")[0] == 200


# ---------------------------------------------------------------- admin


@pytest.mark.parametrize("method, path", [("POST", "/admin/faults"), ("DELETE", "/admin/faults"), ("POST", "/admin/reset")])
def test_admin_refuses_missing_401_and_wrong_403_tokens(svc, method, path):
    body = json.dumps({"start": 100, "end": 101, "error_rate": 1.0}).encode()
    plain = {"Content-Type": "application/json"}
    status, headers, data = request(svc.url, method, path, body, plain)
    assert status == 401 and "missing admin token" in data["error"] and headers["www-authenticate"].startswith("Bearer")
    assert request(svc.url, method, path, body, {**plain, "Authorization": "Bearer "})[0] == 401
    for wrong in ({"X-Admin-Token": "wrong"}, {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Basic {TOKEN}"}, {"X-Admin-Token": TOKEN[:-1]}):
        status, _, data = request(svc.url, method, path, body, {**plain, **wrong})
        assert status == 403 and data == {"error": "wrong admin token"}


def test_admin_token_bytes_that_are_not_utf8_are_refused_not_crashed(svc):
    parts = urllib.parse.urlsplit(svc.url)
    raw = b"POST /admin/reset HTTP/1.1\r\nHost: x\r\nX-Admin-Token: \xff\xfe\x80token\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(raw)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer[9:12] in (b"400", b"403"), answer[:80]


def test_tokens_are_compared_with_hmac_compare_digest(svc, monkeypatch):
    seen = []
    real = service_module.hmac.compare_digest

    def spy(given, expected):
        seen.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(service_module.hmac, "compare_digest", spy)
    assert request(svc.url, "POST", "/admin/reset", b"", {"X-Admin-Token": "guess"})[0] == 403
    assert request(svc.url, "POST", "/admin/reset", b"", {"X-Admin-Token": TOKEN})[0] == 200
    assert seen == [(b"guess", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


fault_payloads = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(["start", "end", "error_rate", "latency_factor", "faults", "strat"]), json_values | st.floats(-10, 1e6), max_size=4),
    st.fixed_dictionaries({"faults": st.lists(st.dictionaries(st.sampled_from(["start", "end", "error_rate", "latency_factor"]), st.floats(-1, 2e3) | json_values, max_size=4), max_size=3)}),
)


@settings(max_examples=80, deadline=None)
@given(payload=fault_payloads, content_type=st.sampled_from(["application/json", "text/plain"]))
def test_admin_faults_payloads_get_200_or_422_with_the_field(payload, content_type):
    with serving(quiet_scenario(), admin_token=TOKEN) as running:
        body = json.dumps(payload).encode()
        status, _, data = request(running.url, "POST", "/admin/faults", body, {"Content-Type": content_type, "X-Admin-Token": TOKEN})
        assert status in (200, 422), (status, data)
        if status == 200:
            assert content_type == "application/json" and data["added"]
            assert running.service.fault_history  # applied
        else:
            assert data["error"] and not running.service.fault_history


def test_admin_faults_names_the_bad_field(svc):
    headers = {"Content-Type": "application/json", "X-Admin-Token": TOKEN}
    cases = [
        ({"start": 1, "end": 2, "eror_rate": 1}, "faults.0.eror_rate: unknown key in [faults.0] (did you mean 'error_rate'?)"),
        ({"faults": [{"start": 1, "end": 2, "error_rate": 1}], "dry_run": True}, "unknown field 'dry_run'"),
        ({"faults": []}, "at least one fault window"),
        ({"start": 1, "end": 2, "error_rate": 7}, "faults.0.error_rate: expected a value <= 1"),
    ]
    for payload, phrase in cases:
        status, _, data = request(svc.url, "POST", "/admin/faults", json.dumps(payload).encode(), headers)
        assert status == 422 and phrase in data["error"], data


# ---------------------------------------------------------------- accounting and binding


def test_every_submit_that_reached_the_router_is_counted_once():
    with serving(quiet_scenario(), admin_token=TOKEN) as running:
        sent = [
            request(running.url, "POST", "/submit", body, {"Content-Type": "application/json"})[0]
            for body in (b'{"user": 1}', b"{", b'{"user": 2, "x": 1}', b'{"user": 3}', b"[]")
        ]
        request(running.url, "GET", "/submit")  # 405: not a request to the router
        requests = request(running.url, "GET", "/metrics")[2]["requests"]
    assert sent == [200, 422, 422, 200, 422]
    assert requests["sent"] == 5 and requests["succeeded"] == 2 and requests["validation_errors"] == 3


def test_serve_binds_loopback_by_default_and_stops_on_sigterm():
    command = [sys.executable, "-m", "simrouter", "serve", "--port", "0", "--set", "backend.latency=0.001", "--admin-token", TOKEN]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        url = re.search(r"listening on (http://\S+)", line).group(1)
        assert urllib.parse.urlsplit(url).hostname == "127.0.0.1"
        assert request(url, "GET", "/health")[0] == 200
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "stopped" in err and "warning" not in err


def test_only_loopback_hosts_count_as_loopback():
    from simrouter.commands.common import is_loopback as _loopback

    assert all(_loopback(host) for host in ("127.0.0.1", "127.0.0.9", "::1", "localhost"))
    assert not any(_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.4", "example.org"))
