"""A lean HTTP/1.1 keep-alive client for the generator's hot path (plain ``http://``).

Why not aiohttp here: one request through ``aiohttp.ClientSession`` costs about
100 us of CPU (request objects, header multidicts, URL handling, streams), which
puts one generator process at Locust's level. A load generator sends the same
request again and again, so each request's bytes are built once, written on an
idle keep-alive connection, and the answer is parsed only as far as needed:
status line, ``Content-Length`` or chunked framing, and the header block (kept
as bytes; turned into a dict only when a classification rule needs a header).
aiohttp remains the client for ``https://`` targets and for ``--client aiohttp``.

Failures raise ``TargetError`` subclasses the generator maps to kinds:
``ConnectFailed`` (refused, unreachable), ``BrokenAnswer`` (reset, closed early,
not HTTP); a request that is not connected and answered within the timeout
raises ``asyncio.TimeoutError``.
Connections are closed after any failure, after ``Connection: close``, and after
an answer delimited by the end of the connection.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 64 * 1024


class TargetError(Exception):
    """The target could not be reached or did not answer in HTTP."""


class ConnectFailed(TargetError):
    pass


class BrokenAnswer(TargetError):
    pass


def request_bytes(url: str, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    """The full POST request, ready to write."""
    parts = urlsplit(url)
    host = parts.netloc
    head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


def parse_headers(head: bytes) -> dict[str, str]:
    """Header block (after the status line) -> {lower-case name: value}."""
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request outstanding."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.reusable = True
        self._buffer = b""
        self._head: bytes | None = None
        self._status = 0
        self._length = -1  # body bytes expected; -1: chunked; -2: until the connection closes

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, data: bytes, waiter: asyncio.Future) -> None:
        self.waiter = waiter
        self._buffer = b""
        self._head = None
        if self.transport.is_closing():
            self._fail(BrokenAnswer("connection closed by the target"))
            return
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if self._head is None:
            end = buffer.find(HEAD_END)
            if end < 0:
                self._buffer = buffer
                if len(buffer) > MAX_HEAD or (len(buffer) >= 8 and not buffer.startswith(b"HTTP/1.")):
                    self._fail(BrokenAnswer("not an HTTP/1.x answer"))
                return
            head, buffer = buffer[:end], buffer[end + 4 :]
            if not head.startswith(b"HTTP/1.") or len(head) < 12 or not head[9:12].isdigit():
                self._fail(BrokenAnswer("not an HTTP/1.x answer"))
                return
            self._head, self._status = head, int(head[9:12])
            self._length = self._framing(head)
            if self._length == -3:
                return  # _framing failed the request
        if self._length >= 0:
            if len(buffer) < self._length:
                self._buffer = buffer
                return
            self._done()
        elif self._length == -1:
            if not self._chunked_complete(buffer):
                self._buffer = buffer
                return
            self._done()
        else:
            self._buffer = buffer  # delimited by the end of the connection

    def _framing(self, head: bytes) -> int:
        lower = head.lower()
        if b"\r\nconnection: close" in lower:
            self.reusable = False
        if self._status < 200 or self._status in (204, 304):
            return 0
        if b"\r\ntransfer-encoding:" in lower and b"chunked" in lower:
            return -1
        at = lower.find(b"\r\ncontent-length:")
        if at < 0:
            self.reusable = False
            return -2
        value = lower[at + 17 :].split(b"\r\n", 1)[0].strip()
        if not value.isdigit():
            self._fail(BrokenAnswer("bad Content-Length"))
            return -3
        return int(value)

    @staticmethod
    def _chunked_complete(buffer: bytes) -> bool:
        position = 0
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                return False
            try:
                size = int(buffer[position:line_end].split(b";", 1)[0], 16)
            except ValueError:
                return False
            if size == 0:
                return buffer.find(HEAD_END, line_end) >= 0
            position = line_end + 2 + size + 2
            if position > len(buffer):
                return False

    def _done(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._head))

    def _fail(self, error: Exception) -> None:
        self.reusable = False
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self):
        if self._head is not None and self._length == -2:
            self._done()
        else:
            self._fail(BrokenAnswer("connection closed before the answer ended"))
        return False

    def connection_lost(self, exc) -> None:
        self.reusable = False
        if self.waiter is not None:
            self._fail(BrokenAnswer(f"connection lost: {exc}" if exc else "connection closed"))


class Http1Pool:
    """Keep-alive connections to one ``http://host:port`` target."""

    def __init__(self, url: str, timeout: float):
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError("Http1Pool speaks plain http:// only")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._loop = asyncio.get_running_loop()

    async def _connect(self) -> _Connection:
        try:
            _, connection = await self._loop.create_connection(_Connection, self._host, self._port)
        except OSError as exc:
            raise ConnectFailed(str(exc)) from None
        return connection

    async def post(self, data: bytes) -> tuple[int, bytes]:
        """(status, header block) of one request; see the module docstring for errors."""
        connection = None
        while self._idle and connection is None:
            candidate = self._idle.pop()
            if candidate.reusable and not candidate.transport.is_closing():
                connection = candidate
        deadline = self._loop.time() + self._timeout  # one timeout for connecting and answering
        if connection is None:
            # A listener whose backlog is full drops the SYN: connect() alone would wait minutes.
            connection = await asyncio.wait_for(self._connect(), self._timeout)
        waiter = self._loop.create_future()
        timer = self._loop.call_at(deadline, _time_out, waiter)
        try:
            connection.send(data, waiter)
            answer = await waiter
        except BaseException:
            connection.reusable = False
            connection.transport.abort()
            raise
        finally:
            timer.cancel()
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.transport.close()
        return answer

    def close(self) -> None:
        for connection in self._idle:
            connection.transport.close()
        self._idle.clear()


def _time_out(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
