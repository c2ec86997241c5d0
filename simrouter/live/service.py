"""The reference AI router as a real HTTP service (``simrouter serve``).

``POST /submit`` (a JSON object, e.g. ``{"user": 3, "prompt": "..."}``) goes
through the SAME policy objects as the simulation, built by
``simrouter.policies.build_limiter`` / ``build_breaker`` and driven by
``time.monotonic()`` (seconds since the service started), in the simulation's
order: limiter -> validation -> breaker -> stand-in backend
(``simrouter.live.backend``) under the router timeout. A limiter that delays
(nginx's leaky bucket) holds the request for its delay; one that holds (a
concurrency cap) is released when the router answers. ``router.retry`` and
``router.hedge`` are client policies of the simulation and are not applied here.

=====================  ======  =============================================
answer                 status  notes
=====================  ======  =============================================
succeeded              200
rate_limited           429     limiter keyed by ``user`` (body) or ``X-User-Id``
validation_errors      422     malformed JSON, not an object, wrong content type,
                               body over ``MAX_BODY`` bytes, a field other than
                               ``SUBMIT_FIELDS``, a bad ``user`` / ``prompt``, or
                               the injected ``backend.failures.validation`` fraction
breaker_rejected       503     header ``X-Simrouter-Reason: breaker-open``
queue_full             503     header ``X-Simrouter-Reason: queue-full``
failures               500
timeouts               504     the router timeout (or a hung backend call)
=====================  ======  =============================================

Every answer carries ``X-Simrouter-Outcome`` (the kind's name) and a small JSON
body ``{"outcome": kind}``; a malformed request's body also has ``"error"``,
saying what is wrong. Truly malformed requests are rejected before the
limiter (there is no user to key on); the injected validation fraction comes
after it, as in the simulation. Any other path or method gets 404 / 405 with a
JSON ``{"error": ...}``; no request a client can send gets a 500 other than the
backend's own ``failures``.

``GET /metrics``: the simulation's summary (``RunResult.summary`` built from the
service's own ``Recorder``), plus a ``service`` section (uptime, busy slots,
queue, fault windows). ``GET /metrics/prometheus``: Prometheus text format,
computed at scrape time (no per-request metric updates). ``GET /health``.

``POST /admin/faults`` (token in ``Authorization: Bearer T`` or
``X-Admin-Token``, compared in constant time; missing: 401, wrong: 403) adds fault
windows, one JSON object or ``{"faults": [...]}`` with the fields of
``[[faults]]`` and times relative to the moment of the call (anything else: 422
naming the field);
``DELETE /admin/faults`` ends them now. ``POST /admin/reset`` starts fresh metrics
and policies. The scenario's own ``[[faults]]`` are not applied by the service:
faults come from the admin endpoint (``simrouter live`` sends them).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import inspect
import json
import math
import secrets
import threading
import time
from contextlib import contextmanager

from aiohttp import web

from ..config import FaultWindow, Scenario, scenario_from_dict
from ..distributions import VariateStream
from ..errors import ConfigError
from ..metrics import Recorder
from ..outcomes import BREAKER_REJECTED, FAILURE, KIND_NAMES, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from ..policies import build_breaker, build_limiter
from ..result import RunResult, strict_json
from ..sim import streams
from .backend import StandInBackend, uniform

MAX_BODY = 64 * 1024
SUBMIT_FIELDS = ("user", "prompt")
MAX_USER_KEY = 256  # characters of a string user key (each key has its own limiter state)
REASON_HEADER = "X-Simrouter-Reason"
OUTCOME_HEADER = "X-Simrouter-Outcome"
STATUS = {
    SUCCESS: 200,
    RATE_LIMITED: 429,
    VALIDATION: 422,
    BREAKER_REJECTED: 503,
    QUEUE_FULL: 503,
    FAILURE: 500,
    TIMEOUT: 504,
}
REASONS = {BREAKER_REJECTED: "breaker-open", QUEUE_FULL: "queue-full"}


def _canned(kind: int) -> tuple[int, bytes, dict]:
    headers = {OUTCOME_HEADER: KIND_NAMES[kind], "Content-Type": "application/json"}
    if kind in REASONS:
        headers[REASON_HEADER] = REASONS[kind]
    return STATUS[kind], json.dumps({"outcome": KIND_NAMES[kind]}).encode(), headers


class RouterService:
    """The router's state (policies, backend, recorder) and its HTTP handlers."""

    def __init__(self, scenario: Scenario, seed: int = 1, admin_token: str | None = None):
        self.scenario = scenario
        self.seed = seed
        self.admin_token = admin_token or secrets.token_urlsafe(16)
        self._started = time.monotonic()
        self._canned = {kind: _canned(kind) for kind in STATUS}
        self._backend: StandInBackend | None = None
        self._reset_policies()

    # -- clock and state

    def now(self) -> float:
        """Seconds since the service started (monotonic)."""
        return time.monotonic() - self._started

    def _reset_policies(self) -> None:
        self.limiter = build_limiter(self.scenario.limiter)
        self.breaker = build_breaker(self.scenario.breaker)
        self._record_takes_duration = "duration" in inspect.signature(self.breaker.record).parameters
        self._limiter_waits = getattr(self.limiter, "delays", False) or getattr(self.limiter, "holds", False)
        self.recorder = Recorder()
        self.fault_history: list[FaultWindow] = []
        # In the order the simulation draws them: common random numbers with replication 0.
        self._validation = VariateStream(uniform, streams.stream(self.seed, 0, streams.VALIDATION)).next
        self._epoch_offset = self.now()  # metrics after a reset start here
        if self._backend is not None:
            self._backend.set_faults([])
            self._backend.restart_busy_time()

    def _backend_for(self, loop: asyncio.AbstractEventLoop) -> StandInBackend:
        if self._backend is None:
            self._backend = StandInBackend(self.scenario.backend, self.seed, self.now, loop)
        return self._backend

    def _injected_validation(self) -> bool:
        p = self.scenario.backend.failures.validation
        return bool(p) and self._validation() < p

    # -- the router

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        routes = [
            ("POST", "/submit", self.handle_submit),
            ("GET", "/metrics", self.handle_metrics),
            ("GET", "/metrics/prometheus", self.handle_prometheus),
            ("GET", "/health", self.handle_health),
            ("POST", "/admin/faults", self.handle_add_faults),
            ("DELETE", "/admin/faults", self.handle_clear_faults),
            ("POST", "/admin/reset", self.handle_reset),
        ]
        self._methods: dict[str, list[str]] = {}
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            self._methods.setdefault(path, []).append(method)
        # Last, so it only sees what no route above took: JSON 404 / 405 instead of aiohttp's text pages.
        app.router.add_route("*", "/{tail:.*}", self.handle_unrouted)
        return app

    async def handle_unrouted(self, request: web.Request) -> web.Response:
        allowed = self._methods.get(request.path)
        if allowed:
            return _error(405, f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}", {"Allow": ", ".join(allowed)})
        endpoints = [f"{method} {path}" for path, methods in self._methods.items() for method in methods]
        return _error(404, f"no endpoint {request.path}; endpoints: {', '.join(endpoints)}")

    def _answer(self, kind: int, sent: float, done: float) -> web.Response:
        self.recorder.add(sent, done, kind)
        status, body, headers = self._canned[kind]
        return web.Response(status=status, body=body, headers=headers)

    async def handle_submit(self, request: web.Request) -> web.Response:
        sent = self.now()
        key = await self._read_key(request)
        if isinstance(key, _Malformed):
            self.recorder.add(sent, self.now(), VALIDATION)
            status, _, headers = self._canned[VALIDATION]
            return web.json_response({"outcome": KIND_NAMES[VALIDATION], "error": key.reason}, status=status, headers={OUTCOME_HEADER: headers[OUTCOME_HEADER]})
        limiter = self.limiter
        if not self._limiter_waits:
            if not limiter.try_acquire(key, sent):
                return self._answer(RATE_LIMITED, sent, sent)
            return await self._admitted(sent, sent)
        # Limiters that delay (nginx's leaky bucket) or hold (a concurrency cap).
        delay = limiter.acquire(key, sent)
        if delay is None:
            return self._answer(RATE_LIMITED, sent, sent)
        try:
            if delay > 0:
                await asyncio.sleep(delay)
            return await self._admitted(sent, self.now())
        finally:
            limiter.release(key, self.now())

    async def _admitted(self, sent: float, now: float) -> web.Response:
        """Validation, breaker and backend for a request the limiter let through at ``now``."""
        if self._injected_validation():
            return self._answer(VALIDATION, sent, now)
        breaker = self.breaker
        if not breaker.allow(now):
            return self._answer(BREAKER_REJECTED, sent, now)
        epoch = breaker.epoch
        backend = self._backend_for(asyncio.get_running_loop())
        future = backend.submit()
        if future is None:
            self._record(breaker, FAILURE, sent, now, epoch)
            return self._answer(QUEUE_FULL, sent, now)
        timeout = self.scenario.router.timeout
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future) if math.isfinite(timeout) else None
        try:
            outcome = await future
        except asyncio.CancelledError:  # the client went away: the call will never be recorded
            breaker.release(epoch, self.now())
            raise
        finally:
            if timer is not None:
                timer.cancel()
        done = self.now()
        self._record(breaker, outcome, sent, done, epoch)
        return self._answer(outcome, sent, done)

    def _record(self, breaker, outcome: int, sent: float, done: float, epoch: int) -> None:
        """The outcome goes to the breaker that admitted the call (a reset since then replaced it)."""
        if self._record_takes_duration:
            breaker.record(outcome, done, epoch, duration=done - sent)
        else:
            breaker.record(outcome, done, epoch)

    async def _read_key(self, request: web.Request):
        """The limiter key, or ``_Malformed(reason)``."""
        if request.content_type != "application/json":
            return _Malformed(f"expected Content-Type: application/json, got {request.content_type!r}")
        payload = await _read_json(request)
        if isinstance(payload, _Malformed):
            return payload
        if not isinstance(payload, dict):
            return _Malformed('expected a JSON object like {"user": 3}')
        unknown = [name for name in payload if name not in SUBMIT_FIELDS]
        if unknown:
            return _Malformed(f"unknown field {unknown[0]!r}; accepted fields: {', '.join(SUBMIT_FIELDS)}")
        if not isinstance(payload.get("prompt", ""), str):
            return _Malformed("prompt: expected a string")
        key = payload.get("user", request.headers.get("X-User-Id", "anonymous"))
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            return _Malformed("user: expected a string or a whole number")
        if isinstance(key, str) and len(key) > MAX_USER_KEY or isinstance(key, int) and not -(2**63) <= key < 2**63:
            return _Malformed(f"user: expected at most {MAX_USER_KEY} characters or a 64-bit whole number")
        return key

    # -- metrics

    def result(self) -> RunResult:
        """The service's measurements so far as a RunResult (times: service clock)."""
        sent, done, kind = self.recorder.columns()
        now = self.now()
        if hasattr(self.breaker, "advance"):
            self.breaker.advance(now)  # apply a timer-driven transition that is due
        scenario = dataclasses.replace(
            self.scenario, warmup=self._epoch_offset, duration=max(now, self._epoch_offset + 1e-9), faults=list(self.fault_history)
        )
        busy = self._backend.busy_time() if self._backend else 0.0
        since_reset = now - self._epoch_offset
        return RunResult(
            scenario=scenario,
            seed=self.seed,
            sent=sent,
            done=done,
            kind=kind,
            transitions=list(self.breaker.transitions),
            final_state=self.breaker.state,
            sim_time_s=now,  # the run's end on the service clock, as its transitions and faults
            # Utilization is busy / (capacity x sim_time_s); busy counts since the reset, so scale it.
            backend_busy_s=busy * now / since_reset if since_reset > 0 else 0.0,
        )

    def metrics(self) -> dict:
        data = self.result().to_dict()
        backend = self._backend
        data["service"] = {
            "uptime_s": self.now(),
            "reset_at_s": self._epoch_offset,
            "busy": backend.busy if backend else 0,
            "queued": backend.queued if backend else 0,
            "faults": [dataclasses.asdict(f) for f in self.fault_history],
        }
        return strict_json(data)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        return web.json_response(self.metrics())

    async def handle_prometheus(self, request: web.Request) -> web.Response:
        from .prometheus import render

        body, content_type = render(self)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "uptime_s": self.now()})

    # -- admin

    def _refusal(self, request: web.Request) -> web.Response | None:
        """None if the request carries the admin token, else 401 (none given) or 403 (a wrong one).
        The comparison takes the same time whatever the given token shares with the real one."""
        given = request.headers.get("X-Admin-Token", "").strip()
        if not given:
            scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
            given = credentials.strip() if scheme.lower() == "bearer" else scheme and f"{scheme} {credentials}"
        if not given:
            return _error(401, "missing admin token: send Authorization: Bearer TOKEN or X-Admin-Token", {"WWW-Authenticate": 'Bearer realm="simrouter admin"'})
        # Header values arrive as str with undecodable bytes escaped; encode them back losslessly.
        if not hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self.admin_token.encode()):
            return _error(403, "wrong admin token")
        return None

    async def handle_add_faults(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if request.content_type != "application/json":
            return _error(422, f"expected Content-Type: application/json, got {request.content_type!r}")
        payload = await _read_json(request)
        if isinstance(payload, _Malformed):
            return _error(422, payload.reason)
        if isinstance(payload, dict) and "faults" in payload:
            extra = [key for key in payload if key != "faults"]
            if extra:
                return _error(422, f'unknown field {extra[0]!r} beside "faults"; send {{"faults": [...]}} or one window')
            windows = payload["faults"]
        else:
            windows = [payload]
        try:
            added = self.add_faults(windows)
        except ConfigError as exc:
            return _error(422, str(exc))
        return web.json_response({"added": [dataclasses.asdict(f) for f in added], "now_s": self.now()})

    def add_faults(self, windows: list[dict]) -> list[FaultWindow]:
        """Add fault windows given relative to now; ConfigError if invalid or overlapping."""
        relative = scenario_from_dict({"faults": windows}).faults
        if not relative:
            raise ConfigError("faults", "expected at least one fault window (start, end, error_rate and/or latency_factor)")
        now = self.now()
        added = [dataclasses.replace(f, start=now + f.start, end=now + f.end) for f in relative]
        history = self.fault_history + added
        # Re-validates the whole timeline (overlaps included) the way a scenario is.
        dataclasses.replace(self.scenario, faults=history, warmup=0.0, duration=max(f.end for f in history))
        self.fault_history = history
        self._backend_for(asyncio.get_running_loop()).set_faults(history)
        return added

    def clear_faults(self) -> None:
        """End every current window now and drop the future ones."""
        now = self.now()
        kept = []
        for f in self.fault_history:
            if f.end <= now:
                kept.append(f)
            elif f.start < now:
                kept.append(dataclasses.replace(f, end=now))
        self.fault_history = kept
        if self._backend is not None:
            self._backend.set_faults(kept)

    async def handle_clear_faults(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self.clear_faults()
        return web.json_response({"cleared": True, "now_s": self.now()})

    async def handle_reset(self, request: web.Request) -> web.Response:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        self._reset_policies()
        return web.json_response({"reset": True, "now_s": self.now()})


class _Malformed:
    """Why a request body cannot be used (answered 422 with this reason)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


async def _read_json(request: web.Request):
    """The JSON body, or ``_Malformed`` (too large, not UTF-8 JSON, nested too deep)."""
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _Malformed(f"body over {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return _Malformed("body is not valid JSON")


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(TIMEOUT)


async def start_service(service: RouterService, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 5.0) -> tuple[web.AppRunner, str]:
    """Start ``service`` on ``host:port`` (0: a free port); returns (runner, base URL).
    On ``runner.cleanup()`` requests still in service get ``shutdown_timeout`` s to finish."""
    runner = web.AppRunner(service.app(), access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


class ServiceThread:
    """The service on its own event loop in a background thread (tests, notebooks).

    ``with ServiceThread(scenario) as svc: svc.url ...``; the loop and server stop on exit.
    """

    def __init__(self, scenario: Scenario, seed: int = 1, admin_token: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.service = RouterService(scenario, seed, admin_token)
        self._address = (host, port)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="simrouter-serve", daemon=True)
        self.url = ""
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            runner, self.url = await start_service(self.service, *self._address, shutdown_timeout=0.1)
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def __enter__(self) -> "ServiceThread":
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def admin_token(self) -> str:
        return self.service.admin_token


@contextmanager
def serving(scenario: Scenario, seed: int = 1, admin_token: str | None = None):
    """``with serving(scenario) as svc:`` a ServiceThread on a free loopback port."""
    with ServiceThread(scenario, seed, admin_token) as svc:
        yield svc
