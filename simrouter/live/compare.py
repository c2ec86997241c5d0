"""Simulation against a live run of the same scenario, metric by metric.

``compare(scenario, seed, replications=R, target=None)``:

1. simulates replications ``0 .. R-1`` of ``seed`` (``replicate(..., replications=R)``);
2. runs the scenario live (``run_live``) against ``target``, or, when none is
   given, against ``simrouter serve`` started as a subprocess on a free loopback
   port with the same scenario and seed;
3. returns a ``LiveComparison``: one row per metric with the simulated mean, its
   Student-t confidence interval (the mean's uncertainty), the prediction
   interval for ONE run (``mean -/+ t * s * sqrt(1 + 1/R)``: where a single live
   run should fall if the model is right), the live figure, the relative
   difference ``(live - mean) / |mean|`` and ``inside`` (live within the
   prediction interval).

The live generator runs with ``seed`` (``options.seed`` is replaced): its
arrivals, keys and think times are replication 0's. When the service was
started here, it also draws the same backend random numbers as simulated
replication 0 (same seed, same streams: common random numbers), so
``sim_paired`` (replication 0's figure) differs from the live one
by what the real clock adds (HTTP, event loop, timers), not by chance.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import select
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Scenario, load_scenario
from ..errors import ConfigError
from ..outcomes import KIND_NAMES
from ..stats import DEFAULT_LEVEL, t_interval
from .loadgen import LiveOptions, run_live
from .tomlfile import scenario_toml

DEFAULT_REPLICATIONS = 5
BASE_METRICS = (
    ("latency_ms.p50", "ms"),
    ("latency_ms.p90", "ms"),
    ("latency_ms.p95", "ms"),
    ("latency_ms.p99", "ms"),
    ("latency_ms.avg", "ms"),
    ("throughput.rps", "req/s"),
    ("error_rate", "fraction"),
)
STARTUP_TIMEOUT_S = 60.0


def _get(summary: dict, dotted: str):
    value = summary
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class ComparisonRow:
    metric: str
    unit: str
    sim_mean: float | None
    ci_low: float | None
    ci_high: float | None
    pi_low: float | None
    pi_high: float | None
    sim_paired: float | None
    live: float | None
    rel_diff: float | None
    inside: bool | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def prediction_interval(values: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float] | None:
    """Where one more run falls with probability ``level`` (i.i.d. normal runs)."""
    interval = t_interval(values, level)
    if interval is None:
        return None
    half = interval.half_width * math.sqrt(values.size + 1)  # t s / sqrt(n) -> t s sqrt(1 + 1/n)
    return interval.mean - half, interval.mean + half


def compared_metrics(scenario: Scenario, summaries: list[dict], live: dict) -> list[tuple[str, str]]:
    """The base metrics, each error kind either side saw, and the breaker's when faults are injected."""
    metrics = list(BASE_METRICS)
    for name in KIND_NAMES[1:]:
        key = f"error_rates.{name}"
        if any(_get(s, key) for s in summaries) or _get(live, key):
            metrics.append((key, "fraction"))
    if scenario.faults:
        metrics += [("breaker.trips", "count"), ("breaker.recovery_s", "s")]
    return metrics


def comparison_rows(scenario: Scenario, summaries: list[dict], live: dict, paired: dict | None, level: float = DEFAULT_LEVEL) -> list[ComparisonRow]:
    rows = []
    for key, unit in compared_metrics(scenario, summaries, live):
        values = np.array([v for v in (_get(s, key) for s in summaries) if v is not None], dtype=float)
        mean = float(values.mean()) if values.size else None
        ci = t_interval(values, level)
        pi = prediction_interval(values, level)
        # Every compared figure is >= 0: an interval reaching below 0 is cut there.
        ci_low = None if ci is None else max(0.0, ci.low)
        pi = None if pi is None else (max(0.0, pi[0]), pi[1])
        live_value = _get(live, key)
        rel = None
        if mean is not None and live_value is not None and mean != 0:
            rel = (live_value - mean) / abs(mean)
        inside = None if pi is None or live_value is None else bool(pi[0] <= live_value <= pi[1])
        rows.append(
            ComparisonRow(
                key, unit, mean,
                ci_low, ci.high if ci else None,
                pi[0] if pi else None, pi[1] if pi else None,
                _get(paired, key) if paired else None,
                live_value, rel, inside,
            )
        )
    return rows


@dataclass(eq=False)
class LiveComparison:
    """The side-by-side table, and the runs behind it."""

    scenario: Scenario
    seed: int
    replications: int
    level: float
    target: str
    rows: list[ComparisonRow]
    live: object  # LiveResult
    sim_summaries: list[dict] = field(repr=False)

    def row(self, metric: str) -> ComparisonRow:
        return next(r for r in self.rows if r.metric == metric)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.rows])

    def to_dict(self) -> dict:
        from ..result import strict_json

        return strict_json(
            {
                "scenario": self.scenario.name,
                "seed": self.seed,
                "replications": self.replications,
                "level": self.level,
                "target": self.target,
                "interval": "prediction interval for one run: mean -/+ t(R-1) * s * sqrt(1 + 1/R)",
                "rows": [r.to_dict() for r in self.rows],
                "live": self.live.to_dict(),
                "config": self.scenario.to_dict(),
            }
        )


