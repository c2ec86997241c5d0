"""Terminal dashboard of one run's summary, drawn with ``rich``.

Six panels, laid out like the original system's dashboard:

* 📊 LATENCY METRICS: P50, P90, P95, P99 (bold), average, max, min, samples;
* 🚀 THROUGHPUT METRICS: over the throughput window (end of warm-up .. end of full
  load): offered (sends), answered (all outcomes), goodput (successes, with the
  throughput target), answers per minute, the window's length;
* 🛡️ CIRCUIT BREAKER STATUS: state, health, failure rate, average response, trips,
  recovery time, the last transitions, the diagnosis (``simrouter.diagnosis``:
  one line per code) and the recommendation;
* ⚠️ ERROR TRACKING: count and share of sent requests per error kind;
* 📈 SYSTEM OVERVIEW: scenario, workload, backend capacity, utilisation over the
  throughput window and over the whole run, seed, simulated time (and wall time
  when given);
* 🎯 PERFORMANCE TARGETS: each target's threshold, value and PASS / FAIL / not checked.

A run with ``[[deployments]]`` (its summary has ``deployments``) gets a 🌐 DEPLOYMENTS
panel: one row per deployment (name, share of the routed attempts, attempts, success
share of its attempts, P95/P99 of the attempts its backend answered, breaker state,
trips, recovery time, utilisation) and the fallback counts. P95/P99 are coloured by
the overall latency targets (a deployment slower than the target drags the requests
it serves over it), recovery by the deployment's recovery gate (``recovery:NAME``,
``recovery_verdict``: a deployment whose breaker never re-closed after a fault fails
it, as ``simrouter.targets`` judges), the breaker state
green (closed) / yellow (half-open) / red (open), with the same marks as the breaker
panel's health. The overall breaker panel shows the summary's ``breaker`` section as it is
(with deployments, the summary makes it the worst deployment's story).

Colour rule (``target_colour``): red when a figure fails its target (the comparison
is strict, so a value equal to the threshold fails), yellow when it passes within
20 % of the limit (``0.8 * t <= v < t`` for ``<``; ``t < v <= 1.2 * t`` for ``>``),
green otherwise, dim when the target is not checked. The same colour is applied to
every figure that has a target (P95, P99, goodput, error rate, recovery).
Without a terminal ``rich`` drops the colours and the text stays readable.

``workload`` is read from ``summary["config"]``: pass ``RunResult.to_dict()`` (or
the result itself) rather than ``RunResult.summary`` to show it.
"""

from __future__ import annotations

import math

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

__all__ = ["render_dashboard", "print_dashboard", "target_colour", "recovery_verdict"]

NEAR_LIMIT = 0.2  # the yellow band, as a fraction of the threshold

