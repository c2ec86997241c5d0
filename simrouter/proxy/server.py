"""The fault-injecting reverse proxy (``simrouter proxy --upstream URL``).

Every request except the proxy's own endpoints is forwarded to ``upstream``
(its base path kept: ``--upstream http://h:9000/api`` sends ``/v1/x`` to
``/api/v1/x``) with its method, query, headers and body unchanged, except the
hop-by-hop headers (``Connection``, ``Keep-Alive``, ``Transfer-Encoding``,
``TE``, ``Upgrade``, ``Proxy-*``, ``Trailer``) and ``Host`` (set to the
upstream's, as nginx's ``proxy_pass`` does). The answer comes back the same way:
status, reason, headers (``Content-Length`` kept when the backend sent one,
content encodings passed through undecoded) and body, streamed as it arrives:
each piece the backend sends (an SSE event, say) is written as soon as it is
read, never buffered. A backend that cannot be reached gets a 502 with an
OpenAI-shaped error body (``code: "bad_gateway"``).

Faults: windows posted to ``POST /admin/faults`` (one ``[[faults]]`` object or
``{"faults": [...]}``, times relative to the call; validated as a scenario's,
overlaps included: 422 naming the field) decide each arriving request through
``simrouter.faults`` with one uniform draw from the proxy's own generator
(``seed``). ``DELETE /admin/faults`` ends them now. Both need the admin token
(``Authorization: Bearer T`` or ``X-Admin-Token: T``; missing: 401, wrong: 403;
compared with ``hmac.compare_digest``).

``GET /metrics``: ``uptime_s`` (the proxy's clock), the fault windows on that
clock, and the per-request record (``simrouter.proxy.record``); with
``?rows=1`` the raw rows too. These three paths are the proxy's own and are not
forwarded. Nothing is logged per request, and no header value (API keys, the
admin token) is kept, echoed or logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import re
import secrets
import time

import numpy as np
from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web
from yarl import URL

from ..config import Scenario, scenario_from_dict
from ..errors import ConfigError
from ..faults import CUT_AFTER_EVENTS, Timeline, error_body, retry_after
from ..live.app_thread import AppThread
from .record import ProxyRecord

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"}
HANG_LIMIT_S = 3600.0  # a hung request is let go after this long even if its client stays
HANG_POLL_S = 0.1
MAX_ADMIN_BODY = 64 * 1024
ADMIN_PATHS = ("/admin/faults", "/metrics")
_EVENT_END = re.compile(rb"\r?\n\r?\n")


def check_upstream(url: str) -> str:
    """``url`` without a trailing slash if it is an http(s)://HOST[:PORT][/PATH] base URL, else ConfigError('--upstream')."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError("--upstream", "credentials in the URL are not supported (the gateway's own Authorization header is forwarded)")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ConfigError("--upstream", f"expected a port from 1 to 65535 in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("--upstream", f"expected a base URL like http://127.0.0.1:9000 or http://host/api, got {url!r}")
    return url.rstrip("/")


def _openai_error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "proxy_error" if status >= 500 else "invalid_request_error", "code": code}}
    return web.json_response(body, status=status)


