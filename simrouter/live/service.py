"""The reference AI router as a real HTTP service (``simrouter serve``).

``POST /submit`` (a JSON object, e.g. ``{"user": 3, "prompt": "..."}``) goes
through the SAME policy objects as the simulation, built by
``simrouter.policies.build_breaker`` and the limiters' own factory
(``limit_factory``, one limit per user in ``simrouter.live.limiter_table``), driven by
``time.monotonic()`` (seconds since the service started; ``clock=`` replaces it),
through the simulation's own admission chain (``simrouter.policies.chain``):
limiter -> validation -> breaker -> stand-in backend (``simrouter.live.backend``)
under the router timeout. A limiter that delays (nginx's leaky bucket) holds the
request for its delay; one that holds (a concurrency cap) is released when the
router answers. The breaker's call duration runs from the forward time (after
the limiter's delay), as in the simulation. ``router.retry`` and
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

The user key (``user`` in the body, else the ``X-User-Id`` header, else
``"anonymous"``) is normalised by ``user_key``: a whole number or a string of
digits, so ``{"user": 3}`` and ``{"user": "3"}`` share one limit; anything
else is a 422 naming the field. Per-user limits live in a bounded table
(``simrouter.live.limiter_table``: idle keys whose limit is fresh again are
forgotten, at most ``max_limiter_keys`` keys).

``handle(key)`` is the request-handling core without HTTP (limiter ->
validation -> breaker -> backend under the router timeout): it records the
answer and returns an ``Answer`` (kind, sent, done); ``/submit`` is a JSON
front end to it, and other front ends (``simrouter.live.openai_service``) may
wrap it the same way.

``GET /metrics``: the simulation's summary, shaped as ``RunResult.summary``
but computed from running aggregates (``simrouter.live.running``: counts, an
HdrHistogram, the last ``metrics.window`` latencies), so a scrape costs the
same at 2 million requests as at ten: latency percentiles are HdrHistogram's
(3 significant digits; max, min and avg exact), the window's exact. Plus a
``service`` section (uptime, busy slots, queue, fault windows, first and last
arrival, limiter keys held, connections closed by the header timeout).
``GET /metrics/prometheus``: Prometheus text format from the same aggregates.
``GET /health``.

A connection must deliver each request's header block within
``header_timeout`` seconds (``simrouter.live.header_timeout``; default
``DEFAULT_HEADER_TIMEOUT_S`` = 10 s, ``simrouter serve --header-timeout``),
else it is closed: slowloris clients do not hold connections.

``POST /admin/faults`` (token in ``Authorization: Bearer T`` or
``X-Admin-Token``, compared in constant time; missing: 401, wrong: 403) adds fault
windows, one JSON object or ``{"faults": [...]}`` with the fields of
``[[faults]]`` and times relative to the moment of the call (anything else: 422
naming the field);
``DELETE /admin/faults`` ends them now. ``POST /admin/reset`` starts fresh metrics
and policies. The scenario's own ``[[faults]]`` are not applied by the service:
faults come from the admin endpoint (``simrouter live`` sends them).

With ``[[deployments]]`` (``router_service`` picks it) the service is a gateway,
``simrouter.live.gateway_service.GatewayService``: the same front end, with
attempts routed over several stand-in deployments and fallbacks; its answers
also carry ``X-Simrouter-Deployment`` and ``X-Simrouter-Attempts``, its
``/metrics`` a ``deployments`` section, and an admin fault window may name one
``deployment`` (here, without deployments, such a window is a 422).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ..config import FaultWindow, Scenario, scenario_from_dict
from ..distributions import VariateStream
from ..errors import ConfigError
from ..diagnosis import diagnose
from ..metrics import breaker_recommendation, recoveries
from ..outcomes import BREAKER_REJECTED, FAILURE, KIND_NAMES, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from ..policies import build_breaker
from ..policies.breakers import BreakerState
from ..policies.chain import AdmissionChain
from ..result import strict_json
from ..sim import streams
from ..targets import evaluate_targets
from ..warmup import WarmupChoice
from .backend import StandInBackend, uniform
from .header_timeout import DEFAULT_HEADER_TIMEOUT_S, HeaderTimeout
from .limiter_table import MAX_KEYS, build_service_limiter
from .running import RunningRecorder

MAX_BODY = 64 * 1024
SUBMIT_FIELDS = ("user", "prompt")
ANONYMOUS = "anonymous"  # the key of a request that names no user
_DIGITS = re.compile(r"-?[0-9]{1,20}")
REASON_HEADER = "X-Simrouter-Reason"
OUTCOME_HEADER = "X-Simrouter-Outcome"
DEPLOYMENT_HEADER = "X-Simrouter-Deployment"  # behind a gateway: the deployment that gave the final answer
ATTEMPTS_HEADER = "X-Simrouter-Attempts"  # behind a gateway: attempts made (fallbacks included)
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


def user_key(value, field: str = "user") -> int:
    """The limiter key for a user id: a whole number, or a string of digits (``3`` and
    ``"3"`` are one key), within 64 bits. ValueError naming ``field`` otherwise."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:40]) + "..."
        raise ValueError(f'{field}: expected a whole number or a string of digits (e.g. 3 or "3"), got {shown}')
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{field}: expected a 64-bit whole number")
    return value


