"""The lean HTTP/1.1 client (``simrouter.live.http1``) reads what real servers send.

Against ``tests/misbehaving_server.py`` on loopback: chunked bodies (extensions,
trailers, split over writes), streamed pieces with their arrival times, large
headers, interim answers, bodies of 204 / 304 / HEAD, large bodies, keep-alive
and resending on a reused connection. Every call is bounded by the client's
timeout; the checks are on bytes and counts, never on how fast the machine is.
"""

from __future__ import annotations

import asyncio

import pytest

from misbehaving_server import misbehaving_server
from simrouter.live.http1 import MAX_HEAD, BrokenAnswer, Http1Pool, Request, encode_request, parse_target, redact


def post(url: str, body: bytes = b"{}", path: str = "/submit") -> bytes:
    return encode_request(Request("POST", path, (("Content-Type", "application/json"),), body), parse_target(url).host_header)


def requests(url: str, datas: list[bytes], timeout: float = 2.0, **flags):
    """The answers (or exceptions) to ``datas``, one after another on one pool."""

    async def main():
        pool = Http1Pool(url, timeout)
        answers = []
        for data in datas:
            try:
                answers.append(await pool.request(data, **flags))
            except Exception as exc:  # noqa: BLE001 - the test looks at it
                answers.append(exc)
        pool.close()
        return answers, pool.resent

    return asyncio.run(main())


def test_a_chunked_body_with_extensions_and_a_trailer_split_over_writes():
    with misbehaving_server("chunked", pause=0.01) as server:
        answers, _ = requests(server.url, [post(server.url)] * 3)
    assert [a.body for a in answers] == [b'{"a"}'] * 3
    assert server.connections == 1  # kept alive after each chunked answer


def test_streamed_pieces_keep_their_arrival_times():
    with misbehaving_server("chunked", pause=0.02) as server:
        (answer,), _ = requests(server.url, [post(server.url)], stream=True)
    assert [piece for _, piece in answer.chunks] == [b"{", b'"a"', b"}"]
    times = [t for t, _ in answer.chunks]
    assert times == sorted(times) and answer.first_byte_at <= times[0] <= answer.done_at
    assert answer.body == b'{"a"}'


def test_large_headers_are_read_and_oversized_ones_refused():
    with misbehaving_server("large_headers", size=60_000) as server:
        (answer,), _ = requests(server.url, [post(server.url)])
    assert answer.status == 200 and len(answer.headers["x-large"]) == 60_000
    with misbehaving_server("large_headers", size=MAX_HEAD + 1000) as server:
        (error,), _ = requests(server.url, [post(server.url)])
    assert isinstance(error, BrokenAnswer) and "header block" in str(error)


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_after_204_and_304_whatever_content_length_says(status):
    with misbehaving_server("no_body", status=status) as server:
        answers, _ = requests(server.url, [post(server.url)] * 3)
    assert [a.status for a in answers] == [status] * 3 and all(a.body == b"" for a in answers)
    assert server.connections == 1


def test_an_answer_to_head_has_no_body_and_the_connection_goes_on():
    with misbehaving_server("ok") as server:
        host = parse_target(server.url).host_header
        head = encode_request(Request("HEAD", "/submit"), host)

        async def main():
            pool = Http1Pool(server.url, 2.0)
            first = await pool.request(head, head=True)
            second = await pool.request(post(server.url))
            pool.close()
            return first, second

        first, second = asyncio.run(main())
    assert (first.status, first.body, first.headers["content-length"]) == (200, b"", "2")
    assert (second.status, second.body) == (200, b"{}")
    assert server.connections == 1


def test_interim_answers_are_skipped_and_every_answer_is_its_own_request():
    with misbehaving_server("early_hints") as server:
        answers, _ = requests(server.url, [post(server.url, str(n).encode()) for n in range(5)])
    assert [(a.status, a.body) for a in answers] == [(200, str(n).encode()) for n in range(5)]
    assert server.connections == 1


def test_a_large_body_is_read_whole():
    with misbehaving_server("big", size=8 << 20) as server:
        (answer,), _ = requests(server.url, [post(server.url)], timeout=10.0)
    assert len(answer.body) == 8 << 20 and answer.body[:1] == b"x"


def test_a_request_is_resent_once_when_a_reused_connection_closes_before_any_answer():
    with misbehaving_server("reused_close") as server:
        answers, resent = requests(server.url, [post(server.url)] * 4)
    assert [a.status for a in answers] == [200] * 4 and resent == 3
    # Sent again once, on a new connection; a fresh connection that fails is not retried.
    assert len(server.requests) == 4 + 3


def test_a_fresh_connection_closed_before_the_answer_is_not_resent():
    with misbehaving_server("http10_close") as server:
        server.params["length"] = True
        answers, resent = requests(server.url, [post(server.url)] * 3)
    assert [a.status for a in answers] == [200] * 3 and resent == 0


def test_requests_are_data_and_host_never_carries_userinfo():
    target = parse_target("http://user:pw@[::1]:8080/api/")
    assert (target.host_header, target.base_path, target.display) == ("[::1]:8080", "/api", "http://[::1]:8080/api/")
    assert redact("http://u:p@h:1/x") == "http://h:1/x"
    data = encode_request(Request("POST", "/api/submit", (("X-A", "1"),), b"{}"), target.host_header)
    assert data == b"POST /api/submit HTTP/1.1\r\nHost: [::1]:8080\r\nX-A: 1\r\nContent-Length: 2\r\n\r\n{}"
    with pytest.raises(ValueError, match="line breaks"):
        encode_request(Request("GET", "/", (("X-A", "1\r\nEvil: 1"),)), "h")
