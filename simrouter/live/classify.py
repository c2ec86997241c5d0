"""Mapping live HTTP answers (and failures to get one) onto outcome kinds.

A ``Classifier`` is an ordered list of rules ``STATUS[:HEADER=VALUE]=KIND``; the
first rule that matches an answer gives its kind. ``STATUS`` is a code (``503``)
or a class (``5xx``); the optional header condition compares case-insensitively.
User rules come before ``DEFAULT_RULES``, which match ``simrouter serve``::

    200=succeeded  429=rate_limited  422=validation_errors  500=failures  504=timeouts
    503:X-Simrouter-Reason=queue-full=queue_full  503=breaker_rejected

The simulation's kinds are ``simrouter.outcomes`` (codes 0-6). The live engine
adds transport kinds (codes from 7) for answers no rule matches and for targets
that misbehave; they are counted like any other kind, so every request sent is
counted exactly once:

=====================  =============================================================
``unexpected_status``  an HTTP answer that no rule matches
``connect_errors``     connection refused or the address unreachable
``client_timeouts``    no answer within the client timeout (a hung target)
``protocol_errors``    connection reset or closed mid-answer, or an answer that is not HTTP
``interrupted``        in flight when the run was cut short (Ctrl-C, SIGTERM)
``dropped``            an open-model arrival the generator did not send: ``connections +
                       max_backlog`` requests were already pending (k6's dropped iterations)
``incomplete_stream``  a streamed (SSE) answer whose body ended without ``data: [DONE]``
                       or a finish reason (``simrouter.protocols.stream``): not a success
=====================  =============================================================

A ``dropped`` arrival is a failed request like the others (in ``requests``, the
error rates and every gate) but has no latency: nothing was sent. No ``--map``
rule can produce it. ``incomplete_stream`` is a failure that took time on the
target (in the latency figures, at the time the body ended); it is not a
transport error (the HTTP exchange itself was sound). ``LATENCY_KINDS`` are the live kinds that spent time on the
target besides the simulation's backend kinds (``simrouter.outcomes.BACKEND_KINDS``):
an answer no rule classifies, a refused connection, a client timeout, a broken
answer, an incomplete stream; they are in the latency figures at the time they took.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..outcomes import KIND_NAMES

UNEXPECTED_STATUS = 7
CONNECT_ERROR = 8
CLIENT_TIMEOUT = 9
PROTOCOL_ERROR = 10
INTERRUPTED = 11
DROPPED = 12
INCOMPLETE_STREAM = 13

LIVE_KIND_NAMES = KIND_NAMES + ("unexpected_status", "connect_errors", "client_timeouts", "protocol_errors", "interrupted", "dropped", "incomplete_stream")
TRANSPORT_KINDS = (UNEXPECTED_STATUS, CONNECT_ERROR, CLIENT_TIMEOUT, PROTOCOL_ERROR, INTERRUPTED)
LIVE_ONLY_KINDS = TRANSPORT_KINDS + (DROPPED, INCOMPLETE_STREAM)
LATENCY_KINDS = (UNEXPECTED_STATUS, CONNECT_ERROR, CLIENT_TIMEOUT, PROTOCOL_ERROR, INCOMPLETE_STREAM)
MAPPABLE_KIND_NAMES = tuple(name for name in LIVE_KIND_NAMES if name != "dropped")

DEFAULT_RULES = (
    "200=succeeded",
    "429=rate_limited",
    "422=validation_errors",
    "500=failures",
    "504=timeouts",
    "503:X-Simrouter-Reason=queue-full=queue_full",
    "503=breaker_rejected",
)


@dataclass(frozen=True)
class Rule:
    """``status`` (e.g. 503) or ``status_class`` (e.g. 5 for 5xx), an optional header test, a kind code."""

    status: int | None
    status_class: int | None
    header: str | None
    value: str | None
    kind: int

    @classmethod
    def parse(cls, text: str) -> "Rule":
        match, sep, kind_name = text.rpartition("=")
        field = "--map"
        if not sep or kind_name not in MAPPABLE_KIND_NAMES:
            raise ConfigError(field, f"expected STATUS[:HEADER=VALUE]=KIND with KIND one of {', '.join(MAPPABLE_KIND_NAMES)}, got {text!r}")
        status_text, _, header_test = match.partition(":")
        header = value = None
        if header_test:
            header, sep, value = header_test.partition("=")
            header = header.strip().lower()  # looked up lower-case: headers are case-insensitive
            if not sep or not header:
                raise ConfigError(field, f"expected a header test HEADER=VALUE after ':', got {header_test!r} in {text!r}")
        status_text = status_text.strip().lower()
        if len(status_text) == 3 and status_text[0].isdigit() and status_text[1:] == "xx":
            return cls(None, int(status_text[0]), header, value, LIVE_KIND_NAMES.index(kind_name))
        if not (status_text.isdigit() and 100 <= int(status_text) <= 599):
            raise ConfigError(field, f"expected an HTTP status (e.g. 503) or class (e.g. 5xx), got {status_text!r} in {text!r}")
        return cls(int(status_text), None, header, value, LIVE_KIND_NAMES.index(kind_name))

    def matches(self, status: int, headers) -> bool:
        if self.status is not None and status != self.status:
            return False
        if self.status_class is not None and status // 100 != self.status_class:
            return False
        if self.header is not None:
            got = headers.get(self.header)
            return got is not None and got.lower() == self.value.lower()
        return True


class Classifier:
    """First matching rule wins; no match is ``UNEXPECTED_STATUS``."""

    def __init__(self, rules: list[str] | tuple[str, ...] = (), defaults: bool = True):
        texts = list(rules) + (list(DEFAULT_RULES) if defaults else [])
        self.rules = [Rule.parse(text) for text in texts]
        # Statuses decided without looking at headers: a dict lookup in the hot path.
        self._by_status: dict[int, int] = {}
        self._needs_headers: set[int] = set()
        for status in range(100, 600):
            for rule in self.rules:
                if rule.status not in (None, status) or (rule.status_class is not None and rule.status_class != status // 100):
                    continue
                if rule.header is not None:
                    self._needs_headers.add(status)
                    break
                self._by_status[status] = rule.kind
                break

    def needs_headers(self, status: int) -> bool:
        return status in self._needs_headers

    def kind(self, status: int, headers=None) -> int:
        if status in self._needs_headers:
            for rule in self.rules:
                if rule.matches(status, headers or {}):
                    return rule.kind
            return UNEXPECTED_STATUS
        return self._by_status.get(status, UNEXPECTED_STATUS)
