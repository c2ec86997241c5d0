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

``simrouter live --dashboard`` draws the same dashboard from the *generator's own*
measurements instead (``GeneratorBoard``), for any target: nothing is asked of the
target. Every ``interval`` seconds it reads the requests the generator finished in
the last ``window`` seconds (by answer time; the window is the interval, at least
1 s) and shows: latency P50/P90/P95/P99, average, min, max and samples
(coordinated-omission corrected: from the intended send time, the requests that
spent time on the target, as ``latency_ms``) with the uncorrected P99 on the status
line; time to first token P50/P95/P99 when the run streams; offered (arrivals),
answered and goodput rates over the window; every kind's count and share in the
window (errors by kind); the scenario's targets checked against the window's
figures. The breaker and the backend's capacity are "not measured" (only the
target could say). Reading the window costs O(requests in it), on the event
loop; drawing happens in a worker thread.
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


# -- the generator's own figures (``simrouter live --dashboard``)

GENERATOR_NOT_MEASURED = (
    "backend.capacity", "backend.utilization", "backend.utilization_whole_run", "breaker.trips", "breaker.recovery_s",
)


def _window_stats(values_ms) -> dict:
    """P50/P90/P95/P99 (numpy's linear interpolation, as the simulation's window), avg, max, min, count."""
    import numpy as np

    if len(values_ms) == 0:
        return {"p50": None, "p90": None, "p95": None, "p99": None, "avg": None, "max": None, "min": None, "count": 0}
    p50, p90, p95, p99 = (float(v) for v in np.percentile(values_ms, [50, 90, 95, 99]))
    return {"p50": p50, "p90": p90, "p95": p95, "p99": p99, "avg": float(np.mean(values_ms)), "max": float(np.max(values_ms)),
            "min": float(np.min(values_ms)), "count": int(len(values_ms))}