# (label, summary path, unit); a figure whose path is a target's metric gets its colour.
LATENCY_ROWS = (
    ("P50", "latency_ms.p50", "ms"),
    ("P90", "latency_ms.p90", "ms"),
    ("P95", "latency_ms.p95", "ms"),
    ("P99", "latency_ms.p99", "ms"),
    ("Average", "latency_ms.avg", "ms"),
    ("Max", "latency_ms.max", "ms"),
    ("Min", "latency_ms.min", "ms"),
    ("Samples", "latency_ms.count", "count"),
)
HIGHLIGHTED = {"P50", "P90", "P95", "P99"}
THROUGHPUT_ROWS = (
    ("Offered rps", "throughput.offered_rps", "req/s"),
    ("Answered rps", "throughput.rps", "req/s"),
    ("Goodput rps", "throughput.goodput_rps", "req/s"),
    ("Answers/minute", "throughput.rpm", "req/min"),
    ("Window", "throughput.window_s", "s"),
)
BREAKER_ROWS = (
    ("Failure rate", "breaker.failure_rate", "fraction"),
    ("Avg response", "breaker.avg_response_ms", "ms"),
    ("Trips", "breaker.trips", "count"),
    ("Recovery time", "breaker.recovery_s", "s"),
)
OVERVIEW_ROWS = (
    ("Backend capacity", "backend.capacity", "slots"),
    ("Utilisation", "backend.utilization", "fraction"),
    ("Utilisation (whole run)", "backend.utilization_whole_run", "fraction"),
    ("Requests sent", "requests.sent", "count"),
    ("Seed", "seed", ""),
    ("Replication", "replication", ""),
    ("Simulated time", "sim_time_s", "s"),
)
LAST_TRANSITIONS = 3
# backend.model = "llm" (simrouter.llm_summary): a seventh panel, 🤖 LLM SERVING.
LLM_ROWS = (
    ("TTFT P50", "ttft_ms.p50", "ms"),
    ("TTFT P95", "ttft_ms.p95", "ms"),
    ("TTFT P99", "ttft_ms.p99", "ms"),
    ("TPOT P50", "tpot_ms.p50", "ms"),
    ("TPOT P95", "tpot_ms.p95", "ms"),
    ("ITL P50", "itl_ms.p50", "ms"),
    ("ITL P95", "itl_ms.p95", "ms"),
    ("Output tokens/s", "tokens.output_per_s", "tok/s"),
    ("Mean running seqs", "batch.mean_running", "count"),
    ("Mean waiting", "batch.mean_waiting", "count"),
    ("Preemptions", "batch.preemptions", "count"),
    ("Goodput (fraction)", "goodput.fraction", "fraction"),
    ("Goodput rps", "goodput.rps", "req/s"),
)


def target_colour(value, threshold, comparison: str) -> str:
    """"green" | "yellow" | "red" | "dim" for ``value`` against ``comparison threshold``."""
    if value is None or threshold is None or math.isinf(threshold):
        return "dim"
    if comparison == "<":
        if value >= threshold:
            return "red"
        return "yellow" if value >= threshold * (1 - NEAR_LIMIT) else "green"
    if threshold == 0:  # a minimum of 0 disables the target
        return "dim"
    if value <= threshold:
        return "red"
    return "yellow" if value <= threshold * (1 + NEAR_LIMIT) else "green"


def _colour_of(target: dict) -> str:
    if target["passed"] is None:
        return "dim"
    if target["passed"] is False:
        return "red"  # also when the figure is missing (a breaker that never re-closed)
    return target_colour(target["value"], target["threshold"], target["comparison"])


