"""Terminal report of a live run: the simulation's dashboard plus a live panel
(corrected vs uncorrected latency, schedule, transport errors, notes)."""

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
    for label, key in (("from intended send (corrected)", "latency_ms_corrected"), ("from actual send", "latency_ms_uncorrected")):
        stats = live[key]
        table.add_row(label, *(("-" if stats[k] is None else f"{stats[k]:.1f}") for k in ("p50", "p95", "p99", "p99_9", "max")))
    schedule = live["schedule"]
    lines = [
        f"target {live['target']}   breaker from: {live['breaker_source']}   cut short: {'YES' if live['cut_short'] else 'no'}",
        f"arrivals {schedule['arrivals']}, sent {schedule['sent']}, dropped {schedule['dropped']}, "
        f"late (> {schedule['late_threshold_ms']:g} ms) {schedule['late']}, max lag {schedule['max_lag_ms']:.1f} ms",
        "transport errors: " + ", ".join(f"{k} {v}" for k, v in live["transport_errors"].items()),
    ]
    lines += [f"note: {note}" for note in live["notes"]]
    from rich.console import Group

    return Panel(Group(table, *lines), title="LIVE RUN", border_style="cyan")


def print_live(result, console: Console | None = None) -> None:
    console = console or Console()
    print_dashboard(result, console)
    console.print(live_panel(result))