@contextmanager
def serve_subprocess(scenario: Scenario, seed: int = 1, admin_token: str | None = None):
    """``simrouter serve`` for ``scenario`` on a free loopback port: yields (url, token)."""
    token = admin_token or secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="simrouter-compare-") as folder:
        config = Path(folder) / "scenario.toml"
        config.write_text(scenario_toml(_absolute_files(scenario.to_dict()), "written by simrouter compare"))
        command = [sys.executable, "-m", "simrouter", "serve", "--config", str(config), "--port", "0", "--seed", str(seed)]
        env = {**os.environ, "SIMROUTER_ADMIN_TOKEN": token}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            yield _read_url(process), token
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            process.stdout.close()
            process.stderr.close()


def _absolute_files(value):
    """A scenario dict with every empirical distribution's ``file`` made absolute: the
    copy is read from another folder, and a relative path was relative to this one."""
    if isinstance(value, list):
        return [_absolute_files(v) for v in value]
    if not isinstance(value, dict):
        return value
    value = {k: _absolute_files(v) for k, v in value.items()}
    if value.get("dist") == "empirical" and "file" in value:
        value["file"] = str(Path(value["file"]).resolve())
    return value


def _read_url(process: subprocess.Popen) -> str:
    ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
    line = process.stdout.readline() if ready else ""
    marker = "listening on "
    if marker not in line:
        process.kill()
        error = process.stderr.read().strip().splitlines()
        raise ConfigError("compare", f"simrouter serve did not start: {error[-1] if error else 'no output'}")
    return line.split(marker, 1)[1].split()[0]


def compare(
    scenario: Scenario | str,
    seed: int = 1,
    replications: int = DEFAULT_REPLICATIONS,
    target: str | None = None,
    options: LiveOptions | None = None,
    level: float = DEFAULT_LEVEL,
    overrides=(),
) -> LiveComparison:
    """Simulate ``replications`` runs and one live run of ``scenario``; compare them."""
    from ..replications import replicate

    scenario = load_scenario(scenario, overrides)
    if replications < 2:
        raise ConfigError("--replications", f"expected at least 2 (an interval needs two runs), got {replications}")
    simulated = replicate(scenario, seed=seed, replications=replications)
    summaries = list(simulated.summaries)
    options = dataclasses.replace(options or LiveOptions(), seed=seed)
    if target is None:
        with serve_subprocess(scenario, seed, options.admin_token) as (url, token):
            live = run_live(scenario, url, dataclasses.replace(options, admin_token=token))
        paired = summaries[0]
        target = url
    else:
        live = run_live(scenario, target, options)
        paired = None
    rows = comparison_rows(scenario, summaries, live.summary, paired, level)
    return LiveComparison(scenario, seed, len(summaries), level, target, rows, live, summaries)


def render_table(comparison: LiveComparison):
    """A rich Table of the comparison."""
    from rich.table import Table

    title = f"{comparison.scenario.name}: simulated ({comparison.replications} replications) vs live ({comparison.target})"
    caption = f"+/-: {comparison.level:.0%} CI of the mean. PI: where one run should fall."
    if any(r.sim_paired is not None for r in comparison.rows):
        caption += " paired: replication 0 (same random numbers as the live service)."
    table = Table(title=title, caption=caption)
    for name in ("metric", "simulated +/-", "one-run PI", "paired", "live", "diff", "in PI"):
        table.add_column(name, justify="left" if name == "metric" else "right", no_wrap=True)

    def fmt(value, unit):
        if value is None:
            return "-"
        return f"{value:.2%}" if unit == "fraction" else f"{value:,.1f}"

    def _label(metric, unit):
        name = metric.rsplit(".", 1)[-1].replace("_", " ")
        return f"{name} ({unit})" if unit in ("ms", "s", "req/s") else name

    for r in comparison.rows:
        mean = fmt(r.sim_mean, r.unit) + ("" if r.ci_low is None else f" +/- {fmt((r.ci_high - r.ci_low) / 2, r.unit)}")
        pi = "-" if r.pi_low is None else f"{fmt(r.pi_low, r.unit)}..{fmt(r.pi_high, r.unit)}"
        rel = "-" if r.rel_diff is None else f"{r.rel_diff:+.1%}"
        inside = {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[r.inside]
        table.add_row(_label(r.metric, r.unit), mean, pi, fmt(r.sim_paired, r.unit), fmt(r.live, r.unit), rel, inside)
    return table
