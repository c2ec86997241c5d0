"""The reference router speaking the OpenAI API (``simrouter serve --protocol openai``).

``POST /v1/chat/completions`` and ``POST /v1/completions`` (streamed as SSE or
whole) and ``GET /v1/models`` go through the SAME policy objects as ``POST
/submit`` (``RouterService.handle``: limiter -> validation -> breaker -> stand-in
backend under the router timeout); ``/metrics``, ``/metrics/prometheus``,
``/health`` and ``/admin/*`` are ``RouterService``'s own handlers, and so is the
header timeout (``start_service(openai_service)`` applies it).

Timing, from the scenario's ``[backend]`` (docs/protocols.md):

* the backend's service time is the time to the first token: ``backend.ttft``
  when given (it replaces ``backend.latency``), else ``backend.latency``; it
  holds a ``capacity`` slot and queues as ``/submit`` does, and the router
  timeout bounds it. The first content chunk goes out when the router answers
  success, so TTFT = limiter delay + queueing + that service time.
* each further token follows after a ``backend.tpot`` draw (unset: 0 s); the
  answer has ``backend.output_tokens`` tokens (a draw, rounded, at least 1;
  unset: 16), at most the request's ``max_tokens`` (``finish_reason`` "length"
  when cut there, else "stop"). Decoding holds no capacity slot (a later
  batching model replaces this); a non-streamed answer is sent whole after the
  same total time. ``usage.prompt_tokens`` is the prompt's length / 4, rounded up.
* ``backend.failures.stream_cut``: that fraction of streams stops after a
  uniform number of tokens (1 .. n-1) with the HTTP body ended cleanly but no
  finish reason and no ``[DONE]`` (an ``incomplete_stream``);
  ``backend.failures.stream_error``: that fraction ends there with an SSE
  ``event: error`` (``server_error``). Neither is reported to the breaker
  (it recorded the success at the first token). ``/metrics`` latency is the time
  to the first token.

With ``backend.model = "llm"`` (docs/llm.md, "The batching model in real
time") the stand-in is replaced by the simulation's continuous-batching
scheduler run in real time (``simrouter.live.llm_engine``), behind the same
``RouterService.handle`` (limiter, validation, breaker, router timeout, faults):

* each arrival (a parsed request) takes the tokens of the simulation's logical
  request of the same rank: ``[workload.tokens]`` (its defaults when absent, or
  its trace) drawn from replication 0's streams, ``request.max_tokens``
  applied (``llm_engine.arrival_tokens``). ``usage.prompt_tokens`` is that
  prompt length, not the text's: the sent prompt stands in for a prompt of
  that many tokens, so the live run and the simulation describe the same
  requests. ``backend.output_tokens``, ``ttft`` and ``tpot`` are not used
  (the simulation's LLM model does not use them either). The body's
  ``max_tokens`` caps the output again (``finish_reason`` "length").
* the router's call is the whole generation, as simulated: it ends at the last
  token, so ``latency_ms``, the breaker's call duration and the router timeout
  are end to end; a concurrency limiter holds its place until then.
* streamed: the 200 and the first content chunk go out at the end of the step
  that completes the prompt's prefill, then one chunk per token as the steps
  emit them, then (with ``include_usage``) the usage chunk and ``[DONE]``. An
  answer other than success before the first token is an error answer as
  below; a router timeout after it ends the stream with an SSE ``event:
  error`` (code ``timeout``). Not streamed: the whole answer at the last token.
* a client that goes away (a failed write, or a closed connection noticed
  within ``DISCONNECT_POLL_S``) cancels its request: it leaves the queue or the
  batch. ``stream_cut`` / ``stream_error`` end the client's stream early; the
  sequence runs to its end (the router records its outcome then).
* ``/metrics`` adds ``service.llm``: running and waiting sequences, steps,
  mean step time, the steps' lag behind their deadlines, preemptions.
* ``limiter.tokens_per_minute`` is applied as simulated
  (``policies.limiters.tokens``, per key or global): a request costs its prompt
  tokens (the drawn ones above) + ``max_tokens`` (the body's, as OpenAI counts;
  absent: the scenario's ``request.max_tokens``, else the drawn output), checked
  before the request limiter; refused, it is a 429 ``rate_limited`` of type
  ``tokens`` (OpenAI's TPM error) with ``Retry-After`` the seconds until the
  budget holds its cost (rounded up, at least 1; ``retry-after-ms`` exact) and
  ``x-ratelimit-limit-tokens`` / ``x-ratelimit-remaining-tokens``; a request
  costing more than ``tokens_burst`` can never run: 429 "request too large",
  without ``Retry-After``.

Answers other than success are OpenAI-shaped ``{"error": {"message", "type",
"param", "code"}}``:

=================  ======  ===============================  =======================================
kind               status  type / code                      headers
=================  ======  ===============================  =======================================
rate_limited       429     requests / rate_limit_exceeded   Retry-After, retry-after-ms, x-ratelimit-*
validation_errors  400     invalid_request_error            (malformed body, or the injected fraction)
breaker_rejected   503     service_unavailable / breaker_open  X-Simrouter-Reason: breaker-open
queue_full         503     server_overloaded / queue_full   X-Simrouter-Reason: queue-full
failures           500     server_error / server_error
timeouts           504     timeout / timeout
=================  ======  ===============================  =======================================

Every answer carries ``X-Simrouter-Outcome``. ``Retry-After`` is the limiter's
nominal refill interval (1 / rate, or the window size), at least 1 s; the
precise value is in ``retry-after-ms``. The limiter is keyed as ``/submit`` keys
it (``service.user_key``): the body's ``user``, else ``X-User-Id``, else
``anonymous``; a key that is not a whole number is a 400. ``/v1/models`` lists the
scenario's ``request.model`` (then only it is accepted: others get 404
``model_not_found``) or, when unset, ``simrouter-standin`` (any model accepted).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import secrets
import time

from aiohttp import web

from ..config import Scenario
from ..distributions import Constant, VariateStream
from ..outcomes import BREAKER_REJECTED, FAILURE, KIND_NAMES, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION
from ..sim import streams
from .backend import uniform
from .llm_engine import CURRENT, LiveLLMBackend, TokenStream, arrival_tokens
from .service import ANONYMOUS, MAX_BODY, OUTCOME_HEADER, REASON_HEADER, REASONS, RouterService, user_key

# Random sources of this front end (beyond the simulation's ``streams`` ids).
TPOT_STREAM, TOKENS_STREAM, STREAM_FAULT_STREAM = 100, 101, 102
DEFAULT_OUTPUT_TOKENS = 16
STANDIN_MODEL = "simrouter-standin"
DISCONNECT_POLL_S = 0.25  # LLM model: how often a request waiting for its first token checks its client
WORDS = ("The", " router", " admits", " a", " request", ",", " the", " backend", " answers", ".")

ERRORS = {
    RATE_LIMITED: (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests; try again later."),
    VALIDATION: (400, "invalid_request_error", "invalid_request", "The request was rejected by validation."),
    BREAKER_REJECTED: (503, "service_unavailable", "breaker_open", "The backend is unavailable (circuit breaker open)."),
    QUEUE_FULL: (503, "server_overloaded", "queue_full", "The server is overloaded (queue full); try again later."),
    FAILURE: (500, "server_error", "server_error", "The server had an error while processing your request."),
    TIMEOUT: (504, "timeout", "timeout", "The backend did not answer within the router timeout."),
}


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _sse(payload: dict | str, event: str | None = None) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return (f"event: {event}\n" if event else "").encode() + b"data: " + data.encode() + b"\n\n"


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


@dataclasses.dataclass
class _Job:
    chat: bool
    model: str
    stream: bool
    include_usage: bool
    max_tokens: int | None
    prompt_tokens: int
    key: object


class OpenAIService:
    """``RouterService`` behind OpenAI-compatible endpoints (``app()`` for ``start_service``)."""

    def __init__(self, scenario: Scenario, seed: int = 1, admin_token: str | None = None, **router_options):
        """``router_options``: ``RouterService``'s own (``header_timeout``, ``max_limiter_keys``)."""
        backend = scenario.backend
        self.engine: LiveLLMBackend | None = None  # the batching engine (backend.model = "llm"), once started
        self._background: set[asyncio.Task] = set()
        if backend.is_llm:
            # Capacity and utilisation read sequence slots, as in the simulation's summary.
            routed = dataclasses.replace(scenario, backend=dataclasses.replace(backend, capacity=backend.max_num_seqs))
            self._arrivals = arrival_tokens(scenario, seed)
            router_options["backend_factory"] = self._llm_engine
            if scenario.limiter.tokens_per_minute is not None:  # the request in CURRENT pays its tokens
                router_options["token_cost"], router_options["token_refused"] = _current_cost, _note_token_refusal
        elif backend.ttft is not None:
            routed = dataclasses.replace(scenario, backend=dataclasses.replace(backend, latency=backend.ttft))
        else:
            routed = scenario
        self.router = RouterService(routed, seed=seed, admin_token=admin_token, **router_options)
        self.seed = seed
        self.scenario = scenario
        self.model = scenario.request.model
        tpot = backend.tpot or Constant(0.0)
        tokens = backend.output_tokens or Constant(float(DEFAULT_OUTPUT_TOKENS))
        self._tpot = VariateStream(tpot.sample, streams.stream(seed, 0, TPOT_STREAM)).next
        self._tokens = VariateStream(tokens.sample, streams.stream(seed, 0, TOKENS_STREAM)).next
        self._fault = VariateStream(uniform, streams.stream(seed, 0, STREAM_FAULT_STREAM)).next
        failures = backend.failures
        self._cut = failures.stream_cut or 0.0
        self._stream_error = failures.stream_error or 0.0
        self._retry_after = _nominal_retry_after(scenario.limiter)
        self._created = int(time.time())

    def _llm_engine(self, config, clock, loop) -> LiveLLMBackend:
        self.engine = LiveLLMBackend(config, self.seed, clock, loop)
        return self.engine

    @property
    def admin_token(self) -> str:
        return self.router.admin_token

    @property
    def header_timeout(self):
        """The router's header timeout (``start_service`` installs it on this app too)."""
        return self.router.header_timeout

    def app(self) -> web.Application:
        router = self.router
        app = web.Application(client_max_size=MAX_BODY, middlewares=[router.header_timeout.middleware])
        routes = [
            ("POST", "/v1/chat/completions", self.handle_chat),
            ("POST", "/v1/completions", self.handle_completions),
            ("GET", "/v1/models", self.handle_models),
            ("GET", "/metrics", self.handle_metrics),
            ("GET", "/metrics/prometheus", router.handle_prometheus),
            ("GET", "/health", router.handle_health),
            ("POST", "/admin/faults", router.handle_add_faults),
            ("DELETE", "/admin/faults", router.handle_clear_faults),
            ("POST", "/admin/reset", router.handle_reset),
        ]
        self._methods: dict[str, list[str]] = {}
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
            self._methods.setdefault(path, []).append(method)
        app.router.add_route("*", "/{tail:.*}", self.handle_unrouted)
        return app

    async def handle_unrouted(self, request: web.Request) -> web.Response:
        allowed = self._methods.get(request.path)
        if allowed:
            body = error_body(f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}", "invalid_request_error", "method_not_allowed")
            return web.json_response(body, status=405, headers={"Allow": ", ".join(allowed)})
        endpoints = ", ".join(f"{m} {p}" for p, methods in self._methods.items() for m in methods)
        return web.json_response(error_body(f"Unknown request URL: {request.method} {request.path}; endpoints: {endpoints}", "invalid_request_error", "unknown_url"), status=404)

    async def handle_metrics(self, request: web.Request) -> web.Response:
        """``RouterService``'s ``/metrics``, plus ``service.llm`` with the LLM model."""
        data = self.router.metrics()
        if self.scenario.backend.is_llm:
            data["service"]["llm"] = self.engine.gauges() if self.engine is not None else None
        return web.json_response(data)

    async def handle_models(self, request: web.Request) -> web.Response:
        model = {"id": self.model or STANDIN_MODEL, "object": "model", "created": self._created, "owned_by": "simrouter"}
        return web.json_response({"object": "list", "data": [model]})

    async def handle_chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=True)

    async def handle_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, chat=False)

    # -- one request

    async def _handle(self, request: web.Request, chat: bool) -> web.StreamResponse:
        router = self.router
        sent = router.now()
        try:
            job = await self._parse(request, chat)
        except _BadRequest as bad:
            router.record_malformed(sent)
            return self._error(VALIDATION, bad.message, bad.param, status=bad.status, code=bad.code)
        if self.scenario.backend.is_llm:
            return await self._handle_llm(request, job, sent)
        kind = (await router.handle(job.key, sent)).kind
        if kind != SUCCESS:
            return self._error(kind)
        n = max(1, int(round(self._tokens())))
        finish = "stop"
        if job.max_tokens is not None and n >= job.max_tokens:
            n, finish = job.max_tokens, "length"
        if job.stream:
            return await self._stream(request, job, n, finish)
        total = sum(self._tpot() for _ in range(n - 1))
        if total > 0:
            await asyncio.sleep(total)
        return _whole_answer(job, n, job.prompt_tokens, finish)

    # -- one request on the batching model (backend.model = "llm")

    def _next_tokens(self):
        try:
            return self._arrivals.next()
        except StopIteration:  # a trace replayed to its end: start it again
            self._arrivals = arrival_tokens(self.scenario, self.seed)
            return self._arrivals.next()

    async def _handle_llm(self, request: web.Request, job: _Job, sent: float) -> web.StreamResponse:
        """The module docstring's LLM rules: the router's call runs while the tokens stream."""
        from ..sim.requests import LLMRequest

        tokens = self._next_tokens()
        finish = "stop"
        if job.max_tokens is not None:  # what the client asks for: the output's cap and the token limiter's count
            if tokens.output >= job.max_tokens:
                finish = "length"
            tokens = LLMRequest(tokens.prompt, min(tokens.output, job.max_tokens), job.max_tokens)
        stream = TokenStream(tokens)
        context = CURRENT.set(stream)
        try:
            call = asyncio.ensure_future(self.router.handle(job.key, sent))  # the task's context holds the stream
        finally:
            CURRENT.reset(context)
        call.add_done_callback(lambda _call: stream.wake())
        try:
            while stream.tokens == 0 and not call.done():
                await stream.changed(DISCONNECT_POLL_S)
                if _client_gone(request):
                    call.cancel()
                    return web.Response(status=499)  # nobody reads it
            if stream.tokens == 0 and call.result().kind != SUCCESS:
                if stream.token_wait is not None:
                    return self._tokens_refused(stream.request.admission_tokens, stream.token_wait)
                return self._error(call.result().kind)
            n = tokens.output
            if not job.stream:
                while not call.done():
                    await stream.changed(DISCONNECT_POLL_S)
                    if _client_gone(request):
                        call.cancel()
                        return web.Response(status=499)
                kind = call.result().kind
                return _whole_answer(job, n, tokens.prompt, finish) if kind == SUCCESS else self._error(kind)
            return await self._stream_llm(request, job, stream, call, finish)
        except BaseException:
            call.cancel()  # the handler was cancelled: the request leaves the batch
            raise

    async def _stream_llm(self, request: web.Request, job: _Job, stream: TokenStream, call: asyncio.Future, finish: str) -> web.StreamResponse:
        n = stream.request.output
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", OUTCOME_HEADER: KIND_NAMES[SUCCESS]})
        fault = self._fault()
        broken = "cut" if fault < self._cut else "error" if fault < self._cut + self._stream_error else None
        stop_after = n if broken is None else 1 + int(self._fault() * max(1, n - 1))
        chunk, usage_chunk = _chunks(job)
        written = 0
        try:
            await response.prepare(request)
            while True:
                ready = min(stream.tokens, stop_after)
                if ready > written:
                    await response.write(b"".join(chunk(i, finish if i == n - 1 and broken is None else None) for i in range(written, ready)))
                    written = ready
                if written >= stop_after or call.done():
                    break
                await stream.changed()
            if written < stop_after:  # the router answered before the last token: its timeout
                await response.write(_sse(error_body("The backend did not finish within the router timeout.", "timeout", "timeout"), event="error"))
            elif broken == "error":
                await response.write(_sse(error_body("The server had an error while streaming the response.", "server_error", "server_error"), event="error"))
            elif broken is None:
                if job.include_usage:
                    await response.write(usage_chunk(stream.request.prompt, n))
                await response.write(_sse("[DONE]"))
            await response.write_eof()
        except ConnectionResetError:
            call.cancel()  # the client went away: its sequence leaves the batch
            return response
        if not call.done():  # a cut stream: the sequence runs to its end, the router records it
            self._background.add(call)
            call.add_done_callback(self._background.discard)
        return response

    async def _stream(self, request: web.Request, job: _Job, n: int, finish: str) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", OUTCOME_HEADER: KIND_NAMES[SUCCESS]})
        fault = self._fault()
        broken = "cut" if fault < self._cut else "error" if fault < self._cut + self._stream_error else None
        stop_after = n
        if broken:
            stop_after = 1 + int(self._fault() * max(1, n - 1))  # 1 .. n-1 tokens (1 when n == 1)
        chunk, usage_chunk = _chunks(job)
        try:
            await response.prepare(request)
            for i in range(stop_after):
                if i:
                    gap = self._tpot()
                    if gap > 0:
                        await asyncio.sleep(gap)
                last = i == n - 1 and broken is None
                await response.write(chunk(i, finish if last else None))
            if broken == "error":
                await response.write(_sse(error_body("The server had an error while streaming the response.", "server_error", "server_error"), event="error"))
            elif broken is None:
                if job.include_usage:
                    await response.write(usage_chunk(job.prompt_tokens, n))
                await response.write(_sse("[DONE]"))
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away
        return response

    async def _parse(self, request: web.Request, chat: bool) -> _Job:
        if request.content_type != "application/json":
            raise _BadRequest(f"expected Content-Type: application/json, got {request.content_type!r}")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _BadRequest(f"body over {MAX_BODY} bytes", status=413) from None
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise _BadRequest("We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise _BadRequest("expected a JSON object as the request body")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        if self.model is not None and model != self.model:
            raise _BadRequest(f"The model {model!r} does not exist; GET /v1/models lists {self.model!r}", "model", status=404, code="model_not_found")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) and "role" in m for m in messages):
                raise _BadRequest("messages: expected a non-empty list of {role, content} objects", "messages")
            prompt_chars = sum(len(m["content"]) if isinstance(m.get("content"), str) else len(json.dumps(m.get("content"))) for m in messages)
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, str):
                prompt_chars = len(prompt)
            elif isinstance(prompt, list) and all(isinstance(p, str) for p in prompt) and prompt:
                prompt_chars = sum(map(len, prompt))
            else:
                raise _BadRequest("prompt: expected a string or a list of strings", "prompt")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise _BadRequest("max_tokens: expected a whole number >= 1", "max_tokens")
        stream = body.get("stream", False)
        if not isinstance(stream, bool):
            raise _BadRequest("stream: expected true or false", "stream")
        options = body.get("stream_options")
        if options is not None and (not stream or not isinstance(options, dict)):
            raise _BadRequest("stream_options: only allowed with stream = true, as an object", "stream_options")
        include_usage = bool(options and options.get("include_usage"))
        given = body.get("user", request.headers.get("X-User-Id"))
        try:
            key = ANONYMOUS if given is None else user_key(given, "user" if "user" in body else "X-User-Id")
        except ValueError as exc:
            raise _BadRequest(str(exc), "user") from None
        return _Job(chat, model, stream, include_usage, max_tokens, max(1, math.ceil(prompt_chars / 4)), key)

    def _error(self, kind: int, message: str | None = None, param: str | None = None, status: int | None = None, code: str | None = None) -> web.Response:
        default_status, type_, default_code, default_message = ERRORS[kind]
        headers = {OUTCOME_HEADER: KIND_NAMES[kind]}
        if kind in REASONS:
            headers[REASON_HEADER] = REASONS[kind]
        if kind == RATE_LIMITED:
            seconds, limit = self._retry_after
            headers.update(
                {
                    "Retry-After": str(max(1, math.ceil(seconds))),
                    "retry-after-ms": str(int(round(seconds * 1000))),
                    "x-ratelimit-limit-requests": str(limit),
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{seconds:g}s",
                }
            )
        body = error_body(message or default_message, type_, code or default_code, param)
        return web.json_response(body, status=status or default_status, headers=headers)

    def _tokens_refused(self, cost: int, wait: float) -> web.Response:
        """The 429 of a request the tokens-per-minute budget refused (module docstring)."""
        limiter = self.scenario.limiter
        per_minute = limiter.tokens_per_minute
        headers = {OUTCOME_HEADER: KIND_NAMES[RATE_LIMITED], "x-ratelimit-limit-tokens": f"{per_minute:g}"}
        if math.isfinite(wait):
            headers["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(cost - wait * per_minute / 60.0)))
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
            headers["retry-after-ms"] = str(int(math.ceil(wait * 1000)))
            message = f"Rate limit reached on tokens per min (TPM): Limit {per_minute:g}, Requested {cost}. Please try again in {wait:.3f}s."
        else:
            burst = per_minute if limiter.tokens_burst is None else limiter.tokens_burst
            message = f"Request too large on tokens per min (TPM): Limit {burst:g}, Requested {cost}. The input or output tokens must be reduced in order to run successfully."
        return web.json_response(error_body(message, "tokens", "rate_limit_exceeded"), status=429, headers=headers)


def _chunks(job: _Job):
    """(chunk(i, finish_reason) -> the SSE bytes of content token i (None: no content),
    usage_chunk(prompt, completion) -> the usage chunk) for one streamed answer."""
    ident, created = _id(job.chat), int(time.time())
    obj = "chat.completion.chunk" if job.chat else "text_completion"

    def chunk(i: int | None, reason: str | None = None) -> bytes:
        text = WORDS[i % len(WORDS)] if i is not None else ""
        if job.chat:
            delta = {"content": text} if i is not None else {}
            if i == 0:
                delta = {"role": "assistant", "content": text}
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
        else:
            choice = {"index": 0, "text": text, "finish_reason": reason}
        return _sse({"id": ident, "object": obj, "created": created, "model": job.model, "choices": [choice]})

    def usage_chunk(prompt: int, completion: int) -> bytes:
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        return _sse({"id": ident, "object": obj, "created": created, "model": job.model, "choices": [], "usage": usage})

    return chunk, usage_chunk


def _whole_answer(job: _Job, n: int, prompt_tokens: int, finish: str) -> web.Response:
    """A non-streamed answer of ``n`` tokens."""
    text = "".join(WORDS[i % len(WORDS)] for i in range(n))
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
    if job.chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish}
    body = {"id": _id(job.chat), "object": "chat.completion" if job.chat else "text_completion", "created": int(time.time()), "model": job.model, "choices": [choice], "usage": usage}
    return web.json_response(body, headers={OUTCOME_HEADER: KIND_NAMES[SUCCESS]})


def _current_cost() -> int:
    """The token limiter's cost of the request being admitted (``CURRENT``): prompt + max_tokens."""
    return CURRENT.get().request.admission_tokens


def _note_token_refusal(wait: float) -> None:
    CURRENT.get().token_wait = wait


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _nominal_retry_after(limiter) -> tuple[float, int]:
    """(seconds until the limiter admits again, nominally; its request limit) for 429 headers."""
    if limiter.rate:
        return 1.0 / limiter.rate, int(limiter.burst or 1)
    if limiter.size:
        return float(limiter.size), int(limiter.limit or 1)
    return 1.0, int(limiter.max_in_flight or 1)


def _id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
