"""An HTTP backend for the reference router (``simrouter serve --upstream URL``).

Same contract as the stand-in backend (``simrouter.live.backend.StandInBackend``):
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
from collections import deque
from collections.abc import Callable

from ..outcomes import FAILURE, SUCCESS, TIMEOUT

DEFAULT_CALL_TIMEOUT_S = 60.0


class UpstreamBackend:
    """Capacity slots and a bounded FIFO queue in front of an HTTP endpoint."""

    def __init__(self, config, url: str, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None, call_timeout: float = DEFAULT_CALL_TIMEOUT_S):
        self._loop = loop or asyncio.get_running_loop()
        self._clock = clock
        self._url = url
        self._capacity = config.capacity
        self._queue_limit = config.queue_limit
        self._call_timeout = call_timeout
        self._waiting: deque[asyncio.Future] = deque()
        self._faults: list = []
        self._session = None
        self._tasks: set[asyncio.Task] = set()
        self.busy = 0
        self._ended_busy = 0.0
        self._started_sum = 0.0

    @property
    def queued(self) -> int:
        return len(self._waiting)

    def set_faults(self, windows) -> None:
        """Kept for ``/metrics`` only: the proxy, not this backend, applies faults."""
        self._faults = list(windows)

    @property
    def faults(self) -> list:
        return list(self._faults)

    def busy_time(self) -> float:
        return self._ended_busy + self.busy * self._clock() - self._started_sum

    def restart_busy_time(self) -> None:
        self._ended_busy = self._started_sum - self.busy * self._clock()

    def submit(self) -> asyncio.Future | None:
        future = self._loop.create_future()
        if self.busy < self._capacity:
            self.busy += 1
            self._start(future)
        elif len(self._waiting) >= self._queue_limit:
            return None
        else:
            self._waiting.append(future)
        return future

    def _start(self, future: asyncio.Future) -> None:
        task = self._loop.create_task(self._call(future, self._clock()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, future: asyncio.Future, start: float) -> None:
        import aiohttp

        self._started_sum += start
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
            end = self._clock()
            self._started_sum -= start
            self._ended_busy += end - start
            if not future.done():
                future.set_result(outcome)
            if self._waiting:
                self._start(self._waiting.popleft())
            else:
                self.busy -= 1

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
