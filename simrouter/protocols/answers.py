"""Classifying OpenAI-compatible answers: status, headers and JSON error body -> outcome kind.

``AnswerClassifier(rules)`` extends the ``--map`` rules of
``simrouter.live.classify`` (``STATUS[:HEADER=VALUE]=KIND``) with tests on the
JSON error body, ``STATUS:error.type=VALUE=KIND`` and ``STATUS:error.code=VALUE=KIND``
(any dotted path starting with ``error.``; values compared as strings, case
sensitive as JSON is). Rules are tried in order, the user's first, then
``OPENAI_RULES`` (unless ``openai_rules=False``), then the live defaults (``DEFAULT_RULES``: they match
``simrouter serve`` and ``serve --protocol openai``); the first match wins, no
match is ``unexpected_status``. The body is parsed only for a status some body
rule could match. Both OpenAI error shapes are read: ``{"error": {"type",
"code", ...}}`` and vLLM's top-level ``{"object": "error", "type", "code"}``.

Kinds are the live kinds (``KIND_NAMES``, ``simrouter.live.classify``), among
them ``incomplete_stream``: a stream that ended without ``[DONE]`` or a finish
reason. A test name with a dot that does not start with ``error.`` (say
``429:usage.total=1=failures``) is refused (``ConfigError('--map')``): only the
error body's fields are tested. An SSE ``error`` event mid-stream (status 200 already sent) is
classified by the body rules alone, status ignored, else as ``failures``
(``classify_error_event``).

OpenAI's 429 has two meanings: ``rate_limit_exceeded`` (retry later:
``rate_limited``) and ``insufficient_quota`` (retrying will not help: counted
as ``failures``, as a gateway's cooldown counts it). ``Answer`` records
``error.type`` / ``error.code`` (at most 64 characters each; the message is never
kept: servers echo API keys in it), ``Retry-After`` (seconds or an HTTP date, or
``retry-after-ms``) in seconds, and every ``x-ratelimit-*`` header.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..live.classify import DEFAULT_RULES, INCOMPLETE_STREAM, LIVE_KIND_NAMES, UNEXPECTED_STATUS, Rule
from ..outcomes import FAILURE, SUCCESS
from .stream import COMPLETE, ERROR, StreamSummary

KIND_NAMES = LIVE_KIND_NAMES

OPENAI_RULES = (
    "429:error.code=insufficient_quota=failures",
    "429:error.type=insufficient_quota=failures",
    "400=validation_errors",
    "413=validation_errors",
    "502=failures",
)
# An SSE error event: body tests only (the 200 went out before the error).
EVENT_RULES = (
    "200:error.code=rate_limit_exceeded=rate_limited",
    "200:error.type=rate_limit_exceeded=rate_limited",
    "200:error.code=timeout=timeouts",
    "200:error.type=timeout=timeouts",
)
MAX_FIELD = 64


@dataclass(frozen=True)
class BodyRule:
    """A status (or class) test plus a test on one field of the JSON error body."""

    status: int | None
    status_class: int | None
    path: tuple[str, ...]
    value: str
    kind: int

    @classmethod
    def parse(cls, text: str) -> "BodyRule | None":
        """The rule, or None when ``text`` has no ``error.`` body test."""
        match, sep, kind_name = text.rpartition("=")
        status_text, colon, test = match.partition(":")
        name, eq, value = test.partition("=")
        if not (sep and colon and eq and name.strip().startswith("error.")):
            return None
        if kind_name not in KIND_NAMES:
            raise ConfigError("--map", f"expected STATUS[:TEST]=KIND with KIND one of {', '.join(KIND_NAMES)}, got {text!r}")
        path = tuple(name.strip().split("."))
        if any(not part for part in path):
            raise ConfigError("--map", f"expected a body field like error.code, got {name!r} in {text!r}")
        status_rule = Rule.parse(f"{status_text}=succeeded")  # the status syntax and its checks
        return cls(status_rule.status, status_rule.status_class, path, value, KIND_NAMES.index(kind_name))

    def matches_status(self, status: int) -> bool:
        if self.status is not None and status != self.status:
            return False
        return self.status_class is None or status // 100 == self.status_class

    def matches_body(self, payload: dict | None) -> bool:
        node = payload
        for part in self.path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return node is not None and str(node) == self.value


def _parse_rule(text: str) -> Rule | BodyRule:
    body_rule = BodyRule.parse(text)
    if body_rule is not None:
        return body_rule
    test = text.rpartition("=")[0].partition(":")[2].partition("=")[0].strip()
    if "." in test:
        raise ConfigError(
            "--map",
            f"expected STATUS=KIND, STATUS:HEADER=VALUE=KIND or STATUS:error.FIELD=VALUE=KIND (a body test names a field of the "
            f"JSON error, e.g. 429:error.code=insufficient_quota=failures), got {text!r}",
        )
    return Rule.parse(text)


@dataclass
class Answer:
    """The classification of one answer and what the target said about limits."""

    kind: int
    error_type: str | None = None
    error_code: str | None = None
    retry_after_s: float | None = None
    ratelimit: dict[str, str] = field(default_factory=dict)

    @property
    def kind_name(self) -> str:
        return KIND_NAMES[self.kind]


def error_fields(payload) -> tuple[str | None, str | None]:
    """(``error.type``, ``error.code``) of an error body (either OpenAI shape), as short strings."""
    if not isinstance(payload, dict):
        return None, None
    error = payload.get("error")
    source = error if isinstance(error, dict) else payload if payload.get("object") == "error" else {}
    return tuple(None if source.get(name) is None else str(source.get(name))[:MAX_FIELD] for name in ("type", "code"))  # type: ignore[return-value]


def parse_body(body: bytes | None):
    if not body:
        return None
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(payload, dict) and payload.get("object") == "error" and not isinstance(payload.get("error"), dict):
        payload = {"error": payload}  # vLLM's shape, so error.* rules read it too
    return payload


def _lower_items(headers) -> Iterable[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) or hasattr(headers, "items") else headers
    return ((str(name).lower(), str(value)) for name, value in items)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (relative to ``now``, epoch s)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None


def limit_headers(headers) -> tuple[float | None, dict[str, str]]:
    """(Retry-After in seconds, the ``x-ratelimit-*`` headers) of an answer."""
    retry, retry_ms, limits = None, None, {}
    for name, value in _lower_items(headers or ()):
        if name == "retry-after":
            retry = retry_after_seconds(value)
        elif name == "retry-after-ms":
            try:
                retry_ms = max(0.0, float(value) / 1000)
            except ValueError:
                pass
        elif name.startswith("x-ratelimit-"):
            limits[name] = value[:MAX_FIELD]
    return (retry_ms if retry_ms is not None else retry), limits


class AnswerClassifier:
    """First matching rule wins: the user's, ``OPENAI_RULES``, then the live ``DEFAULT_RULES``."""

    def __init__(self, rules: Iterable[str] = (), defaults: bool = True, openai_rules: bool = True, parsed=None):
        """``defaults``: append the default rules; ``openai_rules``: include ``OPENAI_RULES``
        among them (false: exactly today's ``DEFAULT_RULES``, for ``protocol = "simrouter"``).
        ``parsed``: already parsed rules (a live ``Classifier``'s ``rules``) used as given instead."""
        texts = list(rules) + ((list(OPENAI_RULES) if openai_rules else []) + list(DEFAULT_RULES) if defaults else [])
        self.rules = list(parsed) if parsed is not None else [_parse_rule(text) for text in texts]
        self._event_rules = [rule for rule in self.rules if isinstance(rule, BodyRule)] + [_parse_rule(text) for text in EVENT_RULES]
        # Statuses whose first candidate rule tests nothing else: decided by a dict lookup.
        self._by_status: dict[int, int] = {}
        for status in range(100, 600):
            for rule in self.rules:
                if isinstance(rule, BodyRule):
                    if rule.matches_status(status):
                        break
                    continue
                if rule.status not in (None, status) or (rule.status_class is not None and rule.status_class != status // 100):
                    continue
                if rule.header is None:
                    self._by_status[status] = rule.kind
                break

    @classmethod
    def from_classifier(cls, classifier) -> "AnswerClassifier":
        """The same rules as a live ``Classifier`` (status and header rules), in its order."""
        return cls(parsed=classifier.rules)

    def fast_kind(self, status: int) -> int | None:
        """The kind when ``status`` alone decides it (no header or body rule could apply), else None."""
        return self._by_status.get(status)

    def kind(self, status: int, headers=None, body: bytes | None = None) -> int:
        fast = self._by_status.get(status)
        if fast is not None:
            return fast
        payload, parsed = None, False
        lowered = None
        for rule in self.rules:
            if isinstance(rule, BodyRule):
                if not rule.matches_status(status):
                    continue
                if not parsed:
                    payload, parsed = parse_body(body), True
                if rule.matches_body(payload):
                    return rule.kind
                continue
            if rule.header is not None and lowered is None:
                lowered = dict(_lower_items(headers or ()))
            if rule.matches(status, lowered or {}):
                return rule.kind
        return UNEXPECTED_STATUS

    def classify(self, status: int, headers=None, body: bytes | None = None) -> Answer:
        """The kind plus the error body's type/code and the rate-limit headers."""
        kind = self.kind(status, headers, body)
        retry, limits = limit_headers(headers)
        error_type = error_code = None
        if status >= 400:
            error_type, error_code = error_fields(parse_body(body))
        return Answer(kind, error_type, error_code, retry, limits)

    def classify_error_event(self, payload: dict | None) -> Answer:
        """An SSE ``error`` event (or a data event with ``{"error": ...}``) mid-stream."""
        if isinstance(payload, dict) and payload.get("object") == "error" and not isinstance(payload.get("error"), dict):
            payload = {"error": payload}
        error_type, error_code = error_fields(payload)
        for rule in self._event_rules:
            if rule.matches_body(payload):
                return Answer(rule.kind, error_type, error_code)
        return Answer(FAILURE, error_type, error_code)

    def classify_stream(self, status: int, headers, summary: StreamSummary) -> Answer:
        """A 2xx streamed answer: success if complete, ``incomplete_stream``, or its error event."""
        if summary.outcome == ERROR:
            answer = self.classify_error_event(summary.error)
        elif summary.outcome == COMPLETE:
            answer = Answer(SUCCESS)
        else:
            answer = Answer(INCOMPLETE_STREAM)
        answer.retry_after_s, answer.ratelimit = limit_headers(headers)
        return answer
