"""An incremental Server-Sent Events decoder: bytes in, events out (WHATWG HTML, 9.2.6).

``SSEDecoder().feed(chunk)`` takes any piece of the body (one TCP read, one HTTP
chunk, one byte) and returns the events completed by it; ``close()`` ends the
stream (an event not ended by a blank line is dropped, as the spec says, and
``pending`` tells whether one was). Lines end with CRLF, LF or CR (a CR at the
end of a piece waits for the next one, so a CRLF split across reads is one line
end); a leading UTF-8 BOM is skipped; ``:`` lines are comments (counted in
``comments``, keep-alives); ``data`` lines join with ``\\n``; ``event`` sets the
type (default ``message``); ``id`` (without NUL) and ``retry`` (digits only)
are kept; other fields are ignored. An event is dispatched at a blank line
only if it has data. OpenAI's ``data: [DONE]`` is an ordinary event whose data
is ``[DONE]`` (``SSEEvent.done``). Splitting a byte stream differently never
changes the events (a property test checks it).

Why not a library: ``sseclient-py`` pulls from a blocking iterator and
``httpx-sse`` keeps its decoder private behind httpx's line reader; the load
generator pushes body pieces from its own HTTP parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None

    @property
    def done(self) -> bool:
        """OpenAI's end-of-stream sentinel ``data: [DONE]``."""
        return self.data == "[DONE]"


class SSEDecoder:
    """Push decoder; one per response body."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_retry", "_started", "comments", "_has_fields")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None  # the last event id persists across events
        self._retry: int | None = None
        self._started = False
        self._has_fields = False
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(buffer):
                self._buffer = buffer
                return []
            self._started = True
            if buffer.startswith(_BOM):
                buffer = buffer[3:]
        events: list[SSEEvent] = []
        if b"\r" not in buffer:  # the common case: LF line ends, split in C
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
            data = self._data
            for raw in lines:
                if not raw:
                    event = self._dispatch()
                    if event is not None:
                        events.append(event)
                elif raw.startswith(b"data: "):
                    data.append(raw[6:].decode("utf-8", "replace"))
                    self._has_fields = True
                else:
                    self._line(raw)
            return events
        start = 0
        end = len(buffer)
        if buffer.endswith(b"\r"):
            end -= 1  # maybe the first half of a CRLF
        for match in _LINE_END.finditer(buffer, 0, end):
            event = self._line(buffer[start : match.start()])
            if event is not None:
                events.append(event)
            start = match.end()
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SSEEvent]:
        """End of the body: a trailing CR ends its line; an unterminated event is dropped."""
        events: list[SSEEvent] = []
        if self._buffer.endswith(b"\r"):
            events = self.feed(b"\n")
        return events

    @property
    def pending(self) -> bool:
        """Bytes or fields of an event not yet ended by a blank line."""
        return bool(self._buffer.strip(b"\r\n")) or self._has_fields

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            return self._dispatch()
        line = raw.decode("utf-8", "replace")
        if line[0] == ":":
            self.comments += 1
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._has_fields = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        return None

    def _dispatch(self) -> SSEEvent | None:
        self._has_fields = False
        data = self._data
        if not data:
            self._event = ""
            return None
        event = SSEEvent(data[0] if len(data) == 1 else "\n".join(data), self._event or "message", self._id, self._retry)
        data.clear()
        self._event = ""
        return event
