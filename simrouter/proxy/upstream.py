"""An HTTP backend for the reference router (``simrouter serve --upstream URL``).

Same contract as the stand-in backend (``simrouter.live.backend.StandInBackend``;
both are ``simrouter.live.slots.SlottedBackend``):
``capacity`` slots served first-come first-served, at most ``queue_limit``
waiting (``submit`` returns None beyond: ``queue_full``), and ``submit()`` gives
a future that gets the outcome code. A service is one ``POST URL`` with the body
``{}`` (``Content-Type: application/json``) instead of a sleep: a 2xx answer is
``SUCCESS``, 504 / 408 is ``TIMEOUT``, any other status, a refused or reset
connection, or no answer within ``call_timeout`` seconds is ``FAILURE``. As in
the stand-in, the router's timeout does not reach the backend: a call the router
gave up on keeps its slot until it ends. Fault windows are not applied here: put
``simrouter proxy`` between this backend and the real one and post them there.

This lets ``serve`` play a gateway whose breaker sits in front of the proxy
(docs/proxy.md: "Break your own router").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..live.slots import SlottedBackend
from ..outcomes import FAILURE, SUCCESS, TIMEOUT

DEFAULT_CALL_TIMEOUT_S = 60.0


class UpstreamBackend(SlottedBackend):
    """Capacity slots and a bounded FIFO queue (``live.slots``) in front of an HTTP endpoint."""

    def __init__(self, config, url: str, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None, call_timeout: float = DEFAULT_CALL_TIMEOUT_S):
        super().__init__(config, clock, loop)
        self._url = url
        self._call_timeout = call_timeout
        self._faults: list = []
        self._session = None
        self._tasks: set[asyncio.Task] = set()

    def set_faults(self, windows) -> None:
        """Kept for ``/metrics`` only: the proxy, not this backend, applies faults."""
        self._faults = list(windows)

    @property
    def faults(self) -> list:
        return list(self._faults)

    def _start(self, future: asyncio.Future, start: float) -> None:
        task = self._loop.create_task(self._call(future, start))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, future: asyncio.Future, start: float) -> None:
        import aiohttp

        outcome = FAILURE
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._call_timeout), skip_auto_headers=("User-Agent",))
            async with self._session.post(self._url, data=b"{}", headers={"Content-Type": "application/json"}) as response:
                await response.read()
                status = response.status
            outcome = SUCCESS if 200 <= status < 300 else TIMEOUT if status in (408, 504) else FAILURE
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
            outcome = FAILURE
        finally:
            self._ended(future, outcome, start, self._clock() - start)

    async def aclose(self) -> None:
        """Cancel the calls in flight and close the HTTP session."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def upstream_factory(url: str, call_timeout: float = DEFAULT_CALL_TIMEOUT_S):
    """A ``RouterService`` ``backend_factory`` calling ``url`` (ConfigError('--upstream') if it is not an http(s) URL)."""
    from urllib.parse import urlsplit

    from ..errors import ConfigError

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise ConfigError("--upstream", f"expected a URL like http://127.0.0.1:8100/submit (no credentials), got {url!r}")

    def build(config, clock, loop):
        return UpstreamBackend(config, url, clock, loop, call_timeout)

    return build
