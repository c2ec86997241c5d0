"""What a streamed (or whole) OpenAI answer says: token timing, token counts, how it ended.

``StreamAccumulator(protocol)`` is fed the body of a ``text/event-stream``
answer as it arrives, ``feed(chunk, at)`` with ``at`` the arrival time (any
clock, seconds); ``finish(at)`` ends it and gives a ``StreamSummary``:

* ``first_token_at``: arrival of the first chunk with content (chat:
  ``choices[].delta.content``, or ``reasoning_content`` / ``reasoning`` for
  reasoning models; completions: ``choices[].text``); a role-only chunk is not
  content. ``ttft(start)`` = ``first_token_at - start`` (give the intended send
  time for coordinated-omission-corrected TTFT).
* ``itl``: the gaps between consecutive content chunks (several in one read
  share an arrival time: a gap of 0, as vLLM's benchmark counts them).
* ``output_tokens``: ``usage.completion_tokens`` when the server sent usage
  (``tokens_source = "usage"``), else the number of content chunks
  (``"chunks"``); ``prompt_tokens`` from usage (else None).
* ``finish_reason``: the last ``choices[].finish_reason`` seen.
* ``outcome``: ``"complete"`` (``[DONE]`` or a finish reason seen, no error),
  ``"error"`` (an SSE ``event: error``, or a data event carrying ``{"error":
  ...}``: ``error`` holds that JSON object, to classify like a status) or
  ``"incomplete"`` (the body ended without either: ``incomplete_stream``).
  Data that is not JSON is counted in ``malformed`` and otherwise ignored.
* ``tpot(end)``: ``(e2e - ttft) / (output_tokens - 1)``, vLLM's time
  per output token; None for fewer than two tokens.

``summarize_completion(body)`` reads a non-streamed answer the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .sse import SSEDecoder

COMPLETE = "complete"
INCOMPLETE = "incomplete"
ERROR = "error"


@dataclass
class StreamSummary:
    first_token_at: float | None = None
    last_content_at: float | None = None
    last_at: float | None = None
    itl: list[float] = field(default_factory=list)
    content_chunks: int = 0
    usage_output_tokens: int | None = None
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    done: bool = False
    error: dict | None = None
    malformed: int = 0
    events: int = 0

    @property
    def output_tokens(self) -> int:
        return self.usage_output_tokens if self.usage_output_tokens is not None else self.content_chunks

    @property
    def tokens_source(self) -> str:
        return "usage" if self.usage_output_tokens is not None else "chunks"

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return ERROR
        return COMPLETE if self.done or self.finish_reason is not None else INCOMPLETE

    def ttft(self, start: float) -> float | None:
        return None if self.first_token_at is None else self.first_token_at - start

    def tpot(self, end: float) -> float | None:
        """``(e2e - ttft) / (output_tokens - 1)`` = ``(end - first_token_at) / (n - 1)``:
        the same whatever the start (intended or actual send)."""
        if self.first_token_at is None or self.output_tokens < 2:
            return None
        return (end - self.first_token_at) / (self.output_tokens - 1)


def _content(choice: dict, chat: bool) -> str:
    if chat:
        delta = choice.get("delta") or choice.get("message") or {}
        if not isinstance(delta, dict):
            return ""
        text = delta.get("content") or delta.get("reasoning_content") or delta.get("reasoning")
    else:
        text = choice.get("text")
    return text if isinstance(text, str) else ""


def _read_chunk(summary: StreamSummary, payload: dict, at: float | None, chat: bool) -> None:
    """One JSON chunk (or a whole answer) into ``summary``."""
    if "error" in payload and payload.get("error"):
        summary.error = payload if isinstance(payload.get("error"), dict) else {"error": {"message": str(payload["error"])}}
        return
    choices = payload.get("choices")
    has_content = False
    if isinstance(choices, list):
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            if _content(choice, chat):
                has_content = True
            reason = choice.get("finish_reason")
            if reason:
                summary.finish_reason = str(reason)
    if has_content:
        summary.content_chunks += 1
        if at is not None:
            if summary.first_token_at is None:
                summary.first_token_at = at
            else:
                summary.itl.append(at - summary.last_content_at)
            summary.last_content_at = at
    usage = payload.get("usage")
    if isinstance(usage, dict):
        output, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
        if isinstance(output, int) and not isinstance(output, bool):
            summary.usage_output_tokens = output
        if isinstance(prompt, int) and not isinstance(prompt, bool):
            summary.prompt_tokens = prompt


class StreamAccumulator:
    """Feed an SSE body with arrival times; ``finish`` gives the ``StreamSummary``."""

    def __init__(self, protocol: str = "openai-chat"):
        self._chat = protocol != "openai-completions"
        self._decoder = SSEDecoder()
        self.summary = StreamSummary()

    def feed(self, chunk: bytes, at: float) -> None:
        summary = self.summary
        summary.last_at = at
        for event in self._decoder.feed(chunk):
            self._event(event, at)

    def _event(self, event, at: float) -> None:
        summary = self.summary
        summary.events += 1
        if summary.done or summary.error is not None:
            return  # nothing after [DONE] or an error counts
        if event.event == "error":
            try:
                payload = json.loads(event.data)
            except ValueError:
                payload = None
            summary.error = payload if isinstance(payload, dict) and isinstance(payload.get("error"), dict) else {"error": {"type": "server_error", "message": event.data[:200]}}
            return
        if event.done:
            summary.done = True
            return
        try:
            payload = json.loads(event.data)
        except ValueError:
            summary.malformed += 1
            return
        if isinstance(payload, dict):
            _read_chunk(summary, payload, at, self._chat)
        else:
            summary.malformed += 1

    def finish(self, at: float | None = None) -> StreamSummary:
        for event in self._decoder.close():
            self._event(event, self.summary.last_at if at is None else at)
        if at is not None:
            self.summary.last_at = at
        return self.summary


def summarize_completion(body: bytes, protocol: str = "openai-chat", at: float | None = None) -> StreamSummary:
    """A non-streamed answer (``chat.completion`` / ``text_completion`` JSON) as a summary;
    its one content "chunk" arrives at ``at`` (the last byte), so TTFT = E2E."""
    summary = StreamSummary(last_at=at)
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        summary.malformed = 1
        return summary
    if not isinstance(payload, dict):
        summary.malformed = 1
        return summary
    _read_chunk(summary, payload, at, protocol != "openai-completions")
    summary.done = summary.error is None and summary.finish_reason is not None
    return summary