@dataclass(frozen=True)
class Answer:
    """What ``RouterService.handle`` did with one request: the outcome code
    (``simrouter.outcomes``), and when it arrived and was answered (service clock, s).
    Behind a gateway (``simrouter.live.gateway_service``): ``deployment``, the name of the
    deployment whose attempt gave the answer (None: none did), and ``attempts``."""

    kind: int
    sent: float
    done: float
    deployment: str | None = None
    attempts: int = 1

    @property
    def status(self) -> int:
        """The HTTP status ``/submit`` answers it with."""
        return STATUS[self.kind]

    @property
    def name(self) -> str:
        return KIND_NAMES[self.kind]


class RouterService:
    """The router's state (policies, backend, running metrics) and its HTTP handlers.

    ``header_timeout``: seconds a connection has to deliver a request's header
    block (``simrouter.live.header_timeout``); ``max_limiter_keys``: the most
    per-user limits kept (``simrouter.live.limiter_table``); ``clock``: the
    service's time in seconds (default: ``time.monotonic()`` since the start;
    a test may drive ``handle`` on a virtual one, e.g. the event loop's);
    ``token_cost()``: the tokens the request being admitted costs
    (``limiter.tokens_per_minute``; a front end that knows them gives it, e.g.
    ``openai_service``), ``token_refused(wait_s)``: told when the token budget
    refuses one (``live.limiter_table``)."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int = 1,
        admin_token: str | None = None,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
        max_limiter_keys: int = MAX_KEYS,
        clock: Callable[[], float] | None = None,
        backend_factory=None,
        token_cost: Callable[[], int] | None = None,
        token_refused: Callable[[float], None] | None = None,
    ):
        if clock is not None:
            self.now = clock
        self.scenario = scenario
        # (backend config, clock, loop) -> a backend like StandInBackend (e.g. simrouter.proxy.upstream's)
        self.backend_factory = backend_factory
        self.seed = seed
        self.admin_token = admin_token or secrets.token_urlsafe(16)
        self.header_timeout = HeaderTimeout(header_timeout)
        self.max_limiter_keys = max_limiter_keys
        # limiter.tokens_per_minute: the tokens of the request being admitted, and who hears a refusal's wait
        self._token_cost, self._token_refused = token_cost, token_refused
        self._started = time.monotonic()
        self._canned = {kind: _canned(kind) for kind in STATUS}
        self._backend: StandInBackend | None = None
        self.gateway = None  # the policies.gateway.Gateway behind [[deployments]] (GatewayService)
        self._reset_policies()

    # -- clock and state

    def now(self) -> float:
        """Seconds since the service started (monotonic)."""
        return time.monotonic() - self._started

    def _reset_policies(self) -> None:
        self.limiter = build_service_limiter(self.scenario.limiter, self.max_limiter_keys, self._token_cost, self._token_refused)
        self.breaker = build_breaker(self.scenario.breaker)
        # In the order the simulation draws them: common random numbers with replication 0.
        validation = VariateStream(uniform, streams.stream(self.seed, 0, streams.VALIDATION)).next
        self.chain = AdmissionChain(self.limiter, self.breaker, self.scenario.backend.failures.validation, validation)
        self._epoch_offset = self.now()  # metrics after a reset start here
        self.recorder = RunningRecorder(self.scenario.metrics.window, start=self._epoch_offset)
        self.fault_history: list[FaultWindow] = []
        if self._backend is not None:
            self._backend.set_faults([])
            self._backend.restart_busy_time()

    def _backend_for(self, loop: asyncio.AbstractEventLoop) -> StandInBackend:
        if self._backend is None:
            if self.backend_factory is not None:
                self._backend = self.backend_factory(self.scenario.backend, self.now, loop)
            else:
                self._backend = StandInBackend(self.scenario.backend, self.seed, self.now, loop)
        return self._backend

    async def close_backend(self, app=None) -> None:
        """Release what the backend holds (an upstream backend's HTTP session); an app's on_cleanup."""
        close = getattr(self._backend, "aclose", None)
        if close is not None:
            await close()

    # -- the router

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self.header_timeout.middleware])
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

    def _answer(self, kind: int, sent: float, done: float) -> Answer:
        self.recorder.add(sent, done, kind)
        return Answer(kind, sent, done)

    def record_malformed(self, sent: float) -> Answer:
        """Count a request refused before the limiter (no usable key) as a validation error."""
        return self._answer(VALIDATION, sent, self.now())

    async def handle_submit(self, request: web.Request) -> web.Response:
        sent = self.now()
        key = await self._read_key(request)
        if isinstance(key, _Malformed):
            self.record_malformed(sent)
            status, _, headers = self._canned[VALIDATION]
            return web.json_response({"outcome": KIND_NAMES[VALIDATION], "error": key.reason}, status=status, headers={OUTCOME_HEADER: headers[OUTCOME_HEADER]})
        answer = await self.handle(key, sent)
        status, body, headers = self._canned[answer.kind]
        if self.gateway is not None:
            headers = {**headers, ATTEMPTS_HEADER: str(answer.attempts)}
            if answer.deployment is not None:
                headers[DEPLOYMENT_HEADER] = answer.deployment
        return web.Response(status=status, body=body, headers=headers)

    async def handle(self, key, sent: float | None = None) -> Answer:
        """One request of user ``key`` (normalised, e.g. by ``user_key``) that arrived at
        ``sent`` (default: now) through the admission chain (limiter -> validation ->
        breaker) and the backend under the router timeout; the answer is recorded in
        the metrics. Runs on the loop."""
        if sent is None:
            sent = self.now()
        chain = self.chain  # the policies that admit it answer it, even if a reset replaces them meanwhile
        ticket = chain.admit(key, sent)
        if ticket.kind is not None:
            return self._answer(ticket.kind, sent, sent)
        try:
            forwarded = sent
            if ticket.delay > 0:  # nginx's leaky bucket holds the request
                await asyncio.sleep(ticket.delay)
                forwarded = self.now()
            return await self._forwarded(chain, ticket, sent, forwarded)
        finally:
            # The client went away (the task was cancelled): no answer will be recorded; a
            # call already settled has nothing left to give back.
            chain.release(ticket, self.now())

    async def _forwarded(self, chain: AdmissionChain, ticket, sent: float, now: float) -> Answer:
        """Validation, breaker and backend for a request the limiter forwarded at ``now``."""
        refused = chain.forward(ticket, now)
        if refused is not None:
            return self._answer(refused, sent, now)
        loop = asyncio.get_running_loop()
        future = self._backend_for(loop).submit()
        if future is None:
            chain.queue_full(ticket)
            return self._answer(QUEUE_FULL, sent, now)
        outcome = await answered_within(future, self.scenario.router.timeout)
        done = self.now()
        chain.settle(ticket, done, outcome)
        return self._answer(outcome, sent, done)

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
        try:
            if "user" in payload:
                return user_key(payload["user"], "user")
            header = request.headers.get("X-User-Id")
            return ANONYMOUS if header is None else user_key(header.strip(), "X-User-Id")
        except ValueError as exc:
            return _Malformed(str(exc))

    # -- metrics

    def summary(self) -> dict:
        """The measurements since the start or last reset, shaped as ``RunResult.summary``
        (times: service clock), from the running aggregates: O(1) in requests."""
        recorder = self.recorder
        now = self.now()
        if hasattr(self.breaker, "advance"):
            self.breaker.advance(now)  # apply a timer-driven transition that is due
        warmup = self._epoch_offset
        scenario = dataclasses.replace(self._scenario_now(), warmup=warmup, duration=max(now, warmup + 1e-9))
        counts = recorder.kind_counts()
        sent = recorder.sent
        latency_ms = recorder.latency_stats()
        transitions = list(self.breaker.transitions)
        found = recoveries(transitions, scenario.faults, now)
        recovery_values = [r.seconds for r in found]
        recovery_s = max(recovery_values) if found and None not in recovery_values else None
        capacity = scenario.backend.capacity
        since_reset = now - warmup
        busy = self._backend.busy_time() if self._backend else 0.0
        utilization = busy / (capacity * since_reset) if since_reset > 0 else 0.0
        state = self.breaker.state
        summary = {
            "scenario": scenario.name,
            "seed": self.seed,
            "replication": 0,
            "sim_time_s": now,  # the run's end on the service clock, as its transitions and faults
            "warmup": WarmupChoice(float(warmup), "fixed").to_dict(),
            "requests": {"sent": sent, **counts},
            "attempts": {"total": sent, "retries": 0, "hedges": 0, "per_request": 1.0 if sent else 0.0, "retries_denied_by_budget": 0},
            "latency_ms": latency_ms,
            "latency_ms_window": recorder.window_stats(),
            "throughput": recorder.throughput(),
            "error_rate": (sent - recorder.successes) / sent if sent else 0.0,
            "error_rates": {name: (counts[name] / sent if sent else 0.0) for name in KIND_NAMES[1:]},
            "breaker": {
                "preset": scenario.breaker.preset,
                "state": state.value,
                "healthy": state is BreakerState.CLOSED,
                "failure_rate": recorder.failure_rate(),
                "avg_response_ms": latency_ms["avg"],
                "trips": sum(1 for tr in transitions if tr.to_state is BreakerState.OPEN),
                "transitions": [tr.to_dict() for tr in transitions],
                "recovery_s": recovery_s,
                "recovered": None if not found else recovery_s is not None,
                "recoveries": [r.to_dict() for r in found],
            },
            # Busy time counts since the reset: utilisation over the same span.
            "backend": {"capacity": capacity, "utilization": utilization, "utilization_whole_run": utilization},
        }
        self._add_sections(summary, now)
        summary["diagnosis"] = diagnose(summary, scenario)  # simrouter.diagnosis (no per-call window kept here)
        summary["breaker"]["recommendation"] = breaker_recommendation(summary, scenario)
        has_faults = bool(scenario.faults) or any(d.faults for d in scenario.deployments)
        summary["targets"] = [t.to_dict() for t in evaluate_targets(summary, scenario.targets, has_faults)]
        summary["config"] = scenario.to_dict()
        return summary

    def _scenario_now(self) -> Scenario:
        """The scenario with the fault windows injected so far (service clock) in place of its own."""
        return dataclasses.replace(self.scenario, faults=list(self.fault_history))

    def _add_sections(self, summary: dict, now: float) -> None:
        """What a subclass adds to ``summary`` before the diagnosis and targets read it (a gateway's deployments)."""

    def breaker_gauges(self) -> tuple[BreakerState, int]:
        """(state, trips) of the router's breaker now (Prometheus)."""
        return self.breaker.state, sum(1 for tr in self.breaker.transitions if tr.to_state is BreakerState.OPEN)

    def deployment_gauges(self) -> list[dict]:
        """Per deployment behind a gateway, for Prometheus (none here: ``GatewayService``)."""
        return []

    def arrival_range(self) -> tuple[float | None, float | None]:
        """(first, last) arrival of a measured request on the service clock (None: none yet)."""
        return self.recorder.first_sent, self.recorder.last_sent

    def metrics(self) -> dict:
        data = self.summary()
        backend = self._backend
        first, last = self.arrival_range()
        data["service"] = {
            "uptime_s": self.now(),
            "reset_at_s": self._epoch_offset,
            "busy": backend.busy if backend else 0,
            "queued": backend.queued if backend else 0,
            "faults": self.fault_windows(),
            "first_arrival_s": first,
            "last_arrival_s": last,
            "limiter_keys": len(self.limiter) if hasattr(self.limiter, "__len__") else None,
            "header_timeout_s": self.header_timeout.timeout,
            "header_timeouts": self.header_timeout.closed,
        }
        return strict_json(data)

    def backend_gauges(self) -> tuple[int, int]:
        """(busy slots, queued requests) of the stand-in backend now."""
        backend = self._backend
        return (backend.busy, backend.queued) if backend else (0, 0)

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
        rows = [dataclasses.asdict(f) for f in added]
        for row, window in zip(rows, windows):  # windows come back in the order given
            if isinstance(window, dict) and "deployment" in window:
                row["deployment"] = window["deployment"]
        return web.json_response({"added": rows, "now_s": self.now()})

    def fault_windows(self) -> list[dict]:
        """Every window injected so far (service clock), as ``[[faults]]`` fields."""
        return [dataclasses.asdict(f) for f in self.fault_history]

    def add_faults(self, windows: list[dict]) -> list[FaultWindow]:
        """Add fault windows given relative to now; ConfigError if invalid or overlapping."""
        if isinstance(windows, list) and any(isinstance(w, dict) and "deployment" in w for w in windows):
            raise ConfigError("deployment", "this service has no [[deployments]]: send the window without a deployment (accepted: none)")
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
    """The router timeout's timer: the backend call's future gets ``TIMEOUT`` unless answered."""
    if not future.done():
        future.set_result(TIMEOUT)


async def answered_within(future: asyncio.Future, timeout: float) -> int:
    """The backend call's outcome, or ``TIMEOUT`` if ``timeout`` s pass first
    (``inf``: no timer). The call keeps its backend slot either way."""
    timer = asyncio.get_running_loop().call_later(timeout, _expire, future) if math.isfinite(timeout) else None
    try:
        return await future
    finally:
        if timer is not None:
            timer.cancel()


class RunningService:
    """A started service: its URL, and ``cleanup()`` to stop listening and close
    its connections (requests still in service get ``shutdown_timeout`` s)."""

    def __init__(self, runner: web.AppRunner, server: asyncio.AbstractServer, url: str):
        self.runner = runner
        self.server = server
        self.url = url

    async def cleanup(self) -> None:
        self.server.close()
        await self.runner.cleanup()  # shuts the app down and closes every connection
        try:
            await asyncio.wait_for(self.server.wait_closed(), 5.0)
        except asyncio.TimeoutError:
            pass


async def start_service(
    service: RouterService, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 5.0, app: web.Application | None = None
) -> tuple[RunningService, str]:
    """Start ``service`` (or another front end's ``app`` on it, e.g. an OpenAI-protocol
    one) on ``host:port`` (0: a free port) with the service's header timeout;
    returns (handle with ``cleanup()``, base URL)."""
    app = app if app is not None else service.app()
    if service.header_timeout.middleware not in app.middlewares:  # it ends each connection's header deadline
        app.middlewares.append(service.header_timeout.middleware)
    if getattr(service, "close_backend", None) is not None:
        app.on_cleanup.append(service.close_backend)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(service.header_timeout.protocol_factory(runner.server), host, port, reuse_address=True)
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningService(runner, server, f"http://{shown}:{bound_port}"), f"http://{shown}:{bound_port}"
