"""The load generator: a scenario's workload in wall-clock time against an HTTP target.

``run_live(scenario, target)`` sends ``POST {target}/submit`` with the body
``{"user": key}`` and returns a ``LiveResult`` (``simrouter.live.result``). The
target's path is kept (``http://h:8000/api`` posts to ``/api/submit``); userinfo in
the URL (``http://u:p@h``) is sent as HTTP Basic authorization, never in ``Host``,
and is left out of every result and message (``LiveResult.target`` is redacted).
A request is data (``http1.Request``: method, path, headers, body, built once per
user key by ``LoadGenerator.build_request``), encoded once; the answer (status,
headers, body: ``http1.Answer``) goes to the ``Classifier``.
Requests go through the lean keep-alive client ``simrouter.live.http1`` for
``http://`` targets (``client="aiohttp"``, and any ``https://`` target, use aiohttp);
the admin and metrics calls always use aiohttp.

Workloads, as in the simulation (``simrouter.sim.model``):

* closed / sequential: ``users`` coroutines, each sends, waits for the answer,
  thinks (``think_time``), repeats, ``requests_per_user`` times (0: until
  ``duration``); one keep-alive connection per user. Nothing is scheduled ahead,
  so the intended send time IS the actual send time.
* open: arrivals at their *intended* times (Poisson or evenly spaced, ``rate`` or
  ``stages``, keys spread at random over ``users``), from the simulation's own
  ``simrouter.workload.arrival_times``, so lateness never drifts the schedule. Each
  arrival waits for one of ``connections`` connections (as wrk2's ``-c``); an
  arrival finding ``connections + max_backlog`` requests already pending is
  *dropped* (not sent; k6's dropped_iterations). An arrival sent more than
  ``late_threshold`` after its intended time is *late*. A dropped arrival is
  recorded as a request of kind ``dropped`` (a failure in every rate and gate,
  without latency: nothing was sent).

Lag, per request (open model): *scheduler lag* is intended time -> the request
ready to go (the generator's own timers, tasks and CPU), *pool wait* is ready ->
a connection free (all ``connections`` busy: the target is slow, or too few
connections). ``live.generator`` says which made requests late and warns when
the generator's own CPU or event-loop lag (a 50 ms probe timer) limited the run.

Latency is kept from both the intended send time (``sent``: coordinated-omission
corrected, as wrk2) and the actual send time (``actual``); they differ when the
generator or its connections fall behind. ``done`` is when the answer's last byte
was read (the lean client stamps it in ``data_received``, not when the awaiting
coroutine resumed); a timeout or transport failure is stamped when it happened.

Bounds: arrivals stop at ``duration`` or after ``max_requests`` (the scenario's,
else ``LiveOptions.max_requests``), never beyond ``hard_cap``; every request then
has ``client_timeout`` to answer. SIGINT / SIGTERM (when run in the main thread)
stop sending, end requests in flight as ``interrupted`` and return what was
measured, marked ``cut_short``.

Every request sent is recorded exactly once, with the kind the ``Classifier``
gives its answer, or a transport kind (refused, reset, hung, garbage).

Fault injection: the scenario's ``[[faults]]`` are POSTed to
``{target}/admin/faults`` at the start of the run, with times relative to then
(the service keeps them on its own clock), with ``LiveOptions.admin_token`` only
when one is given (the CLI gives ``$SIMROUTER_ADMIN_TOKEN`` only to a target named
as simrouter's own, ``--target-is-serve``). The breaker's transitions are read
back from ``{target}/metrics`` at the end and put on the generator's clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import threading
import time
from array import array
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from .. import interrupts
from ..config import Scenario
from ..distributions import Exponential, VariateStream
from ..errors import ConfigError
from ..sim import streams
from ..workload import arrival_times, open_schedule
from .classify import CLIENT_TIMEOUT, CONNECT_ERROR, DROPPED, INTERRUPTED, PROTOCOL_ERROR, Classifier
from .http1 import ConnectFailed, Http1Pool, Request, TargetError, encode_request, parse_target

SUBMIT_PATH = "/submit"
DEFAULT_OPEN_CONNECTIONS = 256
LOOP_PROBE_S = 0.05  # the event-loop lag probe's period
TOKEN_ENV = "SIMROUTER_ADMIN_TOKEN"


@dataclass
class LiveOptions:
    """How to drive the target (the scenario says what to send)."""

    connections: int | None = None  # open model; closed: one per user
    max_requests: int = 0  # 0: the scenario's bounds only
    hard_cap: int = 5_000_000
    client_timeout: float | None = None  # None: router.timeout + 5 s (60 s if none)
    late_threshold: float = 0.010
    max_backlog: int = 10_000
    admin_token: str | None = None  # sent to /admin/faults only when given
    target_is_serve: bool = False  # the user named the target as simrouter's own serve
    inject_faults: bool = True
    seed: int = 1
    classifier: Classifier = field(default_factory=Classifier)
    handle_signals: bool = True
    client: str = "auto"  # "fast" (simrouter.live.http1), "aiohttp", or auto: fast for http://
    progress: bool = False  # a transient bar of elapsed vs scenario duration on standard error

    def timeout_for(self, scenario: Scenario) -> float:
        if self.client_timeout is not None:
            return self.client_timeout
        timeout = scenario.router.timeout
        return timeout + 5.0 if math.isfinite(timeout) else 60.0


class _Columns:
    """Per-request columns on the generator's clock (seconds since the run started)."""

    __slots__ = ("sent", "ready", "actual", "done", "kind")

    def __init__(self) -> None:
        self.sent = array("d")  # intended send time
        self.ready = array("d")  # the request ready to go, before waiting for a connection
        self.actual = array("d")  # sent on a connection
        self.done = array("d")  # answer read (or failure)
        self.kind = array("b")

    def add(self, sent: float, ready: float, actual: float, done: float, kind: int) -> None:
        self.sent.append(sent)
        self.ready.append(ready)
        self.actual.append(actual)
        self.done.append(done)
        self.kind.append(kind)

    def __len__(self) -> int:
        return len(self.kind)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """sent, actual, done, kind, ready."""
        columns = ((self.sent, np.float64), (self.actual, np.float64), (self.done, np.float64), (self.kind, np.int8), (self.ready, np.float64))
        return tuple(np.frombuffer(c, dtype=t).copy() for c, t in columns)


