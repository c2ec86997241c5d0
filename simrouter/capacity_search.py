"""The capacity question: the highest load (or the fewest slots) that still meets every target.

``capacity(scenario, vary, (lo, hi), replications=R)`` bisects one parameter
(a dotted scenario key: ``workload.rate``, ``workload.users``,
``backend.capacity``, ...) over ``[lo, hi]``, assuming the targets are monotone
in it:

* load-like parameters (anything not in ``MIN_PASSING``): the targets pass at
  low values and fail at high ones; the answer is ``max_passing``, the largest
  probed value that passed;
* capacity-like parameters (``MIN_PASSING``: ``backend.capacity``,
  ``backend.max_num_seqs``, ``backend.queue_limit``, ``limiter.max_in_flight``):
  they pass at high values; the answer is ``min_passing``, the smallest probed
  value that passed.

Each probe runs ``replications`` replications of the scenario with
``vary=value`` (``simrouter.replications.replicate``) with the SAME seed:
probes share their random numbers replication by replication (common random
numbers), so neighbouring probes differ by the parameter, not by noise. A probe
passes when every checked target passes on the replications' summary of means
(pooled latency percentiles: ``ReplicatedResult.passed``). Both ends are probed
first; then the bracket [last passing, first failing] is halved until it is no
wider than ``tolerance`` (default: 1 for a whole-number parameter, 1 % of
``hi - lo`` otherwise). If the passing end fails, there is no answer (None);
if the failing end passes, the answer is that end (``note`` says the range is
too narrow).

The result (``CapacityResult.to_dict()``, what ``simrouter capacity --json``
writes)::

    {"parameter", "max_passing" | "min_passing", "ci95": [low, high], "tolerance",
     "binding_target", "replications", "seed", "range", "note",
     "probes": [{"value", "passed", "targets": [{"name", "metric", "comparison",
                 "threshold", "value", "ci95", "passed"}]}, ...]}

``ci95``: from the probes' own 95 % intervals: from the probe nearest the
answer (on its passing side) whose every checked target passes with its whole
interval, to the probe nearest it (on the failing side) where some target fails
with its whole interval; an end with no such probe is the range's end. The
answer moves by less than this if the experiment were repeated with other seeds.
``binding_target``: the target that fails at the failing end of the final
bracket (the largest violation relative to its threshold when several do).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import Scenario, load_scenario
from .errors import ConfigError
from .replications import replicate

MIN_PASSING = ("backend.capacity", "backend.max_num_seqs", "backend.queue_limit", "limiter.max_in_flight")
DEFAULT_REPLICATIONS = 5
DEFAULT_RELATIVE_TOLERANCE = 0.01


@dataclass
class CapacityResult:
    """What ``capacity`` found (module doc)."""

    scenario: Scenario
    parameter: str
    direction: str  # "max" (load-like) or "min" (capacity-like)
    answer: float | None
    ci95: list | None
    tolerance: float
    binding_target: str | None
    replications: int
    seed: int
    range: tuple[float, float]
    probes: list[dict] = field(default_factory=list)
    note: str = ""

    @property
    def key(self) -> str:
        return "max_passing" if self.direction == "max" else "min_passing"

    def to_dict(self) -> dict:
        from .result import strict_json

        return strict_json(
            {
                "scenario": self.scenario.name,
                "parameter": self.parameter,
                self.key: self.answer,
                "ci95": self.ci95,
                "tolerance": self.tolerance,
                "binding_target": self.binding_target,
                "replications": self.replications,
                "seed": self.seed,
                "range": list(self.range),
                "note": self.note,
                "probes": sorted(self.probes, key=lambda probe: probe["value"]),
            }
        )


def parse_range(text: str) -> tuple[float, float]:
    """``"LO:HI"`` -> (lo, hi), lo < hi; else ConfigError naming --range."""
    parts = text.split(":")
    try:
        lo, hi = (float(part) for part in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None or not (math.isfinite(lo) and math.isfinite(hi)) or not lo < hi:
        raise ConfigError("--range", f"expected LO:HI with LO < HI, two finite numbers (e.g. 10:200), got {text!r}")
    return lo, hi


def _current_value(scenario: Scenario, dotted: str):
    node = scenario.to_dict()
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ConfigError("--vary", f"{dotted!r} is not a key of the scenario (e.g. workload.rate, workload.users, backend.capacity)")
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, (int, float)):
        raise ConfigError("--vary", f"{dotted} must be a number to search over, it is {node!r}")
    return node


def _side_of(target: dict, interval) -> str | None:
    """"pass" / "fail" when the target's whole 95 % interval is on that side of its threshold."""
    threshold = target["threshold"]
    if interval is None or threshold is None or target["passed"] is None:
        return None
    low, high = interval
    if target["comparison"] == "<":
        return "pass" if high < threshold else "fail" if low >= threshold else None
    return "pass" if low > threshold else "fail" if high <= threshold else None