def _get(summary: dict, path: str):
    value = summary
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _fmt(value, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "fraction":
        return f"{value:.1%}"
    if unit in ("count", "slots", ""):
        return _count(value) if isinstance(value, (int, float)) else str(value)
    return f"{value:,.1f} {unit}"


def _not_measured(summary: dict, path: str) -> bool:
    """A figure the live target did not report (``live.not_measured``): shown as "not measured"."""
    return path in ((summary.get("live") or {}).get("not_measured") or ())


def _count(value: float) -> str:
    """A count; a mean of counts across replications keeps one decimal."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _threshold_text(target: dict, unit: bool = True) -> str:
    if target["threshold"] is None:
        return "—"
    limit = _fmt(target["threshold"], target["unit"] if unit or target["unit"] == "fraction" else "")
    return f"{target['comparison']} {limit}"


def _table(*columns: tuple[str, str], header: bool = True) -> Table:
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=header, header_style="dim")
    for index, (name, justify) in enumerate(columns):  # labels and figures never wrap
        table.add_column(name, justify=justify, no_wrap=index == 0 or justify == "right")
    return table


def _figures(summary: dict, rows, targets: dict, table: Table | None = None) -> Table:
    """Label, value and (when the figure has a target) the limit, coloured by the target."""
    table = table or _table(("", "left"), ("", "right"), ("target", "left"))
    for label, path, unit in rows:
        value = _get(summary, path)
        target = targets.get(path)
        text = "not measured" if value is None and _not_measured(summary, path) else _fmt(value, unit)
        interval = (summary.get("ci95") or {}).get(path)  # replicated runs: show the 95 % half-width
        if interval and value is not None:
            half = (interval[1] - interval[0]) / 2
            text += f" ± {half:.1%}" if unit == "fraction" else f" ± {half:,.1f}"
        if path == "breaker.recovery_s" and summary["breaker"].get("recovered") is False:
            text = "not recovered"
        style = _colour_of(target) if target else ""
        if label in HIGHLIGHTED:
            style = f"bold {style}".strip()
        limit = _threshold_text(target, unit=False) if target and target["threshold"] is not None else ""
        table.add_row(label, Text(text, style=style), Text(limit, style="dim"))
    return table


def _breaker(summary: dict, targets: dict) -> Group:
    breaker = summary["breaker"]
    health = Text("🟢 HEALTHY", style="bold green") if breaker["healthy"] else Text("🔴 UNHEALTHY", style="bold red")
    if breaker["healthy"] is None:  # a live target that does not report its breaker
        health = Text("not measured", style="dim")
    table = _table(("", "left"), ("", "right"), ("target", "left"))
    table.add_row("State", Text(breaker["state"].upper(), style="bold") if breaker["state"] is not None else Text("not measured", style="dim"), "")
    table.add_row("Health", health, "")
    parts = [_figures(summary, BREAKER_ROWS, targets, table)]
    transitions = (breaker["transitions"] or [])[-LAST_TRANSITIONS:]
    if summary.get("deployments"):  # behind a gateway: one breaker per deployment, each with its own log
        parts.append(Text("One breaker per deployment: the worst of them above, each in 🌐 DEPLOYMENTS.", style="dim"))
    if transitions:
        parts.append(Text(f"Last transitions ({len(transitions)} of {len(breaker['transitions'])}):", style="dim"))
        parts += [Text(f"  {tr['t']:8.1f} s  {tr['from']} → {tr['to']}") for tr in transitions]
    for item in summary.get("diagnosis") or ():  # simrouter.diagnosis: what is wrong, and why
        parts.append(Text(f"🩺 {item['code']}: {item['message']}", style="yellow"))
    parts.append(Text(f"💡 {breaker['recommendation']}", style="italic"))
    return Group(*parts)


STATE_MARKS = {"closed": ("🟢", "green"), "half_open": ("🟡", "yellow"), "open": ("🔴", "red")}


def breaker_state_text(state: str | None) -> Text:
    """A breaker state, marked and coloured as the breaker panel's health."""
    if state is None:
        return Text("not measured", style="dim")
    mark, colour = STATE_MARKS.get(state, ("⚪", ""))
    return Text(f"{mark} {state.replace('_', '-')}", style=f"bold {colour}".strip())


def recovery_verdict(breaker: dict, threshold: float | None) -> tuple[str, str]:
    """(text, colour) of one breaker's recovery against ``max_recovery_s`` (``threshold``;
    None: the target is off). ``recovered`` None: no fault found the breaker open, not
    checked; False: it never re-closed, which fails any finite target (as ``simrouter.targets``)."""
    recovered, seconds = breaker.get("recovered"), breaker.get("recovery_s")
    if recovered is None:
        return "—", "dim"
    if recovered is False or seconds is None:
        return ("never ❌ FAIL", "red") if threshold is not None else ("never", "dim")
    text = _fmt(seconds, "s")
    if threshold is None:
        return text, "dim"
    return (f"{text} ✅" if seconds < threshold else f"{text} ❌ FAIL"), target_colour(seconds, threshold, "<")


def recovery_threshold(targets: dict, index: int) -> float | None:
    """The recovery limit judged on deployment ``index``: its own gate
    (``deployments.N.breaker.recovery_s``, ``simrouter.targets``), else the run's."""
    target = targets.get(f"deployments.{index}.breaker.recovery_s") or targets.get("breaker.recovery_s") or {}
    return target.get("threshold")


def _share(part, whole) -> str:
    return f"{part / whole:.1%}" if whole else "—"


TRAFFIC_COLUMNS = (("deployment", "left"), ("share", "right"), ("attempts", "right"), ("success", "right"),
                   ("P95 ms", "right"), ("P99 ms", "right"), ("util", "right"))
BREAKER_COLUMNS = (("breaker", "left"), ("trips", "right"), ("recovery", "left"))


def _deployments(summary: dict, targets: dict, split: bool = False) -> Group:
    """One row per deployment; ``split`` (a narrow screen): traffic and breaker in two tables."""
    traffic = _table(*TRAFFIC_COLUMNS)
    breakers = _table(TRAFFIC_COLUMNS[0], *BREAKER_COLUMNS) if split else traffic
    if not split:
        for name, justify in BREAKER_COLUMNS:
            traffic.add_column(name, justify=justify, no_wrap=True)
    for index, deployment in enumerate(summary["deployments"]):
        # A live target may leave out what it does not measure: shown as "—" / "not measured".
        requests, latency, breaker = deployment["requests"], deployment.get("latency_ms") or {}, deployment.get("breaker") or {}
        latency_cells = []
        for name in ("p95", "p99"):
            target = targets.get(f"latency_ms.{name}")
            colour = target_colour(latency.get(name), target["threshold"], "<") if target else ""
            latency_cells.append(Text(_fmt(latency.get(name), ""), style=colour))
        recovery, colour = recovery_verdict(breaker, recovery_threshold(targets, index))
        name = Text(str(deployment["name"]), style="bold")
        row = [name, _fmt(deployment.get("share"), "fraction"), _count(requests["sent"]), _share(requests["succeeded"], requests["sent"]),
               *latency_cells, _fmt(deployment.get("utilisation"), "fraction")]
        breaker_row = [breaker_state_text(breaker.get("state")), _fmt(breaker.get("trips"), "count"), Text(recovery, style=colour)]
        if split:
            traffic.add_row(*row)
            breakers.add_row(name, *breaker_row)
        else:
            traffic.add_row(*row, *breaker_row)
    parts = [traffic, breakers] if split else [traffic]
    fallbacks = summary.get("fallbacks")
    if fallbacks:
        parts.append(Text(
            f"↪ Fallbacks: {_count(fallbacks['total'])} ({fallbacks['per_request']:.3f} per request), "
            f"{_count(fallbacks['succeeded_after_fallback'])} requests succeeded after a fallback",
            style="dim" if not fallbacks["total"] else ""))
    return Group(*parts)


def _errors(summary: dict, targets: dict) -> Table:
    requests = summary["requests"]
    table = _table(("kind", "left"), ("count", "right"), ("share", "right"))
    for kind, share in summary["error_rates"].items():
        style = "" if requests.get(kind) else "dim"
        table.add_row(kind.replace("_", " ").capitalize(), _count(requests.get(kind, 0)), f"{share:.1%}", style=style)
    target = targets.get("error_rate")
    style = f"bold {_colour_of(target)}" if target else "bold"
    table.add_row("All errors", _count(requests["sent"] - requests["succeeded"]), f"{summary['error_rate']:.1%}", style=style)
    return table


def _workload(config: dict | None) -> str:
    workload = (config or {}).get("workload")
    if not workload:
        return "—"
    model = workload["model"]
    if model == "open":
        if workload.get("stages"):
            return f"open, {len(workload['stages'])} stages, {workload['users']} user keys"
        return f"open, {workload['rate']:g} req/s ({workload['arrival']}), {workload['users']} user keys"
    users = 1 if model == "sequential" else workload["users"]
    per_user = workload.get("requests_per_user") or "until duration"
    return f"{model}, {users} user{'s' if users != 1 else ''} × {per_user} req"


def _overview(summary: dict, wall_time_s: float | None) -> Table:
    table = _table(("", "left"), ("", "left"), header=False)
    table.add_row("Scenario", Text(str(summary["scenario"]), style="bold"))
    table.add_row("Workload", _workload(summary.get("config")))
    for label, path, unit in OVERVIEW_ROWS:
        value = _get(summary, path)
        table.add_row(label, "not measured" if value is None and _not_measured(summary, path) else _fmt(value, unit))
    if wall_time_s is not None:
        wall = _fmt(wall_time_s, "s") if wall_time_s >= 1 else _fmt(wall_time_s * 1000, "ms")
        table.add_row("Wall time", wall)
    return table


def _targets(summary: dict) -> Table:
    table = _table(("target", "left"), ("limit", "right"), ("value", "right"), ("result", "left"))
    for target in summary["targets"]:
        colour = _colour_of(target)
        result = {True: "✅ PASS", False: "❌ FAIL", None: "not checked"}[target["passed"]]
        value = _fmt(target["value"], target["unit"])
        table.add_row(target["name"], _threshold_text(target), Text(value, style=colour), Text(result, style=f"bold {colour}"))
    return table


def _row(left, right, ratios=(1, 1)) -> Table:
    row = Table.grid(expand=True, padding=(0, 1))
    for ratio in ratios:
        row.add_column(ratio=ratio)
    row.add_row(left, right)
    return row


# Below this many columns the panels are stacked one per row instead of two.
TWO_COLUMN_WIDTH = 110


def render_dashboard(summary, *, wall_time_s: float | None = None, width: int | None = None, heading: str = "AI ROUTER SIMULATION") -> Group:
    """The dashboard of one summary dict (or a ``RunResult``, with its wall time) as a
    rich renderable; ``width`` (the console's) below ``TWO_COLUMN_WIDTH`` stacks the panels;
    ``heading`` opens the title line (the live watcher says "AI ROUTER LIVE")."""
    if hasattr(summary, "to_dict"):
        wall_time_s = summary.wall_time_s if wall_time_s is None else wall_time_s
        summary = summary.to_dict()
    targets = {t["metric"]: t for t in summary.get("targets", [])}
    panels = [
        ("📊 LATENCY METRICS", _figures(summary, LATENCY_ROWS, targets)),
        ("🚀 THROUGHPUT METRICS", _figures(summary, THROUGHPUT_ROWS, targets)),
        ("🛡️ CIRCUIT BREAKER STATUS", _breaker(summary, targets)),
        ("⚠️ ERROR TRACKING", _errors(summary, targets)),
        ("📈 SYSTEM OVERVIEW", _overview(summary, wall_time_s)),
        ("🎯 PERFORMANCE TARGETS", _targets(summary)),
    ]
    if "ttft_ms" in summary:
        panels.append(("🤖 LLM SERVING", _figures(summary, LLM_ROWS, targets)))
    boxes = [Panel(body, title=f"[bold]{title}[/]", title_align="left", border_style="blue") for title, body in panels]
    stacked = width is not None and width < TWO_COLUMN_WIDTH
    if stacked:
        rows = boxes
    else:
        # Two panels a row; the targets table gets the wider half of the last row.
        rows = [_row(boxes[0], boxes[1]), _row(boxes[2], boxes[3]), _row(boxes[4], boxes[5], ratios=(4, 7)), *boxes[6:]]
    if summary.get("deployments"):  # [[deployments]]: full width, under the breaker and errors panels
        box = Panel(_deployments(summary, targets, split=stacked), title="[bold]🌐 DEPLOYMENTS[/]", title_align="left", border_style="blue")
        rows.insert(4 if stacked else 2, box)
    passed = all(t["passed"] is not False for t in summary.get("targets", []))
    verdict = "[bold green]ALL TARGETS MET[/]" if passed else "[bold red]TARGETS MISSED[/]"
    title = f"[bold]{escape(heading)} — {escape(str(summary['scenario']))}[/] · {verdict}"
    return Group(Rule(title), *rows)


def print_dashboard(summary, console: Console | None = None, *, wall_time_s: float | None = None) -> None:
    """Print ``render_dashboard(summary)`` to ``console`` (a new one on stdout by default)."""
    console = console or Console()
    console.print(render_dashboard(summary, wall_time_s=wall_time_s, width=console.width))
