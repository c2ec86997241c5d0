"""The terminal dashboard of a live target, redrawn as its ``GET /metrics`` changes.

``watch(target)`` polls ``<target>/metrics`` every ``interval`` seconds. The answer
is JSON shaped like a simulation summary (the keys of ``RunResult.summary``, as
``simrouter serve`` returns; an optional ``service`` section adds uptime and
busy/queued slots to the status line) and is drawn with the same dashboard as
a simulated run (``render_dashboard``), under a status line: the address, the
number of polls, and when the figures were read.

A target that does not answer (refused, timed out, an HTTP error, not JSON, not
a summary) does not end the watch: the status line turns red, says what went
wrong and since when, and the last figures stay on screen, marked stale.

On a terminal the screen is redrawn in place (``rich.live.Live``); otherwise
(a pipe, a file) each poll prints its status line and, when the figures
changed, the dashboard as plain text. The watch ends at Ctrl-C (the caller's
KeyboardInterrupt), after ``count`` polls, or once ``duration`` seconds have passed.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from ..errors import ConfigError
from .dashboard import render_dashboard

LIVE_HEADING = "AI ROUTER LIVE"
HISTORY = 100  # polls kept in WatchState.history (a watch may run for days)
REQUIRED_KEYS = ("scenario", "requests", "latency_ms", "throughput", "error_rate", "breaker")


def metrics_url(target: str) -> str:
    """``target`` (``host:port``, ``http://host:port`` or a full ``.../metrics`` URL)
    as the URL to poll."""
    text = target.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("--target", f"{target!r} is not an http(s) address; expected e.g. http://127.0.0.1:8080")
    path = parts.path.rstrip("/")
    if not path.endswith("/metrics"):
        path += "/metrics"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


@dataclass(frozen=True)
class Poll:
    """One ``GET /metrics``: the summary it returned, or why there was none."""

    at: float  # wall-clock time of the answer (time.time())
    summary: dict | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def poll_once(url: str, timeout: float) -> Poll:
    """GET ``url`` and read a summary; every failure becomes ``Poll.error``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        return Poll(time.time(), error=f"HTTP {exc.code} {exc.reason}")
    except urllib.error.URLError as exc:
        reason = exc.reason
        text = f"no answer within {timeout:g} s" if isinstance(reason, TimeoutError) else str(getattr(reason, "strerror", None) or reason)
        return Poll(time.time(), error=f"not answering: {text}")
    except TimeoutError:
        return Poll(time.time(), error=f"not answering: no answer within {timeout:g} s")
    except OSError as exc:  # refused, reset
        return Poll(time.time(), error=f"not answering: {exc.strerror or exc}")
    except http.client.HTTPException as exc:  # not HTTP at all, or cut off
        return Poll(time.time(), error=f"not answering HTTP: {type(exc).__name__}")
    try:
        summary = json.loads(body)
    except ValueError:
        return Poll(time.time(), error="answered, but not with JSON")
    missing = [key for key in REQUIRED_KEYS if not isinstance(summary, dict) or key not in summary]
    if missing:
        return Poll(time.time(), error=f"answered, but not a simrouter summary (missing {', '.join(missing)})")
    return Poll(time.time(), summary=summary)


@dataclass
class WatchState:
    """What the screen shows: the last poll and the last figures read."""

    url: str
    polls: int = 0
    last: Poll | None = None
    last_good: Poll | None = None
    failing_since: float | None = None
    history: deque[Poll] = field(default_factory=lambda: deque(maxlen=HISTORY))

    def record(self, poll: Poll) -> None:
        self.polls += 1
        self.last = poll
        self.history.append(poll)
        if poll.ok:
            self.last_good, self.failing_since = poll, None
        elif self.failing_since is None:
            self.failing_since = poll.at


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


def status_line(state: WatchState) -> Text:
    """One line: address, polls, freshness, and the target's trouble if any."""
    text = Text(f"{state.url} · poll {state.polls} · ", style="bold")
    poll = state.last
    if poll is None:
        return text.append("waiting for the first answer", style="dim")
    if poll.ok:
        text.append(f"● answering, figures of {_clock(poll.at)}", style="bold green")
        service = poll.summary.get("service") or {}
        if isinstance(service, dict) and "uptime_s" in service:
            text.append(f" · up {service['uptime_s']:,.0f} s · busy {service.get('busy', '—')} · queued {service.get('queued', '—')}", style="dim")
        return text
    text.append(f"✖ {poll.error} (since {_clock(state.failing_since)})", style="bold red")
    if state.last_good is not None:
        text.append(f" · showing stale figures of {_clock(state.last_good.at)}", style="yellow")
    return text


def _board(summary: dict, width: int | None):
    """The dashboard of ``summary``, or one red line when it lacks what the dashboard needs."""
    try:
        return render_dashboard(summary, width=width, heading=LIVE_HEADING)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return Text(f"cannot draw these figures: {type(exc).__name__} {exc}", style="red")


def render_watch(state: WatchState, width: int | None = None):
    """The status line over the dashboard of the last figures read."""
    if state.last_good is None:
        return status_line(state)
    return Group(status_line(state), _board(state.last_good.summary, width))


def watch(
    target: str,
    *,
    interval: float = 5.0,
    count: int | None = None,
    duration: float | None = None,
    timeout: float | None = None,
    console: Console | None = None,
) -> WatchState:
    """Poll ``target`` and draw it until ``count`` polls or ``duration`` seconds
    (both None: until KeyboardInterrupt, which propagates)."""
    for option, seconds in (("--interval", interval), ("--duration", duration), ("--timeout", timeout)):
        if seconds is not None and not 0 < seconds < float("inf"):
            raise ConfigError(option, f"must be a finite number of seconds > 0, got {seconds:g}")
    if count is not None and count < 1:
        raise ConfigError("--count", f"must be >= 1, got {count}")
    state = WatchState(metrics_url(target))
    console = console or Console()
    timeout = timeout if timeout is not None else max(1.0, min(interval, 10.0))
    started = time.monotonic()

    def more() -> bool:
        if count is not None and state.polls >= count:
            return False
        return duration is None or time.monotonic() - started < duration

    def poll_loop(draw: Callable[[], None]) -> WatchState:
        while True:
            state.record(poll_once(state.url, timeout))
            draw()
            if not more():
                return state
            time.sleep(max(0.0, interval - (time.monotonic() - started) % interval))
            if not more():
                return state

    if console.is_terminal:
        with Live(render_watch(state, console.width), console=console, refresh_per_second=4) as live:
            return poll_loop(lambda: live.update(render_watch(state, console.width), refresh=True))

    shown = None  # the figures last printed: unchanged ones are not printed again

    def print_plain() -> None:
        nonlocal shown
        console.print(status_line(state))
        if state.last.ok and state.last.summary != shown:
            console.print(_board(state.last.summary, console.width))
            shown = state.last.summary

    return poll_loop(print_plain)
