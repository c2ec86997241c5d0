"""The load generator: a scenario's workload in wall-clock time against an HTTP target.

``run_live(scenario, target)`` sends each arrival's request as the scenario's
``[request]`` section says (``simrouter.protocols.encode.RequestEncoder``, its
``${VAR}`` references resolved when the generator is built; the default
``simrouter`` protocol is ``POST {target}/submit`` with the body ``{"user": key}``)
and returns a ``LiveResult`` (``simrouter.live.result``). For the openai protocols
the answer is decoded (``_decode``: ``StreamAccumulator`` over the body pieces and
their arrival times, ``AnswerClassifier`` on status, headers and JSON error body)
into an ``AnswerRecord`` per request (TTFT, ITL, tokens, Retry-After,
``x-ratelimit-*``; ``simrouter.live.answer_record``); other protocols are
classified by status (and headers) alone, as before. The
target's path is kept (``http://h:8000/api`` posts to ``/api/submit``); userinfo in
the URL (``http://u:p@h``) is sent as HTTP Basic authorization, never in ``Host``,
and is left out of every result and message (``LiveResult.target`` is redacted).
A request is data (``http1.Request``: method, path, headers, body, built by
``LoadGenerator.build_request(key, seq)``), encoded once per user key unless the
dataset has several lines or the body template uses ``{seq}``; the answer
(status, headers, body: ``http1.Answer``) goes to the ``AnswerClassifier``
(``--map`` rules before the protocol's defaults).
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
  The schedule is kept by a thread that waits for each arrival's absolute
  deadline on ``time.monotonic()`` (to the microsecond; the event loop's timers
  wake up to 1 ms late, epoll's resolution) and hands it to the loop
  (``call_soon_threadsafe``). ``processes`` > 1 spreads the arrivals over that
  many processes, each sending every N-th one (``simrouter.live.fanout``).

Precision (docs/live-precision.md): during a run the heap is frozen
(``gc.freeze``: a full collection does not walk the modules' objects) and the
GIL switch interval is 0.5 ms; the clock is ``time.monotonic()`` for every loop
(``loop`` = ``"asyncio"`` or ``"uvloop"``, whose ``loop.time()`` has whole ms).

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
(the service keeps them on its own clock; behind ``[[deployments]]`` each
deployment's own ``faults`` go in the same post with ``"deployment": NAME``,
``fault_windows``), with ``LiveOptions.admin_token`` only
when one is given (the CLI gives ``$SIMROUTER_ADMIN_TOKEN`` only to a target named
as simrouter's own, ``--target-is-serve``). The breaker's transitions are read
back from ``{target}/metrics`` at the end and put on the generator's clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import os
import signal
import sys
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
from ..outcomes import SUCCESS
from ..protocols import answers as answer_codec  # the module: it imports live.classify, which may be importing this
from ..protocols.encode import RequestEncoder
from ..protocols.env import Secrets
from ..protocols.stream import StreamAccumulator, summarize_completion
from . import observed_breaker
from .answer_record import AnswerColumns, AnswerRecord
from .classify import CLIENT_TIMEOUT, CONNECT_ERROR, DROPPED, INTERRUPTED, PROTOCOL_ERROR, Classifier
from .http1 import ConnectFailed, Http1Pool, Request, TargetError, encode_request, parse_target

SUBMIT_PATH = "/submit"  # the simrouter protocol's path (simrouter.config.sections.REQUEST_PATHS)
DEFAULT_OPEN_CONNECTIONS = 256
LOOP_PROBE_S = 0.05  # the event-loop lag probe's period
# During a run: how long a thread waiting for the GIL (the arrival thread at a deadline,
# the loop while the dashboard draws) may wait before the holder must let go (default 5 ms).
SWITCH_INTERVAL_S = 0.0005
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
    fault_proxy: str | None = None  # simrouter proxy's base URL: [[faults]] go there (simrouter.live.observed_breaker)
    seed: int = 1
    classifier: object = None  # a live Classifier or a protocols AnswerClassifier; None: AnswerClassifier(rules) for the protocol
    rules: tuple[str, ...] = ()  # --map rules (STATUS[:HEADER=VALUE | :error.FIELD=VALUE]=KIND), before the defaults
    default_rules: bool = True  # False: --no-default-map
    handle_signals: bool = True
    client: str = "auto"  # "fast" (simrouter.live.http1), "aiohttp", or auto: fast for http://
    progress: bool = False  # a transient bar of elapsed vs scenario duration on standard error
    loop: str = "asyncio"  # the event loop: "asyncio" (the standard one) or "uvloop" (optional dependency)
    processes: int = 1  # open model: generator processes, each sending every processes-th arrival
    shard: tuple[int, int] = (0, 1)  # (index, count): this process sends arrivals j with j % count == index
    start_at: object = None  # the run's start on time.monotonic(), shared by the processes of one run:
    # a float, or a callable returning it, called once everything is ready to send (None: now)
    dashboard_interval: float | None = None  # seconds: redraw the generator's own dashboard (report.live_dashboard)
    dashboard_console: object = None  # the rich Console it draws on (None: standard output)

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
        self.fault_injection: dict = {"requested": len(fault_windows(scenario)), "injected": False}
        self._stopping = False
        self._in_flight: set[asyncio.Task] = set()
        self._wake = threading.Event()  # set by stop(): the arrival thread stops waiting
        self.finished: list[float] = []  # when each user (or the arrival process) stopped sending
        self._limit = self._request_limit()
        self.encoder = RequestEncoder(scenario.request)  # ${VAR} resolved here: an unset one is a ConfigError
        self.secrets: Secrets = self.encoder.secrets
        self.protocol = self.encoder.protocol
        self.stream = self.encoder.stream
        self._decodes = self.protocol in ("openai-chat", "openai-completions")
        self.classifier = self._classifier()
        self.answers = AnswerColumns()
        self._seq = 0  # request number, for the encoder (dataset line, {seq})
        per_user = not self.encoder.varies_with_seq
        self._built = [self.build_request(key) for key in range(scenario.workload.users)] if per_user else None
        self._requests = [encode_request(request, self.where.host_header) for request in self._built] if per_user else None
        client = self.options.client
        if client not in ("auto", "fast", "aiohttp"):
            raise ConfigError("--client", f"expected auto, fast or aiohttp, got {client!r}")
        if client == "fast" and not self.target.startswith("http://"):
            raise ConfigError("--client", "the fast client speaks plain http:// only; use --client aiohttp for https")
        self._fast = client == "fast" or (client == "auto" and self.target.startswith("http://"))
        if uses_client_policies(scenario):
            self.notes.append("router.retry / router.hedge are simulation policies: this live run sends each request once")

    def build_request(self, key: int, seq: int = 0) -> Request:
        """Request ``seq`` of user ``key``, built by the ``[request]`` protocol's encoder
        (``simrouter.protocols.encode``; ``simrouter``: ``POST {base path}/submit`` with
        ``{"user": key}``), under the target's base path; the URL's userinfo becomes
        ``Authorization`` unless the scenario's headers set one."""
        encoded = self.encoder.encode(key, seq)
        headers = encoded.headers
        if self.where.authorization and not any(name.lower() == "authorization" for name, _ in headers):
            headers = headers + (("Authorization", self.where.authorization),)
        return Request(encoded.method, self.where.base_path + encoded.path, headers, encoded.body)

    def _classifier(self):
        """The options' classifier, or the ``--map`` rules before the protocol's defaults
        (a ``simrouter.protocols.answers.AnswerClassifier``)."""
        AnswerClassifier = answer_codec.AnswerClassifier
        given = self.options.classifier
        if isinstance(given, AnswerClassifier):
            return given
        if isinstance(given, Classifier):
            return AnswerClassifier.from_classifier(given)
        return AnswerClassifier(self.options.rules, defaults=self.options.default_rules, openai_rules=self.protocol != "simrouter")

    def _next_request(self, key: int) -> tuple[Request, bytes | None]:
        """(request, its bytes for the lean client) of user ``key``'s next request."""
        if self._built is not None:
            return self._built[key], self._requests[key]
        seq, self._seq = self._seq, self._seq + 1
        request = self.build_request(key, seq)
        return request, encode_request(request, self.where.host_header) if self._fast else None

    def redact(self, text: str) -> str:
        """``text`` with every ``${VAR}`` value of the ``[request]`` section put back as ``${VAR}``."""
        return self.secrets.redact(text) if self.secrets else text

    def _request_limit(self) -> int:
        w = self.scenario.workload
        limits = [self.options.hard_cap]
        if self.options.max_requests:
            limits.append(self.options.max_requests)
        if w.model == "open" and w.max_requests:
            limits.append(w.max_requests)
        return min(limits)

    # -- the clock

    def _start_time(self) -> float:
        """``time.monotonic()`` of the run's start: now, or the one given to every process of a run."""
        start = self.options.start_at
        if callable(start):
            start = start()  # e.g. --processes: say ready, wait for the shared start
        return time.monotonic() if start is None else start

    def now(self) -> float:
        """Seconds since the run started, on ``time.monotonic()`` (the standard loop's
        ``loop.time()``; uvloop's has whole milliseconds only)."""
        return time.monotonic() - self._t0

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
            self._pool = Http1Pool(self.target, self.options.timeout_for(self.scenario)) if self._fast else None
            self._exchange = self._exchange_fast if self._fast else self._exchange_aiohttp
            board = self._dashboard() if self.options.dashboard_interval else None  # its imports: not on the run's clock
            frozen = _freeze_heap()  # a full collection now, not during the run
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
            await self._inject_faults(session)  # last before t0: the windows are relative to the post
            self._t0 = self._start_time()  # after the injection: waiting for it must not make arrivals late
            self._install_signal_handlers()
            ticker = asyncio.create_task(self._show_progress()) if self.options.progress else None
            if board is not None:
                board = asyncio.create_task(self._show_dashboard(board))
            probe = asyncio.create_task(self._probe_loop_lag())
            cpu_before = time.thread_time()  # this thread's: a service in another thread is not the generator
            try:
                if w.model == "open":
                    await self._open(connections)
                else:
                    await self._closed()
            finally:
                if frozen:
                    gc.unfreeze()
                sys.setswitchinterval(switch)
                self.cpu_s = time.thread_time() - cpu_before
                self.sending_s = self.now()
                probe.cancel()
                if ticker is not None:
                    ticker.cancel()
                if board is not None:
                    board.cancel()
                self._remove_signal_handlers()
                if self._pool is not None:
                    self.resent = self._pool.resent
                    self._pool.close()
            elapsed = self.now()
            target_metrics = await self._target_metrics(session)
            proxy = await observed_breaker.read_proxy(session, self.options.fault_proxy, self.now) if self.options.fault_proxy else None
        result = build_live_result(self, elapsed, target_metrics, wall_start)
        if self.options.fault_proxy:
            observed_breaker.attach(result, proxy)
        return result

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

    def _dashboard(self):
        from ..report.live_dashboard import GeneratorBoard

        return GeneratorBoard(self, self.options.dashboard_interval, self.options.dashboard_console)

    async def _show_dashboard(self, board) -> None:
        """Every ``dashboard_interval`` seconds, the dashboard of the last interval's requests:
        read on the loop (O(requests in the window)), drawn in a worker thread."""
        interval = self.options.dashboard_interval
        try:
            while True:
                await asyncio.sleep(interval - self.now() % interval)
                await asyncio.to_thread(board.draw, board.figures())
        finally:
            board.close()

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
        """Send the open schedule: a thread waits for each arrival's intended time (absolute
        deadlines on ``time.monotonic()``, to the microsecond: the event loop's own timers
        wake up to 1 ms late, epoll's resolution) and hands the arrival to the loop."""
        w = self.scenario.workload
        slots = asyncio.Semaphore(connections)
        pending_limit = connections + self.options.max_backlog
        in_flight = self._in_flight
        schedule = open_schedule(self.scenario)
        loop = self._loop
        ended = loop.create_future()
        outcome: dict = {}

        def arrive(t: float, key: int) -> None:  # on the loop
            if self._stopping:
                return
            self.arrivals += 1
            now = self.now()  # up to here: the generator's own scheduling; from here: waiting for a connection
            if len(in_flight) >= pending_limit:
                self.dropped += 1
                self.columns.add(t, now, now, now, DROPPED)  # answered at once by the generator: not sent
                return
            task = loop.create_task(self._slotted_request(slots, key, t, now))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)

        def finish() -> None:
            if not ended.done():
                ended.set_result(None)

        thread = threading.Thread(target=self._arrival_thread, args=(schedule, arrive, finish, outcome), name="simrouter-arrivals", daemon=True)
        thread.start()
        try:
            await ended
        finally:
            self._wake.set()  # a cancelled run: the thread stops too
            thread.join()
        if "error" in outcome:
            raise outcome["error"]
        ran_to_the_end = not self._stopping and outcome.get("exhausted", False)
        self.finished.append(max(self.now(), schedule[-1][0]) if ran_to_the_end else self.now())
        if in_flight:
            await asyncio.gather(*list(in_flight), return_exceptions=True)

    def _arrival_thread(self, schedule, arrive, finish, outcome: dict) -> None:
        """Arrival ``j`` of the schedule at its intended time, ``arrive(t, key)`` on the loop,
        for ``j`` of this process's shard (``j % count == index``) and ``j < limit``; then
        ``finish()``. Every process draws the same times and keys: a shard is a subset."""
        w = self.scenario.workload
        seed = self.options.seed
        gaps = VariateStream(Exponential(1.0).sample, streams.stream(seed, 0, streams.ARRIVALS))
        users = w.users
        keys = VariateStream(lambda g, n: g.integers(0, users, n), streams.stream(seed, 0, streams.USER_KEYS))
        index, count = self.options.shard
        limit, t0, wake, call = self._limit, self._t0, self._wake, self._loop.call_soon_threadsafe
        monotonic = time.monotonic
        exhausted = True
        try:
            for j, t in enumerate(arrival_times(schedule, w.arrival == "poisson", gaps)):
                if j >= limit:
                    exhausted = False
                    break
                key = int(keys.next())
                if j % count != index:
                    continue
                delay = t0 + t - monotonic()
                if (delay > 0 and wake.wait(delay)) or wake.is_set():
                    exhausted = False
                    break  # stop() woke us: end the schedule
                call(arrive, t, key)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, raised there
            outcome["error"] = exc
        outcome["exhausted"] = exhausted and "error" not in outcome
        try:
            call(finish)
        except RuntimeError:  # the loop is gone (the run was torn down)
            pass

    async def _slotted_request(self, slots: asyncio.Semaphore, key: int, intended: float, ready: float) -> None:
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
        info = None
        try:
            kind, done, info = await self._exchange(key)
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
        if info is not None:
            self.answers.add(len(self.columns), info)
        self.columns.add(intended, ready, actual, done, kind)

    async def _exchange_fast(self, key: int) -> tuple[int, float, AnswerRecord | None]:
        """(kind, when the answer's last byte came, what the answer said: None for the
        simrouter protocol) of user ``key``'s next request."""
        request, data = self._next_request(key)
        stream = self.stream
        answer = await self._pool.request(data, head=request.method == "HEAD", stream=stream)
        t0 = self._t0
        done = answer.done_at - t0
        status = answer.status
        if not self._decodes:
            kind = self.classifier.fast_kind(status)
            if kind is None:
                kind = self.classifier.kind(status, answer.headers, answer.body)
            return kind, done, None
        pieces = None
        if stream and answer.chunks is not None and 200 <= status < 300 and "event-stream" in answer.headers.get("content-type", ""):
            pieces = [(at - t0, piece) for at, piece in answer.chunks]
        return self._decode(status, answer.headers, answer.body, pieces, done)

    async def _exchange_aiohttp(self, key: int) -> tuple[int, float, AnswerRecord | None]:
        request, _ = self._next_request(key)
        url = f"{self.where.scheme}://{self.where.host_header}{request.path}"
        async with self._session.request(request.method, url, data=request.body, headers=list(request.headers)) as response:
            pieces = None
            if self._decodes and self.stream and 200 <= response.status < 300 and response.content_type == "text/event-stream":
                pieces = []
                async for piece in response.content.iter_any():
                    pieces.append((self.now(), piece))
                body = b"".join(piece for _, piece in pieces)
            else:
                body = await response.read()
            done = self.now()
            if not self._decodes:
                return self.classifier.kind(response.status, response.headers, body), done, None
            return self._decode(response.status, response.headers, body, pieces, done)

    def _decode(self, status: int, headers, body: bytes, pieces, done: float) -> tuple[int, float, AnswerRecord]:
        """An openai protocol's answer -> (kind, done, record). ``pieces``: the body of a
        2xx ``text/event-stream`` answer as (arrival on the generator's clock, bytes)."""
        classifier = self.classifier
        record = AnswerRecord()
        if pieces is not None:
            accumulator = StreamAccumulator(self.protocol)
            for at, piece in pieces:
                accumulator.feed(piece, at)
            summary = accumulator.finish(done)
            if classifier.kind(status, headers) == SUCCESS:
                answer = classifier.classify_stream(status, headers, summary)
            else:  # a --map rule gave this 2xx another kind
                answer, summary = classifier.classify(status, headers, body), None
        else:
            answer = classifier.classify(status, headers, body)
            summary = summarize_completion(body, self.protocol, done) if answer.kind == SUCCESS else None
            if summary is not None and summary.error is not None:
                answer = classifier.classify_error_event(summary.error)
        if summary is not None:
            if summary.first_token_at is not None:
                record.first_token = summary.first_token_at
            record.itl = summary.itl
            record.output = summary.output_tokens
            record.usage = summary.tokens_source == "usage"
            record.prompt = summary.prompt_tokens if summary.prompt_tokens is not None else -1
            tpot = summary.tpot(done)
            if tpot is not None:
                record.tpot = tpot
        if answer.retry_after_s is not None:
            record.retry_after = answer.retry_after_s
        record.ratelimit = answer.ratelimit or None
        record.error_code = answer.error_code or answer.error_type
        return answer.kind, done, record

    # -- interruption

    def stop(self) -> None:
        """Stop sending and end the requests in flight (they count as interrupted)."""
        if self._stopping:
            return
        self._stopping = True
        self.cut_short = True
        self._wake.set()
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
        faults = fault_windows(self.scenario)
        if not faults or not self.options.inject_faults:
            if faults:
                self.notes.append("fault injection disabled: the scenario's [[faults]] were not sent")
            return
        if not self.options.admin_token and not self.options.target_is_serve and os.environ.get(TOKEN_ENV):
            self.notes.append(f"${TOKEN_ENV} was not sent to {self.display_target}: pass --admin-token, or --target-is-serve for simrouter's own serve")
        body = {"faults": faults}
        wait = aiohttp.ClientTimeout(total=min(5.0, self.options.timeout_for(self.scenario)))
        try:
            async with session.post((self.options.fault_proxy or self._base) + "/admin/faults", json=body, headers=self._admin_headers(), timeout=wait) as response:
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


