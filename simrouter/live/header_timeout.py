"""A header-read timeout for an aiohttp server (slowloris protection).

aiohttp's server has no header-read timeout: a client that sends a request's
header block a byte at a time keeps its connection (and a file descriptor)
until the keep-alive timeout, an hour by default for ``AppRunner``.
``HeaderTimeout`` closes a connection that has not delivered a complete header
block ``timeout`` seconds after

* the connection was opened (the first request), or
* the first byte that arrived after the previous request was handled (the next
  request on a kept-alive connection).

An idle kept-alive connection (no byte since its last answer) is not affected
(aiohttp's keep-alive timeout applies to it), and neither is a request whose
headers are complete: the timeout does not limit how long a handler runs.

How: each connection's protocol (aiohttp's ``RequestHandler``) is wrapped by a
thin ``asyncio.Protocol`` that arms a timer and forwards every call unchanged;
``middleware`` marks, through the request's transport, when aiohttp has parsed
a header block (the handler starts: the timer is cancelled) and when the
handler is done (the next byte arms the timer again). Closing is
``transport.close()``: no answer is sent (as nginx's ``client_header_timeout``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

DEFAULT_HEADER_TIMEOUT_S = 10.0


class HeaderTimeout:
    """Per-connection header deadlines for one server (module docstring)."""

    def __init__(self, timeout: float = DEFAULT_HEADER_TIMEOUT_S):
        if not timeout > 0:
            raise ValueError(f"header timeout: expected seconds > 0, got {timeout}")
        self.timeout = float(timeout)
        self.closed = 0  # connections closed by the timeout
        self._guards: dict[asyncio.BaseTransport, _Guard] = {}

    def protocol_factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for ``loop.create_server``: ``inner()``'s protocol, guarded."""
        return lambda: _Guard(self, inner())

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        guard = self._guards.get(request.transport)
        if guard is None:  # not served through protocol_factory
            return await handler(request)
        guard.headers_done()
        try:
            return await handler(request)
        finally:
            guard.handled()

    def _expired(self, guard: _Guard) -> None:
        self.closed += 1
        guard.close()


class _Guard(asyncio.Protocol):
    """Forwards to the wrapped protocol; arms a timer while a header block is awaited."""

    def __init__(self, owner: HeaderTimeout, inner: asyncio.Protocol):
        self._owner = owner
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = False

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._owner.timeout, self._owner._expired, self)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def headers_done(self) -> None:
        self._in_request = True
        self._disarm()

    def handled(self) -> None:
        self._in_request = False

    def close(self) -> None:
        self._timer = None
        if self._transport is not None:
            self._transport.close()

    # -- asyncio.Protocol, forwarded

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._owner._guards[transport] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._in_request and self._timer is None:
            self._arm()
        self._inner.data_received(data)

    def eof_received(self):
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._owner._guards.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
