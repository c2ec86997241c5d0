"""An aiohttp server on its own event loop in a background thread (tests, notebooks).

``AppThread`` runs ``start(host, port) -> (runner, url)`` on a fresh loop in a
daemon thread: entering waits until the server listens (re-raising any error it
met while starting), ``url`` is then its base URL, and exiting stops the loop and
cleans the runner up. The reference service (``ServiceThread``) and the fault
proxy (``ProxyThread``) are its two uses.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

Starter = Callable[[str, int], Awaitable[tuple[web.AppRunner, str]]]


class AppThread:
    """A server started by ``start`` on ``host:port`` (0: a free port), in a thread named ``name``."""

    def __init__(self, start: Starter, host: str, port: int, name: str):
        self._start = start
        self._address = (host, port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name=name, daemon=True)
        self.url = ""

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            runner, self.url = await self._start(*self._address)
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self):
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
