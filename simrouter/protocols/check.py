"""The ``[request]`` section's checks (``RequestConfig.__post_init__`` calls ``check_request``).

Each check raises ``ConfigError`` naming the dotted field and what is accepted.
Per protocol: ``model`` is required by the openai protocols and taken by no
other; ``stream`` and ``max_tokens`` belong to the openai protocols; ``body``
to ``http``; ``method`` other than POST to ``http``. ``path`` starts with ``/``
(origin form, a query string allowed). Header names are HTTP tokens, values
one line; ``Content-Length`` / ``Transfer-Encoding`` / ``Host`` are the
client's. ``${VAR}`` references must be well formed (they are resolved at run
time, not here). A body template must be JSON once its placeholders are filled.
The prompts file must be readable JSONL (``prompts.load_prompts``).
"""

from __future__ import annotations

import json
import re

from ..errors import ConfigError
from .env import REFERENCE, check_syntax
from .prompts import load_prompts

OPENAI = ("openai-chat", "openai-completions")
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 token (method, header name)
CLIENT_HEADERS = ("content-length", "transfer-encoding", "host", "connection")
PLACEHOLDERS = ("{user}", "{seq}", "{prompt}")


def check_request(r) -> None:
    """Validate a RequestConfig (duck-typed: this module does not import the schema)."""
    openai = r.protocol in OPENAI
    if openai and not r.model:
        raise ConfigError("request.model", f"the {r.protocol} protocol needs a model name (the server's GET /v1/models lists them)")
    if not openai:
        for name in ("model", "stream", "max_tokens"):
            if getattr(r, name) is not None:
                raise ConfigError(f"request.{name}", f"only the openai-chat and openai-completions protocols take {name}; protocol is {r.protocol!r}")
    if r.body is not None and r.protocol != "http":
        raise ConfigError("request.body", f'only the http protocol takes a body template; {r.protocol!r} builds its own body (give prompts = "file.jsonl" for per-request bodies)')
    if r.method is not None:
        if not TOKEN.match(r.method):
            raise ConfigError("request.method", f"expected an HTTP method such as GET, POST, PUT, got {r.method!r}")
        if r.protocol != "http" and r.method != "POST":
            raise ConfigError("request.method", f"the {r.protocol} protocol sends POST; only protocol = \"http\" takes another method, got {r.method!r}")
    if r.path is not None:
        if not r.path.startswith("/") or any(c.isspace() or ord(c) < 32 for c in r.path) or "#" in r.path:
            raise ConfigError("request.path", f"expected a path starting with / (a query string allowed, no spaces or fragment), e.g. /v1/chat/completions?api-version=1, got {r.path!r}")
        check_syntax(r.path, "request.path")
    for name, value in (r.headers or {}).items():
        field = f"request.headers.{name}"
        if not TOKEN.match(name):
            raise ConfigError(field, "expected a header name of letters, digits and -_.!#$%&'*+^`|~")
        if name.lower() in CLIENT_HEADERS:
            raise ConfigError(field, f"is set by the client; accepted headers: any but {', '.join(CLIENT_HEADERS)}")
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(field, "expected a one-line value (no CR, LF or NUL)")
        check_syntax(value, field)
    if r.body is not None:
        check_syntax(r.body, "request.body")
        filled = REFERENCE.sub("0", r.body).replace("{user}", "0").replace("{seq}", "0").replace("{prompt}", '""')
        try:
            json.loads(filled)
        except ValueError as exc:
            raise ConfigError(
                "request.body", f"is not JSON once its placeholders {', '.join(PLACEHOLDERS)} are filled ({exc.msg} at character {exc.pos}); e.g. '{{\"user\": {{user}}, \"prompt\": {{prompt}}}}'"
            ) from None
    if r.prompts is not None:
        load_prompts(r.prompts)
