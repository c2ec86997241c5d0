"""A lean HTTP/1.1 keep-alive client for the generator's hot path (plain ``http://``).

Why not aiohttp here: one request through ``aiohttp.ClientSession`` costs about
100 us of CPU (request objects, header multidicts, URL handling, streams), which
puts one generator process at Locust's level. A load generator sends the same
request again and again, so each request's bytes are built once
(``encode_request``) and written on an idle keep-alive connection. The answer is
parsed by ``httptools`` (llhttp, the parser of Node.js, also under aiohttp and
uvicorn), so framing is what real servers send: ``Content-Length``, chunked
transfer coding (extensions, trailers), a body delimited by the end of the
connection, no body for 1xx / 204 / 304 / ``HEAD``; ``Connection`` tokens and the
status line's version decide keep-alive (HTTP/1.0 closes unless ``keep-alive``).
aiohttp remains the client for ``https://`` targets and for ``--client aiohttp``.

What a request and an answer are (so a protocol codec can build the one and read
the other): a ``Request`` is (method, path, headers, body bytes); an ``Answer`` is
the status, the headers (``raw_headers`` as read, ``headers`` a lower-case dict),
the body (its pieces joined once) or, with ``stream=True``, the body pieces with
their arrival times (``chunks``), and when its first and last bytes arrived
(``first_byte_at``, ``done_at``, on ``time.monotonic()``, the generator's clock,
which is also the standard event loop's: the time ``data_received`` got the
bytes, not when the awaiting coroutine resumed; the pieces of one read share
its arrival time).

Interim answers (``100``, ``102``, ``103 Early Hints``...) are skipped: the answer
is the first final one. ``101`` (a protocol switch nobody asked for) is a broken
answer. A second answer to one request, or bytes when no request is out, retire
the connection.

Failures raise ``TargetError`` subclasses the generator maps to kinds:
``ConnectFailed`` (refused, unreachable), ``BrokenAnswer`` (reset, closed early,
not HTTP, a header block over ``MAX_HEAD`` bytes); a request that is not
connected and answered within the timeout raises ``asyncio.TimeoutError``. No
answer blocks the event loop: the parser works on the bytes at hand and fails at
the first invalid one (a negative chunk size, say).

A request that fails on a *reused* idle connection before any byte of its answer
came back (the server closed the idle connection as the request went out) is sent
once more on a new connection, within the same timeout, as browsers and aiohttp do.
Connections are closed after any failure, when the answer does not keep the
connection alive, and after an answer delimited by the end of the connection.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import httptools

MAX_HEAD = 64 * 1024  # bytes of status line and header block (aiohttp: 8 KiB a line)


class TargetError(Exception):
    """The target could not be reached or did not answer in HTTP."""


class ConnectFailed(TargetError):
    pass


class BrokenAnswer(TargetError):
    """Reset, closed early, or not HTTP; ``before_answer``: no byte of the answer had come."""

    def __init__(self, message: str, before_answer: bool = False):
        super().__init__(message)
        self.before_answer = before_answer


# -- what is sent


@dataclass(frozen=True)
class Target:
    """A base URL split for the client: ``userinfo`` never goes into ``host_header`` or ``display``."""

    scheme: str
    host: str
    port: int
    host_header: str  # host[:port] as in the URL, without userinfo
    base_path: str  # the URL's path without its trailing "/" ("" for none)
    authorization: str | None  # "Basic ..." from the URL's userinfo, else None
    display: str  # the URL without userinfo: what results and messages show


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    host_header = parts.netloc.rpartition("@")[2]
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    base_path = parts.path.rstrip("/")
    display = urlunsplit((parts.scheme, host_header, parts.path, parts.query, ""))
    return Target(parts.scheme, parts.hostname or "", port, host_header, base_path, authorization, display)


def redact(url: str) -> str:
    """``url`` without its userinfo (``http://u:p@h/x`` -> ``http://h/x``)."""
    return parse_target(url).display


@dataclass(frozen=True)
class Request:
    """One HTTP request as data: what a protocol codec builds."""

    method: str
    path: str  # absolute on the host, with any query string
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def encode_request(request: Request, host_header: str) -> bytes:
    """The request's bytes: request line, ``Host``, its headers, ``Content-Length``, body."""
    lines = [f"{request.method} {request.path} HTTP/1.1", f"Host: {host_header}"]
    names = set()
    for name, value in request.headers:
        if "\r" in name + value or "\n" in name + value:
            raise ValueError(f"header {name!r}: line breaks are not allowed in a header")
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if "content-length" not in names and (request.body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body


def request_bytes(url: str, path: str, body: bytes, content_type: str = "application/json") -> bytes:
    """A POST of ``body`` to ``path`` (absolute) on ``url``'s host, ready to write."""
    return encode_request(Request("POST", path, (("Content-Type", content_type),), body), parse_target(url).host_header)


# -- what comes back


class Answer:
    """One final HTTP answer (see the module docstring)."""

    __slots__ = ("status", "version", "raw_headers", "body", "chunks", "first_byte_at", "done_at", "_headers")

    def __init__(self, status, version, raw_headers, body, chunks, first_byte_at, done_at):
        self.status: int = status
        self.version: str = version
        self.raw_headers: list[tuple[bytes, bytes]] = raw_headers
        self.body: bytes = body
        self.chunks: list[tuple[float, bytes]] | None = chunks
        self.first_byte_at: float = first_byte_at
        self.done_at: float = done_at
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str]:
        """{lower-case name: value}; a repeated header's values joined by ", "."""
        if self._headers is None:
            headers: dict[str, str] = {}
            for name, value in self.raw_headers:
                key, text = name.decode("latin-1").lower(), value.decode("latin-1").strip()
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
            self._headers = headers
        return self._headers


def parse_headers(head: bytes) -> dict[str, str]:
    """A raw header block (after the status line) -> {lower-case name: value}."""
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


def _needs_eof(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """True when a body is delimited by the end of the connection (RFC 9112 6.3, as llhttp)."""
    coding = length = None
    for name, value in raw_headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            coding = value
        elif lower == b"content-length":
            length = value
    if coding is not None:
        return coding.rsplit(b",", 1)[-1].strip().lower() != b"chunked"
    return length is None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request outstanding."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.reusable = True
        self.answered = 0  # final answers read: > 0 makes the next request a reuse
        self._parser = httptools.HttpResponseParser(self)
        self._fresh_parser = False  # after a HEAD answer the parser expects a body: replace it
        self._waiter: asyncio.Future | None = None
        self._head = False
        self._stream = False
        self._reset_request()

    def _reset_request(self) -> None:
        self._received = False
        self._first_byte_at = 0.0
        self._data_at = 0.0  # arrival of the bytes being parsed (time.monotonic())
        self._head_bytes = 0
        self._final = False  # the final answer's headers were read
        self._interim = False
        self._keep_alive = True
        self._status = 0
        self._raw: list[tuple[bytes, bytes]] = []
        self._body: list = []
        self._error: BrokenAnswer | None = None  # raised in a callback: what feed_data's error means

    # -- asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._retire()  # bytes nobody asked for: the connection's answers cannot be trusted
            return
        self._data_at = now = time.monotonic()
        if not self._received:
            self._received, self._first_byte_at = True, now
        if not self._final:
            self._head_bytes += len(data)  # an upper bound of the header block read so far
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(BrokenAnswer("the target switched protocols (Upgrade / 101) unasked"))
            return
        except httptools.HttpParserError as exc:
            self._fail(self._error or BrokenAnswer(f"not a valid HTTP/1.x answer: {exc}"))
            return
        if not self._final and self._waiter is not None and self._head_bytes > MAX_HEAD:
            self._fail(BrokenAnswer(f"header block over {MAX_HEAD} bytes"))

    def eof_received(self):
        self.reusable = False
        if self._waiter is not None:
            if self._final and not self._head and _needs_eof(self._raw):
                self._keep_alive = False
                self._finish()  # the body ends with the connection
            else:
                self._fail(BrokenAnswer("connection closed before the answer ended", before_answer=not self._received))
        return False

    def connection_lost(self, exc) -> None:
        self.reusable = False
        if self._waiter is not None:
            message = f"connection lost: {exc}" if exc else "connection closed"
            self._fail(BrokenAnswer(message, before_answer=not self._received))

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self._waiter is None:
            self.reusable = False  # a second answer to one request
        self._raw = []
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw.append((name, value))

    def _callback_error(self, message: str) -> BrokenAnswer:
        self._error = BrokenAnswer(message)
        return self._error

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if self._head_bytes > MAX_HEAD and sum(len(name) + len(value) for name, value in self._raw) > MAX_HEAD:
            raise self._callback_error(f"header block over {MAX_HEAD} bytes")
        if status < 200:
            if status == 101:
                raise self._callback_error("the target switched protocols (101) unasked")
            self._interim = True  # 100 Continue, 103 Early Hints...: the answer is still to come
            return
        self._interim = False
        self._final = True
        self._status = status
        self._keep_alive = self._parser.should_keep_alive()
        if self._head:
            self._fresh_parser = True
            self._finish()  # an answer to HEAD has no body, whatever its Content-Length says

    def on_body(self, body: bytes) -> None:
        if self._stream:
            self._body.append((self._data_at, body))
        else:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._waiter is not None and self._final:
            self._finish()

    # -- one request

    def send(self, data: bytes, waiter: asyncio.Future, head: bool = False, stream: bool = False) -> None:
        if self._fresh_parser:
            self._parser, self._fresh_parser = httptools.HttpResponseParser(self), False
        self._reset_request()
        self._waiter, self._head, self._stream = waiter, head, stream
        if self.transport.is_closing():
            self._fail(BrokenAnswer("connection closed by the target", before_answer=True))
            return
        self.transport.write(data)

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if not self._keep_alive:
            self.reusable = False
        self.answered += 1
        if self._stream:
            body, chunks = b"".join(piece for _, piece in self._body), self._body
        else:
            body, chunks = b"".join(self._body), None
        answer = Answer(self._status, self._parser.get_http_version(), self._raw, body, chunks, self._first_byte_at, self._data_at)
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    def _fail(self, error: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self._retire()

    def _retire(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.abort()

    def abandon(self) -> None:
        """The request was given up (timeout, cancellation): the connection goes."""
        self._waiter = None
        self._retire()


class Http1Pool:
    """Keep-alive connections to one ``http://host:port`` target."""

    def __init__(self, url: str, timeout: float):
        target = parse_target(url)
        if target.scheme != "http":
            raise ValueError("Http1Pool speaks plain http:// only")
        self._host = target.host
        self._port = target.port
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._loop = asyncio.get_running_loop()
        self.resent = 0  # requests sent again after a reused connection closed under them

    async def _connect(self) -> _Connection:
        try:
            _, connection = await self._loop.create_connection(lambda: _Connection(self._loop), self._host, self._port)
        except OSError as exc:
            raise ConnectFailed(str(exc)) from None
        return connection

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            candidate = self._idle.pop()
            if candidate.reusable and not candidate.transport.is_closing():
                return candidate
        return None

    async def request(self, data: bytes, *, head: bool = False, stream: bool = False) -> Answer:
        """The final answer to the request ``data`` (see the module docstring for errors);
        ``head``: it is a HEAD request (no body comes back); ``stream``: keep the body's
        pieces with their arrival times."""
        deadline = self._loop.time() + self._timeout  # one timeout for connecting, answering, resending
        resent = False
        while True:
            connection = self._idle_connection()
            reused = connection is not None
            if connection is None:
                # A listener whose backlog is full drops the SYN: connect() alone would wait minutes.
                connection = await asyncio.wait_for(self._connect(), max(0.0, deadline - self._loop.time()))
            waiter = self._loop.create_future()
            timer = self._loop.call_at(deadline, _time_out, waiter)
            try:
                connection.send(data, waiter, head, stream)
                answer = await waiter
            except BrokenAnswer as error:
                connection.abandon()
                if reused and error.before_answer and not resent:
                    resent = True
                    self.resent += 1
                    continue
                raise
            except BaseException:
                connection.abandon()
                raise
            finally:
                timer.cancel()
            if connection.reusable:
                self._idle.append(connection)
            else:
                connection.transport.close()
            return answer

    async def post(self, data: bytes) -> Answer:
        """``request(data)``: the generator's requests are built with ``encode_request``."""
        return await self.request(data)

    def close(self) -> None:
        for connection in self._idle:
            connection.transport.close()
        self._idle.clear()


def _time_out(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())
