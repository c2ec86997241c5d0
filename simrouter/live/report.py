"""Terminal report of a live run: the simulation's dashboard plus a live panel
(corrected vs uncorrected latency, schedule, what limited the run, transport
errors, notes) and, for the openai protocols, token timing (TTFT corrected and
uncorrected, inter-token latency, time per output token), tokens, error codes and
rate-limit headers. Figures the target did not report read "not measured"."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ..report import print_dashboard


def live_panel(result) -> Panel:
    live = result.summary["live"]
    table = Table(box=None, padding=(0, 1), pad_edge=False)
    table.add_column("latency (ms)")
    for key in ("p50", "p95", "p99", "p99_9", "max"):
        table.add_column(key.replace("_", "."), justify="right")
    rows = [("from intended send (corrected)", live["latency_ms_corrected"]), ("from actual send", live["latency_ms_uncorrected"])]
    summary = result.summary
    if live.get("protocol") in ("openai-chat", "openai-completions"):
        rows += [
            ("TTFT, from intended send", live["ttft_ms_corrected"]),
            ("TTFT, from actual send", live["ttft_ms_uncorrected"]),
            ("inter-token latency", summary["itl_ms"]),
            ("time per output token", summary["tpot_ms"]),
        ]
    for label, stats in rows:
        table.add_row(label, *(("-" if stats.get(k) is None else f"{stats[k]:.1f}") for k in ("p50", "p95", "p99", "p99_9", "max")))
    schedule = live["schedule"]
    lines = [
        f"target {live['target']}   breaker from: {live['breaker_source']}   cut short: {'YES' if live['cut_short'] else 'no'}",
        f"arrivals {schedule['arrivals']}, sent {schedule['sent']}, dropped {schedule['dropped']}, "
        f"late (> {schedule['late_threshold_ms']:g} ms) {schedule['late']}, max lag {schedule['max_lag_ms']:.1f} ms",
        "transport errors: " + ", ".join(f"{k} {v}" for k, v in live["transport_errors"].items()),
    ]
    generator = live.get("generator") or {}
    if generator:
        lag, wait = generator.get("scheduler_lag_ms"), generator.get("pool_wait_ms")
        late_by = generator["late_by"]
        lags = "" if lag is None else f"scheduler lag p99 {lag['p99'] or 0:.1f} ms, pool wait p99 {wait['p99'] or 0:.1f} ms; "
        lines.append(
            f"generator: {lags}late by scheduler {late_by['scheduler']}, by pool {late_by['pool']}; "
            f"limited by: {generator['limited_by'] or 'nothing'}; CPU {generator['cpu_share']:.0%} of a core"
        )
    tokens = summary.get("tokens") or {}
    if tokens.get("output") is not None:
        rate = "-" if tokens["output_per_s"] is None else f"{tokens['output_per_s']:,.1f}"
        prompt = "-" if tokens["prompt"] is None else f"{tokens['prompt']:,}"
        lines.append(f"tokens: output {tokens['output']:,} ({rate}/s, {tokens['source']}), prompt {prompt}")
    if live.get("error_codes"):
        lines.append("error codes: " + ", ".join(f"{k} {v}" for k, v in sorted(live["error_codes"].items())))
    limits = live.get("rate_limits") or {}
    retry = limits.get("retry_after_s") or {}
    if retry.get("count"):
        lines.append(f"Retry-After on {retry['count']} answers: {retry['min']:g}..{retry['max']:g} s")
    if (limits.get("x_ratelimit") or {}).get("count"):
        last = limits["x_ratelimit"]["last"]
        lines.append(f"x-ratelimit-* on {limits['x_ratelimit']['count']} answers; last: " + ", ".join(f"{k}={v}" for k, v in sorted(last.items())))
    if live.get("not_measured"):
        lines.append("not measured (the target does not report them): " + ", ".join(live["not_measured"]))
    lines += [f"note: {note}" for note in live["notes"]]
    from rich.console import Group

    return Panel(Group(table, *lines), title="LIVE RUN", border_style="cyan")


def print_live(result, console: Console | None = None) -> None:
    console = console or Console()
    print_dashboard(result, console)
    console.print(live_panel(result))
