"""A tiny HTTP server on 127.0.0.1 that misbehaves in one chosen way, for the live client's tests.

``misbehaving_server(name, **params)`` starts an asyncio server on a free loopback
port in a background thread and yields a ``Running`` (its ``url``, the requests it
read, the connections it accepted); leaving the block stops it (bounded: 10 s).
Each connection is served by the behaviour ``name`` (a function of this module,
``BEHAVIOURS``); a behaviour reads requests with ``read_request`` and writes raw
bytes, so it can send what real servers send and what well-behaved ones never do:

===================  ============================================================
``ok``               keep-alive HTTP/1.1, ``200 {}`` (``404`` when ``path`` is given and not matched; HEAD: no body)
``negative_chunk``   ``Transfer-Encoding: chunked`` then a chunk size of ``-6``; the connection stays open
``http10_close``     ``HTTP/1.0 200`` and close after each answer (``length=False``: body delimited by the close)
``early_hints``      ``103 Early Hints`` (with a ``Link``) before each ``200`` (its body: the request's)
``chunked_word``     ``Transfer-Encoding: gzip`` and the word "chunked" in another header's value; body until close
``close_token``      ``Connection: keep-alive, close`` (close as a token in a list); then closes
``chunked``          a chunked body in several writes (``pause`` s apart), with a trailer
``large_headers``    a header of ``size`` bytes
``no_body``          ``status`` (204 / 304) with a ``Content-Length`` but no body, keep-alive
``big``              a ``Content-Length`` body of ``size`` bytes (default 8 MiB)
``reused_close``     answers one request per connection, then closes the connection when the next request arrives
``hang_some``        never answers requests whose number (from 0) modulo 10 is < ``tenths`` (default 3)
``slow``             answers ``200`` after ``delay`` s (default 0.1)
===================  ============================================================
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Seen:
    """One request as the server read it."""

    line: str  # "POST /submit HTTP/1.1"
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Running:
    url: str
    params: dict
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0

    def next_number(self) -> int:
        return len(self.requests) - 1


async def read_request(reader: asyncio.StreamReader, server: Running) -> Seen | None:
    """The next request on the connection (recorded), or None at its end."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    try:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    seen = Seen(lines[0], headers, body)
    server.requests.append(seen)
    return seen


async def _send(writer: asyncio.StreamWriter, data: bytes) -> bool:
    try:
        writer.write(data)
        await writer.drain()
        return True
    except ConnectionError:
        return False


OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def ok(reader, writer, server: Running) -> None:
    path = server.params.get("path")
    while (seen := await read_request(reader, server)) is not None:
        method, target = seen.line.split(" ")[:2]
        if path is not None and target != path:
            answer = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
        elif method == "HEAD":
            answer = OK[:-2]  # the headers of the GET answer (Content-Length: 2), no body
        else:
            answer = OK
        if not await _send(writer, answer):
            return


async def negative_chunk(reader, writer, server: Running) -> None:
    if await read_request(reader, server) is not None:
        await _send(writer, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\n")
        await reader.read()  # keep the connection open until the client gives up


async def http10_close(reader, writer, server: Running) -> None:
    if await read_request(reader, server) is not None:
        if server.params.get("length", True):
            await _send(writer, b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        else:
            await _send(writer, b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}")
    writer.close()


async def early_hints(reader, writer, server: Running) -> None:
    while (seen := await read_request(reader, server)) is not None:
        hints = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
        final = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(seen.body), seen.body)  # echoes the request body
        if not await _send(writer, hints + final):
            return


async def chunked_word(reader, writer, server: Running) -> None:
    # Transfer-Encoding without chunked as its last coding: the body ends with the connection.
    if await read_request(reader, server) is not None:
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nX-Transfer-Note: not chunked\r\n\r\n"
        await _send(writer, head + gzip.compress(b"{}"))
    writer.close()


async def close_token(reader, writer, server: Running) -> None:
    if await read_request(reader, server) is not None:
        await _send(writer, b"HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 2\r\n\r\n{}")
    writer.close()


async def chunked(reader, writer, server: Running) -> None:
    pause = server.params.get("pause", 0.0)
    while await read_request(reader, server) is not None:
        parts = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n", b"1;ext=1\r\n{\r\n", b"3\r\n\"a\"\r\n", b"1\r\n}\r\n", b"0\r\nX-Checksum: 1\r\n\r\n"]
        for part in parts:
            if not await _send(writer, part):
                return
            if pause:
                await asyncio.sleep(pause)


async def large_headers(reader, writer, server: Running) -> None:
    size = server.params.get("size", 60_000)
    while await read_request(reader, server) is not None:
        answer = b"HTTP/1.1 200 OK\r\nX-Large: " + b"x" * size + b"\r\nContent-Length: 2\r\n\r\n{}"
        if not await _send(writer, answer):
            return


async def no_body(reader, writer, server: Running) -> None:
    status = server.params.get("status", 204)
    reason = {204: b"No Content", 304: b"Not Modified"}.get(status, b"OK")
    while await read_request(reader, server) is not None:
        if not await _send(writer, b"HTTP/1.1 %d %s\r\nContent-Length: 7\r\n\r\n" % (status, reason)):
            return


async def big(reader, writer, server: Running) -> None:
    size = server.params.get("size", 8 << 20)
    while await read_request(reader, server) is not None:
        if not await _send(writer, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size):
            return


async def reused_close(reader, writer, server: Running) -> None:
    if await read_request(reader, server) is not None and await _send(writer, OK):
        await read_request(reader, server)  # the next request on this connection: not answered
    writer.close()


async def hang_some(reader, writer, server: Running) -> None:
    tenths = server.params.get("tenths", 3)
    while await read_request(reader, server) is not None:
        if server.next_number() % 10 < tenths:
            await reader.read()  # never answer; wait for the client to close
            return
        if not await _send(writer, OK):
            return


async def slow(reader, writer, server: Running) -> None:
    delay = server.params.get("delay", 0.1)
    while await read_request(reader, server) is not None:
        await asyncio.sleep(delay)
        if not await _send(writer, OK):
            return


BEHAVIOURS = {
    f.__name__: f
    for f in (ok, negative_chunk, http10_close, early_hints, chunked_word, close_token, chunked, large_headers, no_body, big, reused_close, hang_some, slow)
}


@contextmanager
def misbehaving_server(name: str, **params):
    """A server on a free 127.0.0.1 port whose connections get ``BEHAVIOURS[name]``."""
    behaviour = BEHAVIOURS[name]
    ready = threading.Event()
    state: dict = {}

    async def main():
        running = Running("", params)

        async def serve(reader, writer):
            running.connections += 1
            try:
                await behaviour(reader, writer, running)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        running.url = "http://127.0.0.1:%d" % server.sockets[0].getsockname()[1]
        state.update(running=running, loop=asyncio.get_running_loop(), stop=asyncio.Event())
        ready.set()
        async with server:
            await state["stop"].wait()
            server.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the misbehaving server did not start within 10 s")
    try:
        yield state["running"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)
