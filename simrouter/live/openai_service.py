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
from .service import ANONYMOUS, MAX_BODY, OUTCOME_HEADER, REASON_HEADER, REASONS, RouterService, user_key

# Random sources of this front end (beyond the simulation's ``streams`` ids).
TPOT_STREAM, TOKENS_STREAM, STREAM_FAULT_STREAM = 100, 101, 102
DEFAULT_OUTPUT_TOKENS = 16
STANDIN_MODEL = "simrouter-standin"
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
        routed = dataclasses.replace(scenario, backend=dataclasses.replace(backend, latency=backend.ttft)) if backend.ttft is not None else scenario
        self.router = RouterService(routed, seed=seed, admin_token=admin_token, **router_options)
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
            ("GET", "/metrics", router.handle_metrics),
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
        text = "".join(WORDS[i % len(WORDS)] for i in range(n))
        usage = {"prompt_tokens": job.prompt_tokens, "completion_tokens": n, "total_tokens": job.prompt_tokens + n}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "finish_reason": finish}
        body = {"id": _id(chat), "object": "chat.completion" if chat else "text_completion", "created": int(time.time()), "model": job.model, "choices": [choice], "usage": usage}
        return web.json_response(body, headers={OUTCOME_HEADER: KIND_NAMES[SUCCESS]})

    async def _stream(self, request: web.Request, job: _Job, n: int, finish: str) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", OUTCOME_HEADER: KIND_NAMES[SUCCESS]})
        fault = self._fault()
        broken = "cut" if fault < self._cut else "error" if fault < self._cut + self._stream_error else None
        stop_after = n
        if broken:
            stop_after = 1 + int(self._fault() * max(1, n - 1))  # 1 .. n-1 tokens (1 when n == 1)
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
                    usage = {"prompt_tokens": job.prompt_tokens, "completion_tokens": n, "total_tokens": job.prompt_tokens + n}
                    await response.write(_sse({"id": ident, "object": obj, "created": created, "model": job.model, "choices": [], "usage": usage}))
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


def _nominal_retry_after(limiter) -> tuple[float, int]:
    """(seconds until the limiter admits again, nominally; its request limit) for 429 headers."""
    if limiter.rate:
        return 1.0 / limiter.rate, int(limiter.burst or 1)
    if limiter.size:
        return float(limiter.size), int(limiter.limit or 1)
    return 1.0, int(limiter.max_in_flight or 1)


def _id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