class FaultProxy:
    """The proxy's state (fault timeline, record, random draws) and its handlers."""

    def __init__(self, upstream: str, admin_token: str | None = None, seed: int = 1):
        self.upstream = check_upstream(upstream)
        self.admin_token = admin_token or secrets.token_urlsafe(16)
        self.record = ProxyRecord()
        self.fault_history: list = []
        self._timeline = Timeline()
        self._rng = np.random.default_rng(seed)
        self._started = time.monotonic()
        self._session: ClientSession | None = None

    def now(self) -> float:
        """Seconds since the proxy started (monotonic)."""
        return time.monotonic() - self._started

    def _draw(self) -> float:
        return float(self._rng.random())

    # -- the application

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024**3)  # forwarded bodies: the backend judges their size
        app.router.add_route("POST", "/admin/faults", self.handle_add_faults)
        app.router.add_route("DELETE", "/admin/faults", self.handle_clear_faults)
        app.router.add_route("GET", "/metrics", self.handle_metrics)
        app.router.add_route("*", "/{tail:.*}", self.handle_forward)
        app.on_startup.append(self._open_session)
        app.on_cleanup.append(self._close_session)
        return app

    async def _open_session(self, app) -> None:
        self._session = ClientSession(
            connector=TCPConnector(limit=0, force_close=False),
            timeout=ClientTimeout(total=None, sock_connect=10.0),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def _close_session(self, app) -> None:
        if self._session is not None:
            await self._session.close()

    # -- forwarding

    async def handle_forward(self, request: web.Request) -> web.StreamResponse:
        arrival = self.now()
        row = self.record.add(arrival)
        decision = self._timeline.decision(arrival, self._draw)
        self.record.set(row, fault=decision.kind, delayed=decision.delays)
        if decision.kind == "error":
            return await self._inject_error(decision, arrival)
        if decision.kind == "hang":
            return await self._hang(request)
        return await self._forward(request, row, decision)

    async def _inject_error(self, decision, arrival: float) -> web.Response:
        if decision.added_latency > 0:
            await asyncio.sleep(decision.added_latency)
        headers = {"Content-Type": "application/json", "X-Simrouter-Fault": "error"}
        if decision.status == 429:
            headers["Retry-After"] = retry_after(self._timeline.windows[decision.window].end, arrival)
        return web.Response(status=decision.status, body=error_body(decision.status), headers=headers)

    async def _hang(self, request: web.Request) -> web.StreamResponse:
        """Never answer: wait until the client gives up (or ``HANG_LIMIT_S``), then drop the connection."""
        deadline = time.monotonic() + HANG_LIMIT_S
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(HANG_POLL_S)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=504)  # never reaches the client: its connection is gone

    def _upstream_headers(self, request: web.Request) -> list[tuple[str, str]]:
        return [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in ("host", "content-length")]

    async def _forward(self, request: web.Request, row: int, decision) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        body = await request.read()
        url = URL(self.upstream + request.raw_path, encoded=True)
        started = loop.time()
        try:
            upstream = await self._session.request(request.method, url, headers=self._upstream_headers(request), data=body or None, allow_redirects=False)
        except (ClientError, OSError, asyncio.TimeoutError):
            return _openai_error(502, "simrouter proxy: the upstream could not be reached", "bad_gateway")
        async with upstream:
            self.record.set(row, status=upstream.status)
            delay = decision.first_byte_delay(loop.time() - started)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    response.headers.add(name, value)
            length = upstream.headers.get("Content-Length")
            if length is not None and length.isdigit():
                response.content_length = int(length)
            if delay > 0:
                await asyncio.sleep(delay)
            sse = upstream.headers.get("Content-Type", "").startswith("text/event-stream")
            await response.prepare(request)
            if decision.kind == "reset":
                return await self._reset(request, upstream, response)
            if decision.kind == "cut_stream" and sse:
                await self._cut(upstream, response)
                await response.write_eof()
                return response
            first = True
            async for piece in upstream.content.iter_any():
                if not first and decision.per_chunk_latency > 0:
                    await asyncio.sleep(decision.per_chunk_latency)
                first = False
                await response.write(piece)
            await response.write_eof()
            return response

    async def _reset(self, request: web.Request, upstream, response: web.StreamResponse) -> web.StreamResponse:
        """Send the headers and about half the first piece of the body, then close the connection."""
        piece = await upstream.content.readany()
        if piece:
            await response.write(piece[: max(1, len(piece) // 2)] if len(piece) > 1 else b"")
        if request.transport is not None:
            request.transport.close()
        return response

    async def _cut(self, upstream, response: web.StreamResponse) -> None:
        """Forward the first ``CUT_AFTER_EVENTS`` SSE events (never ``[DONE]``), then stop."""
        buffer, events = b"", 0
        async for piece in upstream.content.iter_any():
            buffer += piece
            while events < CUT_AFTER_EVENTS:
                end = _EVENT_END.search(buffer)
                if end is None:
                    break
                event, buffer = buffer[: end.end()], buffer[end.end():]
                if b"[DONE]" in event:
                    return
                await response.write(event)
                events += 1
            if events >= CUT_AFTER_EVENTS:
                return

    # -- admin and metrics

    def _refusal(self, request: web.Request) -> web.Response | None:
        """None if the request carries the admin token, else 401 (none given) or 403 (a wrong one)."""
        given = request.headers.get("X-Admin-Token", "").strip()
        if not given:
            scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
            given = credentials.strip() if scheme.lower() == "bearer" else ""
        if not given:
            return web.json_response({"error": "missing admin token: send Authorization: Bearer TOKEN or X-Admin-Token"}, status=401, headers={"WWW-Authenticate": 'Bearer realm="simrouter proxy"'})
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.admin_token.encode()):
            return web.json_response({"error": "wrong admin token"}, status=403)
        return None

    async def handle_add_faults(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.content_type != "application/json":
            return web.json_response({"error": f"expected Content-Type: application/json, got {request.content_type!r}"}, status=422)
        raw = await request.content.read(MAX_ADMIN_BODY + 1)
        if len(raw) > MAX_ADMIN_BODY:
            return web.json_response({"error": f"body over {MAX_ADMIN_BODY} bytes"}, status=422)
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            return web.json_response({"error": "body is not valid JSON"}, status=422)
        if isinstance(payload, dict) and "faults" in payload:
            extra = [key for key in payload if key != "faults"]
            if extra:
                return web.json_response({"error": f'unknown field {extra[0]!r} beside "faults"; send {{"faults": [...]}} or one window'}, status=422)
            windows = payload["faults"]
        else:
            windows = [payload]
        try:
            added = self.add_faults(windows)
        except ConfigError as exc:
            return web.json_response({"error": str(exc)}, status=422)
        return web.json_response({"added": [dataclasses.asdict(f) for f in added], "now_s": self.now()})

    def add_faults(self, windows) -> list:
        """Add windows given relative to now (ConfigError if invalid or overlapping); returns them on the proxy clock."""
        relative = scenario_from_dict({"faults": windows}).faults
        if not relative:
            raise ConfigError("faults", "expected at least one fault window")
        now = self.now()
        added = [dataclasses.replace(f, start=now + f.start, end=now + f.end) for f in relative]
        history = self.fault_history + added
        dataclasses.replace(Scenario(), faults=history, warmup=0.0, duration=max(f.end for f in history))  # overlaps
        self.fault_history = history
        self._timeline = Timeline(history)
        return added

    def clear_faults(self) -> None:
        """End every current window now and drop the future ones."""
        now = self.now()
        kept = [f if f.end <= now else dataclasses.replace(f, end=now) for f in self.fault_history if f.start < now]
        self.fault_history = kept
        self._timeline = Timeline(kept)

    async def handle_clear_faults(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.clear_faults()
        return web.json_response({"cleared": True, "now_s": self.now()})

    def metrics(self, rows: bool = False) -> dict:
        return {
            "proxy": True,
            "uptime_s": self.now(),
            "faults": [dataclasses.asdict(f) for f in self.fault_history],
            **self.record.to_dict(rows=rows),
        }

    async def handle_metrics(self, request: web.Request) -> web.Response:
        rows = request.query.get("rows", "") not in ("", "0", "false")
        return web.json_response(self.metrics(rows=rows))



async def start_proxy(proxy: FaultProxy, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 1.0) -> tuple[web.AppRunner, str]:
    """Start ``proxy`` on ``host:port`` (0: a free port); returns (runner to ``cleanup()``, base URL)."""
    runner = web.AppRunner(proxy.app(), access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return runner, f"http://{shown}:{bound_port}"


class ProxyThread(AppThread):
    """The proxy on its own event loop in a background thread (tests, notebooks):
    ``with ProxyThread(upstream) as p: p.url, p.admin_token, p.proxy``."""

    def __init__(self, upstream: str, admin_token: str | None = None, seed: int = 1, host: str = "127.0.0.1", port: int = 0):
        self.proxy = FaultProxy(upstream, admin_token, seed)
        super().__init__(lambda h, p: start_proxy(self.proxy, h, p, shutdown_timeout=0.1), host, port, "simrouter-proxy")

    @property
    def admin_token(self) -> str:
        return self.proxy.admin_token
