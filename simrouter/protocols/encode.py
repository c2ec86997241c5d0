"""Building the HTTP request for request number ``seq`` of user ``user``, per protocol.

``RequestEncoder(request, environ)`` is built once per run from a ``[request]``
section (``simrouter.config.RequestConfig``); it resolves ``${VAR}`` references
from ``environ`` (a ``ConfigError`` naming the unset variable), keeps the values
in ``encoder.secrets`` for redaction, and loads the prompts. ``encode(user, seq)``
then gives an ``EncodedRequest`` (method, path, headers, body bytes):

===================== =========================================================================
``simrouter``         ``POST /submit`` ``{"user": N}`` (plus ``"prompt"`` when a dataset is given)
``openai-chat``       ``{"model", "messages": [{"role": "user", "content": prompt}], "max_tokens",
                      "stream", "stream_options": {"include_usage": true}}``
``openai-completions`` ``{"model", "prompt", "max_tokens", "stream", "stream_options"}``
``http``              the ``body`` template with ``{user}``, ``{seq}`` and ``{prompt}`` (a JSON string)
===================== =========================================================================

``max_tokens`` is sent only when configured; ``stream_options`` only with
``stream = true`` (OpenAI rejects it otherwise). A dataset line that is an
object is the whole body: the openai protocols add ``model``, ``stream``,
``stream_options`` and ``max_tokens`` where it lacks them; ``simrouter`` adds
``user``. The openai protocols send ``X-User-Id: N`` so a gateway (and
``serve --protocol openai``) can apply per-user limits. A body gets
``Content-Type: application/json`` unless the headers set one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .env import Secrets, resolve
from .prompts import DEFAULT_PROMPT, load_prompts

OPENAI = ("openai-chat", "openai-completions")


@dataclass(frozen=True, slots=True)
class EncodedRequest:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


class RequestEncoder:
    """Request ``seq`` of user ``user`` for one ``[request]`` section, ``${VAR}`` resolved."""

    def __init__(self, request, environ: Mapping[str, str] | None = None, prompts: list | None = None):
        environ = os.environ if environ is None else environ
        self.secrets = Secrets()
        self.protocol = request.protocol
        self.stream = request.effective_stream
        self.method = request.effective_method
        self.path = resolve(request.effective_path, environ, "request.path", self.secrets)
        headers = [(name, resolve(value, environ, f"request.headers.{name}", self.secrets)) for name, value in (request.headers or {}).items()]
        self._template = resolve(request.body, environ, "request.body", self.secrets) if request.body is not None else None
        if prompts is None:
            prompts = load_prompts(request.prompts) if request.prompts else None
        self.has_dataset = prompts is not None
        self.prompts: list[str | dict] = prompts or [DEFAULT_PROMPT]
        sends_body = self.protocol != "http" or self._template is not None or any(isinstance(p, dict) for p in self.prompts)
        if sends_body and not any(name.lower() == "content-type" for name, _ in headers):
            headers.append(("Content-Type", "application/json"))
        self.headers = tuple(headers)
        self._bodies = [self._openai_body(request, item) for item in self.prompts] if self.protocol in OPENAI else None

    def _openai_body(self, request, item: str | dict) -> bytes:
        if isinstance(item, dict):
            body = dict(item)
        elif self.protocol == "openai-chat":
            body = {"messages": [{"role": "user", "content": item}]}
        else:
            body = {"prompt": item}
        body.setdefault("model", request.model)
        if request.max_tokens is not None:
            body.setdefault("max_tokens", request.max_tokens)
        body.setdefault("stream", self.stream)
        if body["stream"]:
            body.setdefault("stream_options", {"include_usage": True})
        return json.dumps(body, separators=(",", ":")).encode()

    @property
    def varies_with_seq(self) -> bool:
        """True when request ``seq`` of a user may differ from its request 0 (several
        prompts, or ``{seq}`` in the body template): then encode each request anew."""
        return len(self.prompts) > 1 or (self._template is not None and "{seq}" in self._template)

    def prompt(self, seq: int) -> str | dict:
        """The dataset line request ``seq`` uses."""
        return self.prompts[seq % len(self.prompts)]

    def body(self, user: int, seq: int) -> bytes:
        if self._bodies is not None:
            return self._bodies[seq % len(self._bodies)]
        item = self.prompt(seq)
        if isinstance(item, dict):
            body = dict(item)
            if self.protocol == "simrouter":
                body.setdefault("user", user)
            return json.dumps(body).encode()
        if self.protocol == "simrouter":
            return (json.dumps({"user": user, "prompt": item}) if self.has_dataset else '{"user": %d}' % user).encode()
        if self._template is None:
            return b""
        return self._template.replace("{user}", str(user)).replace("{seq}", str(seq)).replace("{prompt}", json.dumps(item)).encode()

    def encode(self, user: int, seq: int) -> EncodedRequest:
        headers = self.headers + (("X-User-Id", str(user)),) if self.protocol in OPENAI else self.headers
        return EncodedRequest(self.method, self.path, headers, self.body(user, seq))