def _violation(target: dict) -> float:
    value, threshold = target["value"], target["threshold"]
    if value is None or not threshold:
        return math.inf
    return value / threshold if target["comparison"] == "<" else threshold / max(value, 1e-300)


def capacity(
    scenario: Scenario | str | Path,
    vary: str,
    range: tuple[float, float] | str,
    replications: int = DEFAULT_REPLICATIONS,
    *,
    seed: int = 1,
    tolerance: float | None = None,
    overrides=(),
    direction: str | None = None,
    executor=None,
    on_probe: Callable[[dict], None] | None = None,
) -> CapacityResult:
    """Bisect ``vary`` over ``range`` (module doc). ``direction``: "max" or "min"
    (default: "min" for ``MIN_PASSING`` parameters, else "max"). ``on_probe(probe)``
    is called after each probe."""
    scenario = load_scenario(scenario, overrides)
    lo, hi = parse_range(range) if isinstance(range, str) else (float(range[0]), float(range[1]))
    if not lo < hi:
        raise ConfigError("--range", f"expected LO < HI, got {lo}:{hi}")
    integer = isinstance(_current_value(scenario, vary), int)
    if integer:
        if lo != math.floor(lo) or hi != math.floor(hi):
            raise ConfigError("--range", f"{vary} is a whole number: give whole-number ends, got {lo:g}:{hi:g}")
        lo, hi = int(lo), int(hi)
    direction = direction or ("min" if vary in MIN_PASSING else "max")
    if direction not in ("max", "min"):
        raise ConfigError("direction", f"expected 'max' or 'min', got {direction!r}")
    if tolerance is None:
        tolerance = 1 if integer else DEFAULT_RELATIVE_TOLERANCE * (hi - lo)
    if not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ConfigError("--tolerance", f"expected a bracket width > 0 in the parameter's unit, got {tolerance!r}")

    probes: dict[float, dict] = {}

    def probe(value) -> bool:
        variant = scenario.replace([f"{vary}={value!r}"])
        result = replicate(variant, seed, replications=replications, executor=executor)
        summary = result.summary
        targets = [
            {**{k: t[k] for k in ("name", "metric", "comparison", "threshold", "value", "passed")}, "ci95": summary["ci95"].get(t["metric"])}
            for t in summary["targets"]
        ]
        record = {"value": value, "passed": result.passed, "targets": targets, "diagnosis": [d["code"] for d in summary.get("diagnosis", [])]}
        probes[value] = record
        if on_probe is not None:
            on_probe(record)
        return record["passed"]

    good, bad = (lo, hi) if direction == "max" else (hi, lo)
    note = ""
    if not probe(good):
        note = f"the targets fail already at {vary} = {good:g}: no value in the range passes"
        answer = None
    elif probe(bad):
        note = f"the targets still pass at {vary} = {bad:g}: the answer lies beyond the range; widen --range"
        answer = bad
    else:
        while abs(bad - good) > tolerance:
            middle = (good + bad) // 2 if integer else (good + bad) / 2
            if middle in (good, bad):
                break
            if probe(middle):
                good = middle
            else:
                bad = middle
        answer = good

    binding = None
    failing = probes.get(bad)
    if answer is not None and failing is not None and not failing["passed"]:
        failed = [t for t in failing["targets"] if t["passed"] is False]
        binding = max(failed, key=_violation)["name"] if failed else None
    ci95 = _interval(probes, answer, direction, (lo, hi)) if answer is not None else None
    return CapacityResult(scenario, vary, direction, answer, ci95, tolerance, binding, replications, seed, (lo, hi), list(probes.values()), note)


def _interval(probes: dict, answer, direction: str, bounds: tuple) -> list:
    """``ci95`` of the answer (module doc)."""
    def sure(record: dict, side: str) -> bool:
        sides = [_side_of(t, t["ci95"]) for t in record["targets"] if t["passed"] is not None]
        return all(s == "pass" for s in sides) if side == "pass" else any(s == "fail" for s in sides)

    values = sorted(probes)
    if direction == "max":
        passing = [v for v in values if v <= answer and sure(probes[v], "pass")]
        failing = [v for v in values if v > answer and sure(probes[v], "fail")]
        return [passing[-1] if passing else bounds[0], failing[0] if failing else bounds[1]]
    failing = [v for v in values if v < answer and sure(probes[v], "fail")]
    passing = [v for v in values if v >= answer and sure(probes[v], "pass")]
    return [failing[-1] if failing else bounds[0], passing[0] if passing else bounds[1]]