def fault_windows(scenario: Scenario) -> list[dict]:
    """The windows ``/admin/faults`` gets for ``scenario``: the top-level ``[[faults]]``
    (every deployment), then each deployment's own with ``"deployment": NAME``; one
    post, so all are relative to the same moment."""
    windows = [dataclasses.asdict(f) for f in scenario.faults]
    for deployment in scenario.deployments:
        windows += [{**dataclasses.asdict(f), "deployment": deployment.name} for f in deployment.faults]
    return windows


def uses_client_policies(scenario: Scenario) -> bool:
    """True when the scenario retries or hedges: simulation policies the live engine does not apply."""
    router = scenario.router
    retry, hedge = getattr(router, "retry", None), getattr(router, "hedge", None)
    return getattr(retry, "max_attempts", 1) > 1 or getattr(hedge, "max_hedges", 0) > 0


def _freeze_heap() -> bool:
    """Move every tracked object to the collector's permanent generation (``gc.freeze``,
    O(1)) for the run: a full collection then scans only what the run allocates, not the
    modules' objects (numpy, pandas, aiohttp: a pause of milliseconds each time, in the
    latency tail). No collection first (it would delay the start by 0.1 s or more);
    garbage frozen with the rest is freed after ``gc.unfreeze()``. False when the heap
    was already frozen (a run within a run)."""
    if gc.get_freeze_count():
        return False
    gc.freeze()
    return True


LOOPS = ("asyncio", "uvloop")


def loop_factory(name: str):
    """The event-loop factory for ``--loop`` (None: the standard asyncio loop)."""
    if name not in LOOPS:
        raise ConfigError("--loop", f"expected one of {', '.join(LOOPS)}, got {name!r}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        raise ConfigError("--loop", "uvloop is not installed: pip install 'simrouter[fast]' (or pip install uvloop), or use --loop asyncio") from None
    return uvloop.new_event_loop


def run_live(scenario: Scenario, target: str, options: LiveOptions | None = None):
    """Run ``scenario``'s workload against ``target`` in wall time -> ``LiveResult``
    (``options.processes`` > 1: spread over that many processes, ``simrouter.live.fanout``)."""
    options = options or LiveOptions()
    if options.processes != 1:
        from .fanout import run_processes

        return run_processes(scenario, target, options, LoadGenerator, loop_factory, DEFAULT_OPEN_CONNECTIONS)
    with asyncio.Runner(loop_factory=loop_factory(options.loop)) as runner:
        return runner.run(LoadGenerator(scenario, target, options).run())