class GeneratorBoard:
    """Rolling figures of a running ``LoadGenerator`` (its public ``columns``, ``answers``,
    ``arrivals``, ``now()``), and their dashboard (see the module docstring)."""

    def __init__(self, generator, window: float, console: Console | None = None):
        self.generator = generator
        self.window = max(1.0, float(window))
        self.console = console or Console()
        self.frames = 0
        self._start = 0  # first column row that may still be in the window
        self._answer_start = 0
        self._arrivals = (0.0, 0)  # (when, arrivals) at the last reading
        self._config = generator.scenario.to_dict()
        self._live: Live | None = None

    def figures(self) -> dict:
        """A summary-shaped dict of the last ``window`` seconds (call on the generator's loop)."""
        import numpy as np

        from ..live.classify import DROPPED, LATENCY_KINDS, LIVE_KIND_NAMES
        from ..outcomes import BACKEND_KINDS, SUCCESS
        from ..targets import evaluate_targets

        g = self.generator
        now = g.now()
        columns = g.columns
        start = self._start
        sent = np.array(columns.sent[start:], dtype=np.float64)  # array slices: copies, so the columns may grow
        actual = np.array(columns.actual[start:], dtype=np.float64)
        done = np.array(columns.done[start:], dtype=np.float64)
        kind = np.array(columns.kind[start:], dtype=np.int8)
        since = now - self.window
        inside = done >= since
        first = int(np.argmax(inside)) if inside.any() else len(done)
        self._start = start + first  # rows are added as requests end: older ones stay out from now on
        sent, actual, done, kind = sent[inside], actual[inside], done[inside], kind[inside]
        span = min(self.window, max(now, 1e-9))
        counts = np.bincount(kind, minlength=len(LIVE_KIND_NAMES)) if kind.size else np.zeros(len(LIVE_KIND_NAMES), int)
        total = int(kind.size)
        requests = {"sent": total, **{name: int(counts[code]) for code, name in enumerate(LIVE_KIND_NAMES)}}
        error_rates = {name: (int(counts[code]) / total if total else 0.0) for code, name in enumerate(LIVE_KIND_NAMES) if code != SUCCESS}
        error_rate = 1.0 - requests["succeeded"] / total if total else 0.0
        timed = np.isin(kind, BACKEND_KINDS + LATENCY_KINDS)
        latency = _window_stats((done - sent)[timed] * 1000.0)
        uncorrected = _window_stats((done - actual)[timed] * 1000.0)
        answered = int(np.count_nonzero(kind != DROPPED))
        then, arrivals_then = self._arrivals
        offered = (g.arrivals - arrivals_then) / (now - then) if now > then else 0.0
        self._arrivals = (now, g.arrivals)
        summary = {
            "scenario": g.scenario.name,
            "config": self._config,
            "seed": getattr(g.options, "seed", None),
            "sim_time_s": now,
            "latency_ms": latency,
            "throughput": {"offered_rps": offered, "rps": answered / span, "goodput_rps": requests["succeeded"] / span,
                           "rpm": answered / span * 60.0, "window_s": span},
            "breaker": {"state": None, "healthy": None, "failure_rate": error_rate, "avg_response_ms": latency["avg"], "trips": None,
                        "recovery_s": None, "recovered": None, "recoveries": None, "transitions": [],
                        "recommendation": "breaker not measured: these are the generator's own figures (the target is asked nothing)"},
            "backend": {"capacity": None, "utilization": None, "utilization_whole_run": None},
            "requests": requests,
            "error_rates": error_rates,
            "error_rate": error_rate,
            "live": {"not_measured": list(GENERATOR_NOT_MEASURED), "latency_ms_uncorrected": uncorrected, "ttft_ms": self._ttft(since)},
        }
        summary["targets"] = [t.to_dict() for t in evaluate_targets(summary, g.scenario.targets, False)]
        return summary

    def _ttft(self, since: float) -> dict | None:
        """Time to first token of the window's answers that had one (None: the run does not stream)."""
        import numpy as np

        g = self.generator
        answers = getattr(g, "answers", None)
        if not getattr(g, "stream", False) or answers is None:
            return None
        start = self._answer_start
        rows = np.array(answers.row[start:], dtype=np.int64)
        first_token = np.array(answers.first_token[start:], dtype=np.float64)
        columns = g.columns
        keep = rows >= self._start
        self._answer_start = start + (int(np.argmax(keep)) if keep.any() else len(rows))
        rows, first_token = rows[keep], first_token[keep]
        done = np.array([columns.done[r] for r in rows.tolist()], dtype=np.float64)
        sent = np.array([columns.sent[r] for r in rows.tolist()], dtype=np.float64)
        ok = ~np.isnan(first_token) & (done >= since)
        return _window_stats((first_token[ok] - sent[ok]) * 1000.0)

    def status(self, summary: dict) -> Text:
        g = self.generator
        text = Text(f"{g.display_target} · generator's own figures, last {summary['throughput']['window_s']:.0f} s · ", style="bold")
        text.append(f"{summary['sim_time_s']:,.0f} of {g.scenario.duration:g} s · frame {self.frames}", style="bold")
        live = summary["live"]
        p99 = live["latency_ms_uncorrected"]["p99"]
        text.append(f" · uncorrected P99 {'—' if p99 is None else f'{p99:,.1f} ms'}", style="dim")
        ttft = live["ttft_ms"]
        if ttft is not None:
            parts = " / ".join("—" if ttft[k] is None else f"{ttft[k]:,.1f}" for k in ("p50", "p95", "p99"))
            text.append(f" · TTFT P50/P95/P99 {parts} ms ({ttft['count']} answers)", style="bold cyan")
        return text

    def render(self, summary: dict, width: int | None = None):
        return Group(self.status(summary), _board(summary, width))

    def draw(self, summary: dict) -> None:
        """Show ``summary``: in place on a terminal, else printed (may run in a worker thread)."""
        self.frames += 1
        width = self.console.width
        if self.console.is_terminal:
            if self._live is None:
                self._live = Live(console=self.console, auto_refresh=False, transient=False)
                self._live.start()
            self._live.update(self.render(summary, width), refresh=True)
        else:
            self.console.print(self.render(summary, width))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