class LoadGenerator:
    """One live run of ``scenario`` against ``target`` (a base URL)."""

    def __init__(self, scenario: Scenario, target: str, options: LiveOptions | None = None):
        self.scenario = scenario
        self.target = target.rstrip("/")  # may carry userinfo: never shown
        self.where = parse_target(self.target)
        self.display_target = self.where.display  # what results and notes show
        # Without userinfo: its credentials go in an Authorization header (aiohttp refuses both).
        self._base = f"{self.where.scheme}://{self.where.host_header}{self.where.base_path}"
        self.options = options or LiveOptions()
        self.columns = _Columns()
        self.arrivals = 0
        self.dropped = 0
        self.late = 0
        self.late_pool = 0  # late requests whose lag was mostly waiting for a connection
        self.lag_sum = 0.0
        self.max_lag = 0.0
        self.loop_lag = array("d")  # the probe timer's lateness, seconds
        self.cpu_s = 0.0  # the generator thread's CPU time while sending
        self.sending_s = 0.0  # wall time of the sending phase
        self.resent = 0  # requests sent again after a reused connection closed under them
        self.cut_short = False
        self.interrupted_by: str | None = None  # the signal that cut the run short
        self.notes: list[str] = []
        self.fault_injection: dict = {"requested": len(scenario.faults), "injected": False}
        self._stopping = False
        self._in_flight: set[asyncio.Task] = set()
        self._sleeper: asyncio.Future | None = None
        self.finished: list[float] = []  # when each user (or the arrival process) stopped sending
        self._limit = self._request_limit()
        self._built = [self.build_request(key) for key in range(scenario.workload.users)]
        self._requests = [encode_request(request, self.where.host_header) for request in self._built]
        client = self.options.client
        if client not in ("auto", "fast", "aiohttp"):
            raise ConfigError("--client", f"expected auto, fast or aiohttp, got {client!r}")
        if client == "fast" and not self.target.startswith("http://"):
            raise ConfigError("--client", "the fast client speaks plain http:// only; use --client aiohttp for https")
        self._fast = client == "fast" or (client == "auto" and self.target.startswith("http://"))
        if uses_client_policies(scenario):
            self.notes.append("router.retry / router.hedge are simulation policies: this live run sends each request once")

    def build_request(self, key: int) -> Request:
        """User ``key``'s request: ``POST {base path}/submit`` with ``{"user": key}``
        (the one place a protocol codec would build another)."""
        headers = [("Content-Type", "application/json")]
        if self.where.authorization:
            headers.append(("Authorization", self.where.authorization))
        return Request("POST", self.where.base_path + SUBMIT_PATH, tuple(headers), json.dumps({"user": key}).encode())

    def _request_limit(self) -> int:
        w = self.scenario.workload
        limits = [self.options.hard_cap]
        if self.options.max_requests:
            limits.append(self.options.max_requests)
        if w.model == "open" and w.max_requests:
            limits.append(w.max_requests)
        return min(limits)

    # -- the clock

    def now(self) -> float:
        return self._loop.time() - self._t0

    # -- the run

    async def run(self):
        from .result import build_live_result

        self._loop = asyncio.get_running_loop()
        w = self.scenario.workload
        connections = w.users if w.model != "open" else (self.options.connections or DEFAULT_OPEN_CONNECTIONS)
        timeout = aiohttp.ClientTimeout(total=self.options.timeout_for(self.scenario))
        connector = aiohttp.TCPConnector(limit=connections, force_close=False)
        headers = {"Content-Type": "application/json"}
        wall_start = time.time()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers, skip_auto_headers=("User-Agent",)) as session:
            self._session = session
            self._url = self._base + SUBMIT_PATH
            self._pool = Http1Pool(self.target, self.options.timeout_for(self.scenario)) if self._fast else None
            self._exchange = self._exchange_fast if self._fast else self._exchange_aiohttp
            await self._inject_faults(session)
            self._t0 = self._loop.time()  # after the injection: waiting for it must not make arrivals late
            self._install_signal_handlers()
            ticker = asyncio.create_task(self._show_progress()) if self.options.progress else None
            probe = asyncio.create_task(self._probe_loop_lag())
            cpu_before = time.thread_time()  # this thread's: a service in another thread is not the generator
            try:
                if w.model == "open":
                    await self._open(connections)
                else:
                    await self._closed()
            finally:
                self.cpu_s = time.thread_time() - cpu_before
                self.sending_s = self.now()
                probe.cancel()
                if ticker is not None:
                    ticker.cancel()
                self._remove_signal_handlers()
                if self._pool is not None:
                    self.resent = self._pool.resent
                    self._pool.close()
            elapsed = self.now()
            target_metrics = await self._target_metrics(session)
        return build_live_result(self, elapsed, target_metrics, wall_start)

    async def _probe_loop_lag(self) -> None:
        """How late a ``LOOP_PROBE_S`` timer fires: the event loop's own lag (CPU, blocking work)."""
        loop, lags = self._loop, self.loop_lag
        while True:
            expected = loop.time() + LOOP_PROBE_S
            await asyncio.sleep(LOOP_PROBE_S)
            lags.append(max(0.0, loop.time() - expected))

    async def _show_progress(self) -> None:
        """Advance a progress bar with the run's elapsed time, four times a second."""
        from ..report.progress import progress_bar

        with progress_bar(self.scenario.duration, f"live {self.scenario.name}: seconds") as advance:
            shown = 0.0
            while True:
                await asyncio.sleep(0.25)
                now = min(self.now(), self.scenario.duration)
                advance(now - shown)
                shown = now

    # -- closed and sequential users

    async def _closed(self) -> None:
        w = self.scenario.workload
        users = [
            asyncio.ensure_future(self._user(key, VariateStream(w.think_time.sample, streams.stream(self.options.seed, 0, streams.THINK, key))))
            for key in range(w.users)
        ]
        self._in_flight.update(users)
        await asyncio.gather(*users, return_exceptions=True)

    async def _user(self, key: int, think: VariateStream) -> None:
        requests = self.scenario.workload.requests_per_user
        duration = self.scenario.duration
        sent = 0
        try:
            while not self._stopping and (requests == 0 or sent < requests):
                now = self.now()
                if now >= duration or self.arrivals >= self._limit:
                    return
                sent += 1
                self.arrivals += 1
                await self._request(key, None, None)  # sent when ready: no schedule to be late for
                if sent == requests:
                    return
                pause = think.next()
                if pause > 0 and not self._stopping:
                    await asyncio.sleep(pause)
        finally:
            self.finished.append(self.now())

    # -- open arrivals

    async def _open(self, connections: int) -> None:
        w = self.scenario.workload
        seed = self.options.seed
        gaps = VariateStream(Exponential(1.0).sample, streams.stream(seed, 0, streams.ARRIVALS))
        users = w.users
        keys = VariateStream(lambda g, n: g.integers(0, users, n), streams.stream(seed, 0, streams.USER_KEYS))
        slots = asyncio.Semaphore(connections)
        pending_limit = connections + self.options.max_backlog
        in_flight = self._in_flight
        schedule = open_schedule(self.scenario)
        for t in arrival_times(schedule, w.arrival == "poisson", gaps):
            if self._stopping or self.arrivals >= self._limit:
                break
            delay = t - self.now()
            if delay > 0:
                self._sleeper = asyncio.ensure_future(asyncio.sleep(delay))
                try:
                    await self._sleeper
                except asyncio.CancelledError:
                    if not self._stopping:
                        raise
                    break  # stop() woke us: end the schedule
                finally:
                    self._sleeper = None
            self.arrivals += 1
            key = keys.next()
            if len(in_flight) >= pending_limit:
                self.dropped += 1
                now = self.now()
                self.columns.add(t, now, now, now, DROPPED)  # answered at once by the generator: not sent
                continue
            task = asyncio.ensure_future(self._slotted_request(slots, key, t))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        ran_to_the_end = not self._stopping and self.arrivals < self._limit
        self.finished.append(max(self.now(), schedule[-1][0]) if ran_to_the_end else self.now())
        if in_flight:
            await asyncio.gather(*list(in_flight), return_exceptions=True)

    async def _slotted_request(self, slots: asyncio.Semaphore, key: int, intended: float) -> None:
        ready = self.now()  # up to here: the generator's own scheduling; from here: waiting for a connection
        try:
            await slots.acquire()
        except asyncio.CancelledError:
            # Cut short while waiting for a connection: never sent, still counted.
            now = self.now()
            self.columns.add(intended, ready, now, now, INTERRUPTED)
            raise
        try:
            await self._request(key, intended, ready)
        finally:
            slots.release()

    # -- one request

    async def _request(self, key: int, intended: float | None, ready: float | None) -> None:
        actual = self.now()
        if intended is None:
            intended = ready = actual
        lag = actual - intended
        if lag > 0:
            self.lag_sum += lag
            if lag > self.max_lag:
                self.max_lag = lag
            if lag > self.options.late_threshold:
                self.late += 1
                if actual - ready > ready - intended:
                    self.late_pool += 1
        try:
            kind, done = await self._exchange(key)
        except asyncio.CancelledError:
            now = self.now()
            self.columns.add(intended, ready, actual, now, INTERRUPTED)
            raise
        except asyncio.TimeoutError:
            kind, done = CLIENT_TIMEOUT, self.now()
        except (aiohttp.ClientConnectorError, ConnectFailed):
            kind, done = CONNECT_ERROR, self.now()
        except (aiohttp.ClientError, TargetError, OSError, ValueError):
            kind, done = PROTOCOL_ERROR, self.now()
        self.columns.add(intended, ready, actual, done, kind)

    async def _exchange_fast(self, key: int) -> tuple[int, float]:
        """(kind, when the answer's last byte came) of user ``key``'s request."""
        answer = await self._pool.request(self._requests[key])
        classifier = self.options.classifier
        status = answer.status
        kind = classifier.kind(status, answer.headers) if classifier.needs_headers(status) else classifier.kind(status)
        return kind, answer.done_at - self._t0

    async def _exchange_aiohttp(self, key: int) -> tuple[int, float]:
        request = self._built[key]
        async with self._session.post(self._url, data=request.body, headers=request.headers) as response:
            await response.read()
            return self.options.classifier.kind(response.status, response.headers), self.now()

    # -- interruption

    def stop(self) -> None:
        """Stop sending and end the requests in flight (they count as interrupted)."""
        if self._stopping:
            return
        self._stopping = True
        self.cut_short = True
        if self._sleeper is not None:
            self._sleeper.cancel()
        for task in list(self._in_flight):
            task.cancel()

    def _on_signal(self, sig: int) -> None:
        interrupts.note(sig)
        self.interrupted_by = signal.Signals(sig).name
        self.stop()

    def _install_signal_handlers(self) -> None:
        self._signals: dict[int, object] = {}
        if not self.options.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for sig in interrupts.SIGNALS:
            previous = signal.getsignal(sig)
            try:
                self._loop.add_signal_handler(sig, self._on_signal, sig)
                self._signals[sig] = previous
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix loops
                pass

    def _remove_signal_handlers(self) -> None:
        """Back to the handlers from before the run (asyncio would leave SIGTERM at its default: death)."""
        for sig, previous in self._signals.items():
            self._loop.remove_signal_handler(sig)
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)

    # -- the target's admin and metrics endpoints

    def _basic_headers(self) -> dict:
        return {"Authorization": self.where.authorization} if self.where.authorization else {}

    def _admin_headers(self) -> dict:
        token = self.options.admin_token
        return {"Authorization": f"Bearer {token}"} if token else self._basic_headers()

    async def _inject_faults(self, session: aiohttp.ClientSession) -> None:
        faults = self.scenario.faults
        if not faults or not self.options.inject_faults:
            if faults:
                self.notes.append("fault injection disabled: the scenario's [[faults]] were not sent")
            return
        if not self.options.admin_token and not self.options.target_is_serve and os.environ.get(TOKEN_ENV):
            self.notes.append(f"${TOKEN_ENV} was not sent to {self.display_target}: pass --admin-token, or --target-is-serve for simrouter's own serve")
        body = {"faults": [{"start": f.start, "end": f.end, "error_rate": f.error_rate, "latency_factor": f.latency_factor} for f in faults]}
        wait = aiohttp.ClientTimeout(total=min(5.0, self.options.timeout_for(self.scenario)))
        try:
            async with session.post(self._base + "/admin/faults", json=body, headers=self._admin_headers(), timeout=wait) as response:
                status = response.status
                text = await response.text()
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            status, text = None, str(exc) or type(exc).__name__
        self.fault_injection.update(status=status, injected=status == 200)
        if status == 200:
            return
        reason = {404: "the target has no /admin/faults endpoint", 401: "the target wants an admin token (--admin-token)", 403: "the target refused the admin token (--admin-token)"}.get(
            status, f"the target answered {status}: {text[:200]}"
        )
        self.fault_injection["message"] = reason
        self.notes.append(f"faults not injected: {reason}")

    async def _target_metrics(self, session: aiohttp.ClientSession) -> dict | None:
        """The target's /metrics JSON with ``clock_offset_s`` (generator minus target clock)."""
        before = self.now()
        try:
            wait = aiohttp.ClientTimeout(total=min(5.0, self.options.timeout_for(self.scenario)))
            async with session.get(self._base + "/metrics", timeout=wait, headers=self._basic_headers()) as response:
                if response.status != 200:
                    return None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
            return None
        after = self.now()
        uptime = (data.get("service") or {}).get("uptime_s") if isinstance(data, dict) else None
        if not isinstance(uptime, (int, float)) or not isinstance(data.get("breaker"), dict):
            return None
        data["clock_offset_s"] = (before + after) / 2 - uptime
        return data


def uses_client_policies(scenario: Scenario) -> bool:
    """True when the scenario retries or hedges: simulation policies the live engine does not apply."""
    router = scenario.router
    retry, hedge = getattr(router, "retry", None), getattr(router, "hedge", None)
    return getattr(retry, "max_attempts", 1) > 1 or getattr(hedge, "max_hedges", 0) > 0


def run_live(scenario: Scenario, target: str, options: LiveOptions | None = None):
    """Run ``scenario``'s workload against ``target`` in wall time -> ``LiveResult``."""
    return asyncio.run(LoadGenerator(scenario, target, options).run())
