"""Sweep files: a base scenario and the grid of overrides to run it at.

A sweep file is TOML::

    scenario = "concurrent"     # built-in name, or a scenario file (relative to this file)
    seed = 1                    # replications 0..R-1 of this seed at every point
    replications = 5
    metrics = ["latency_ms.p95", "throughput.rps", "error_rate"]   # dotted summary keys

    [set]                       # fixed overrides, applied at every point
    workload.model = "open"
    limiter.algorithm = "none"

    [grid]                      # every combination (the last key varies fastest)
    backend.capacity = [4, 8, 16]
    workload.rate = { from = 50, to = 400, steps = 8 }   # evenly spaced, ends included

    [[points]]                  # and/or an explicit list of override sets
    breaker.open_duration = 10.0

Points are ``points x grid``: every listed point (or one empty point) combined
with every grid combination, in file order. A range ``{from, to, steps}`` gives
whole numbers when ``from`` and ``to`` are whole and the step divides evenly,
floats otherwise. Every point's scenario is built and validated when the file
is loaded, so a bad value is reported before anything runs, naming the field.

``metrics`` defaults to ``DEFAULT_METRICS``; each must be a key of a run's
summary (``simrouter config`` shows the scenario, ``run --json`` the summary).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Scenario, load_scenario
from .config.loader import read_toml_file
from .errors import ConfigError, unknown_key_message
from .replications import check_count, check_metrics

DEFAULT_METRICS = (
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "throughput.goodput_rps",
    "throughput.rps",
    "error_rate",
    "error_rates.rate_limited",
    "error_rates.breaker_rejected",
    "breaker.trips",
    "breaker.recovery_s",
    "breaker.recovered",  # 1/0 per run that tripped: its mean is the share that re-closed
    "backend.utilization",
)
TOP_LEVEL_KEYS = ("name", "scenario", "seed", "replications", "metrics", "set", "grid", "points")

__all__ = ["DEFAULT_METRICS", "Point", "SweepSpec", "load_sweep", "sweep_from_dict", "toml_value"]


@dataclass(frozen=True)
class Point:
    """One configuration of the sweep: its index, its overrides and its scenario."""

    index: int
    values: dict[str, Any]  # dotted key -> value, the swept keys only
    scenario: Scenario

    def overrides(self) -> list[str]:
        return _overrides(self.values)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: points, replications per point, seed, metrics."""

    name: str
    points: list[Point]
    keys: list[str]  # every swept dotted key, in file order
    seed: int = 1
    replications: int = 5
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))

    @property
    def runs(self) -> int:
        return len(self.points) * self.replications


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file."""
    path = Path(path)
    data = read_toml_file(path, "sweep file")
    return sweep_from_dict(data, base_dir=path.parent, default_name=path.stem)


def sweep_from_dict(data: dict, base_dir: Path | None = None, default_name: str = "sweep") -> SweepSpec:
    """Validate a sweep given as a plain dict (as TOML gives)."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(key, unknown_key_message(key, TOP_LEVEL_KEYS, "the sweep file"))
    if "scenario" not in data:
        raise ConfigError("scenario", "required: a built-in scenario name or a scenario TOML file")
    source = data["scenario"]
    if not isinstance(source, str):
        raise ConfigError("scenario", f"expected a built-in scenario name or a file path, got {source!r}")
    if base_dir is not None and (source.endswith(".toml") or (base_dir / source).exists()):
        source = str(base_dir / source)
    seed = data.get("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError("seed", f"expected a whole number >= 0, got {seed!r}")
    replications = data.get("replications", 5)
    check_count(replications, "replications", 1)
    metrics = data.get("metrics", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics) or not metrics:
        raise ConfigError("metrics", f"expected a non-empty list of dotted summary keys, e.g. [\"latency_ms.p95\"], got {metrics!r}")
    check_metrics(metrics, "metrics")
    name = data.get("name", default_name)
    if not isinstance(name, str):
        raise ConfigError("name", f"expected a string, got {name!r}")

    fixed = _overrides(_dotted(_table(data.get("set", {}), "set")))
    grid = _grid(_dotted(_table(data.get("grid", {}), "grid")))
    listed = _listed_points(data.get("points", [{}]))
    keys = list(dict.fromkeys([*(k for p in listed for k in p), *grid]))
    points = []
    for listed_values, combination in itertools.product(listed, itertools.product(*grid.values())):
        values = {**listed_values, **dict(zip(grid, combination))}
        index = len(points)
        overrides = _overrides(values)
        try:
            # [set] and the point's values together: only the whole may need to be consistent.
            scenario = load_scenario(source, [*fixed, *overrides])
        except ConfigError as exc:
            raise ConfigError(exc.field, f"{exc.message} (sweep point {index}: {', '.join(overrides)})") from None
        points.append(Point(index, values, scenario))
    return SweepSpec(name, points, keys, seed, replications, list(metrics))


def _table(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(field, f"expected a table ([{field}]) of dotted keys, got {value!r}")
    return value


def _is_range(value: Any) -> bool:
    return isinstance(value, dict) and ("from" in value or "to" in value or "steps" in value)


def _dotted(table: dict, prefix: str = "") -> dict[str, Any]:
    """Nested TOML tables flattened to dotted keys; a range ``{from, to, steps}`` and a
    distribution ``{dist = ...}`` are values, kept whole."""
    flat = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_range(value) and "dist" not in value:
            flat.update(_dotted(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


def _grid(flat: dict[str, Any]) -> dict[str, list]:
    grid = {}
    for key, value in flat.items():
        field = f"grid.{key}"
        if _is_range(value):
            grid[key] = _range(value, field)
        elif isinstance(value, list) and value:
            grid[key] = value
        else:
            raise ConfigError(field, f"expected a non-empty list of values or {{from = ..., to = ..., steps = ...}}, got {value!r}")
    return grid


def _range(spec: dict, field: str) -> list:
    for key in spec:
        if key not in ("from", "to", "steps"):
            raise ConfigError(f"{field}.{key}", unknown_key_message(key, ("from", "to", "steps"), "a range"))
    for key in ("from", "to"):
        if key not in spec:
            raise ConfigError(f"{field}.{key}", "required in a range {from, to, steps}")
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{field}.{key}", f"expected a finite number, got {value!r}")
    steps = spec.get("steps")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"{field}.steps", f"expected a whole number >= 2 (values from 'from' to 'to', both included), got {steps!r}")
    low, high = spec["from"], spec["to"]
    if isinstance(low, int) and isinstance(high, int) and (high - low) % (steps - 1) == 0:
        step = (high - low) // (steps - 1)
        return [low + i * step for i in range(steps)]
    # The last value is ``to`` itself: low + (high - low) can round past it (0.19 .. 1.0
    # would end at 1.0000000000000002, which a probability field rejects).
    return [low + (high - low) * i / (steps - 1) for i in range(steps - 1)] + [high]


def _listed_points(points: Any) -> list[dict[str, Any]]:
    if not isinstance(points, list) or not points:
        raise ConfigError("points", f"expected a non-empty array of tables [[points]], got {points!r}")
    listed = []
    for index, point in enumerate(points):
        listed.append(_dotted(_table(point, f"points.{index}")))
    return listed


def _overrides(values: dict[str, Any]) -> list[str]:
    """``--set`` items (``key=value``) for dotted keys and their values."""
    return [f"{key}={toml_value(value)}" for key, value in values.items()]


def toml_value(value: Any) -> str:
    """``value`` written as a TOML inline value, as ``--set`` reads it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        import json

        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise ConfigError("", f"cannot write {value!r} as a TOML value")  # pragma: no cover
