"""Simulation against a live run of the same scenario, metric by metric.

``compare(scenario, seed, replications=R, target=None)``:

1. simulates replications ``0 .. R-1`` of ``seed`` (``replicate(..., replications=R)``);
2. runs the scenario live (``run_live``) against ``target``, or, when none is
   given, against ``simrouter serve`` started as a subprocess on a free loopback
   port with the same scenario and seed;
3. returns a ``LiveComparison``: one row per metric with the simulated mean, its
   Student-t confidence interval (the mean's uncertainty, at ``level``), the
   prediction interval for ONE run (where a single live run should fall if the
   model is right), the live figure, the relative difference
   ``(live - mean) / |mean|``, ``inside`` (live within the prediction interval)
   and a ``verdict``.

How the verdict is reached (``comparison_rows``):

* **Prediction interval**: ``mean -/+ t(n-1) * sqrt(s^2 (1 + 1/n) + se_live^2)``
  over the ``n`` replications that have the figure: the spread of one more
  simulated run, plus the live figure's own sampling error ``se_live``
  (``live_standard_error``: order statistics for a percentile, s / sqrt(N) for
  the mean, Poisson for throughput and breaker trips, binomial with half an
  event added for a rate). So replications that happen to agree (every one
  with 0 errors) do not give a zero-width interval that any live error falls
  outside. Every figure is >= 0: an interval is cut at 0.
* **Many rows**: the table has about ten rows. At 95 % each, about one "no" in
  twenty rows is expected by chance when the model is right. ``adjust =
  "bonferroni"`` (the default) widens each row's prediction interval to level
  ``1 - (1 - level) / rows``, so the chance of ANY "no" in a table whose model is
  right is at most ``1 - level``; ``adjust = "none"`` keeps ``level`` per row
  (then expect ``rows x (1 - level)`` "no" by chance). The confidence interval of
  the mean is always at ``level``.
* **verdict**: ``"no"`` when the live figure is outside the interval;
  ``"inconclusive"`` when it is inside but the interval's half-width exceeds
  ``WIDE`` (50 %) of the simulated mean (for rates, of max(mean, 1 percentage
  point); for counts, of max(mean, 1)): a "yes" with a 38-464 ms interval for a
  P99 is no evidence; ``"yes"`` otherwise; None when there is no interval
  (fewer than two replications have the figure, or no live figure).
* **Never recovered**: ``breaker.recovery_s`` is None in a run whose breaker
  never closed again after a fault. Such runs are counted
  (``sim_not_recovered``, ``live_not_recovered``), not dropped: a live run
  that never recovered gets "yes" if some replication did not either, else
  "no"; a live run that recovered gets "no" if no replication did, else the
  interval verdict over the replications that recovered.
* **Behind a gateway** (``[[deployments]]``): the rows add each deployment's
  ``deployments.NAME.share`` (of the routed attempts) and, for each deployment
  that sees a fault window (its own or a top-level one),
  ``deployments.NAME.breaker.recovery_s``, judged as the rows above (never
  recovered included); the run-wide breaker rows are left out (its figures are
  the deployments'). The live figures are the live summary's ``deployments``
  (``LiveResult``: the target's ``/metrics`` section, simrouter's serve counts
  each attempt), so they describe every request of the run, without a
  warm-up cut.
* **One percentile definition**: the simulation's latency percentiles are
  numpy's linear interpolation over the run's latencies. The live summary's
  are HdrHistogram's (nearest rank, 3 significant digits: at n = 20 the two
  P50s differ by ~9 %). The comparison recomputes the live latency figures
  from the live run's per-request latencies (``LiveResult.latencies()``) with
  the simulation's function (``metrics.latency_stats``), so both sides use one
  definition; the HDR figures stay in the live run's own JSON.

**LLM rows** (``backend.model = "llm"``, served by ``serve --protocol openai``
with the batching model in real time; ``request.protocol`` must be an openai
one and the stream on for ITL): ``ttft_ms``, ``itl_ms`` and ``tpot_ms`` P50 and
P95 (``LLM_METRICS``). Their simulated figure is the percentile of the
replications' samples pooled and their confidence interval the sectioning one
(``ReplicatedResult.interval``, as ``simrouter run --replications`` reports
them); the prediction interval is centred on the pooled figure. The live
figures are recomputed from the live run's samples (``LiveResult.token_timing``)
with the simulation's definitions: linear interpolation for TTFT and TPOT, the
inverted CDF for ITL (``llm_summary.weighted_percentiles``).
``service_overhead`` reports what the service itself adds: the steps' lag
behind their deadlines as the live engine measured it (``/metrics``
``service.llm.step_lag_ms``) and, when the service was started here, live
minus paired (replication 0, same arrivals and tokens) for each LLM row.

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
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as scipy_t

from ..config import Scenario, load_scenario
from ..errors import ConfigError
from ..outcomes import KIND_NAMES
from ..metrics import latency_stats
from ..stats import DEFAULT_LEVEL, Interval, t_interval
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
# backend.model = "llm": the token timings (module docstring)
LLM_METRICS = tuple((f"{figure}.{p}", "ms") for figure in ("ttft_ms", "itl_ms", "tpot_ms") for p in ("p50", "p95"))
LLM_PROTOCOLS = ("openai-chat", "openai-completions")
STARTUP_TIMEOUT_S = 60.0
ADJUSTMENTS = ("bonferroni", "none")
WIDE = 0.5  # an interval whose half-width exceeds this share of the mean tells nothing
SCALE_FLOOR = {"fraction": 0.01, "count": 1.0}  # ... of max(mean, floor) for rates and counts
RECOVERY = "breaker.recovery_s"
DEPLOYMENTS = "deployments"  # rows deployments.NAME.share and deployments.NAME.breaker.recovery_s
# The router's breaker seen from outside through simrouter proxy (simrouter.live.observed_breaker),
# next to the simulated breaker's recovery.
OBSERVED_RECOVERY = "breaker.observed_recovery_s"
OBSERVED_SOURCE = "live.faults.observed_breaker.observed_recovery_s"


def _get(summary: dict, dotted: str):
    """The number at ``dotted`` in ``summary`` (None if absent); ``deployments.NAME.rest``
    is ``rest`` in the ``deployments`` entry named NAME (a name may contain dots)."""
    value = summary
    if dotted.startswith(DEPLOYMENTS + ".") and isinstance(summary, dict):
        value, dotted = _deployment_entry(summary, dotted[len(DEPLOYMENTS) + 1 :])
    for key in dotted.split(".") if dotted else ():
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _deployment_entry(summary: dict, rest: str) -> tuple[dict | None, str]:
    """(the ``deployments`` entry whose name ``rest`` starts with, the key after it)."""
    entries = [d for d in summary.get(DEPLOYMENTS) or [] if isinstance(d, dict) and isinstance(d.get("name"), str)]
    for entry in sorted(entries, key=lambda d: -len(d["name"])):  # the longest name that fits
        if rest.startswith(entry["name"] + "."):
            return entry, rest[len(entry["name"]) + 1 :]
    return None, ""


def deployment_metrics(scenario: Scenario) -> list[tuple[str, str]]:
    """Behind a gateway: each deployment's share of the routed attempts, and the
    recovery of the breaker of each deployment that sees a fault window."""
    rows = []
    for deployment in scenario.deployments:
        rows.append((f"{DEPLOYMENTS}.{deployment.name}.share", "fraction"))
        if deployment.faults_of(scenario.faults):
            rows.append((f"{DEPLOYMENTS}.{deployment.name}.{RECOVERY}", "s"))
    return rows


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
    verdict: str | None = None  # "yes", "no", "inconclusive" (module docstring)
    row_level: float | None = None  # the prediction interval's level (Bonferroni-adjusted)
    live_se: float | None = None  # the live figure's own standard error, in the interval
    sim_runs: int = 0  # replications that have the figure
    sim_not_recovered: int | None = None  # breaker.recovery_s only: replications never recovered
    live_not_recovered: bool | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def prediction_interval(values: np.ndarray, level: float = DEFAULT_LEVEL, live_se: float = 0.0, centre: float | None = None) -> tuple[float, float] | None:
    """Where one more run falls with probability ``level`` (i.i.d. normal runs), measured
    with standard error ``live_se``: ``mean -/+ t(n-1) sqrt(s^2 (1 + 1/n) + live_se^2)``
    (``centre``: around it instead of the mean, e.g. a pooled percentile)."""
    values = np.asarray(values, dtype=float)
    n = values.size
    if n < 2:
        return None
    mean = float(values.mean()) if centre is None else centre
    spread = float(values.std(ddof=1)) ** 2 * (1 + 1 / n) + live_se**2
    half = float(scipy_t.ppf(0.5 + level / 2, n - 1)) * math.sqrt(spread)
    return mean - half, mean + half


def live_standard_error(key: str, unit: str, value: float | None, live: dict, latencies_ms: np.ndarray | None) -> float:
    """The sampling error of one live figure (module docstring); 0 where none is known.
    ``latencies_ms``: the live run's latencies, sorted (for percentiles and the mean)."""
    if value is None:
        return 0.0
    requests = (live.get("requests") or {}).get("sent") or 0
    figure = key.split(".", 1)[0]
    if isinstance(latencies_ms, dict):  # one sorted sample per figure (latency_ms, ttft_ms, ...)
        latencies_ms = latencies_ms.get(figure)
    elif figure != "latency_ms":
        latencies_ms = None
    if figure in ("latency_ms", "ttft_ms", "itl_ms", "tpot_ms") and latencies_ms is not None and latencies_ms.size >= 2:
        n = latencies_ms.size
        if key.endswith(".avg"):
            return float(latencies_ms.std(ddof=1) / math.sqrt(n))
        q = float(key.rsplit(".p", 1)[1]) / 100
        rank, spread = q * (n - 1), math.sqrt(n * q * (1 - q))  # +/- one standard deviation of the rank
        low, high = latencies_ms[max(0, math.floor(rank - spread))], latencies_ms[min(n - 1, math.ceil(rank + spread))]
        return float(high - low) / 2
    if key.startswith(DEPLOYMENTS + ".") and key.endswith(".share"):  # a share of the routed attempts
        routed = sum((d.get("requests") or {}).get("sent") or 0 for d in live.get(DEPLOYMENTS) or [] if isinstance(d, dict))
        if routed:
            p = (value * routed + 0.5) / (routed + 1)
            return math.sqrt(p * (1 - p) / routed)
        return 0.0
    if key == "throughput.rps":
        window = (live.get("throughput") or {}).get("window_s") or 0.0
        return math.sqrt(max(value * window, 1.0)) / window if window > 0 else 0.0
    if unit == "fraction" and requests:
        p = (value * requests + 0.5) / (requests + 1)
        return math.sqrt(p * (1 - p) / requests)
    if unit == "count":
        return math.sqrt(max(value, 1.0))
    return 0.0


def compared_metrics(scenario: Scenario, summaries: list[dict], live: dict) -> list[tuple[str, str]]:
    """The base metrics, the token timings on the LLM backend, each error kind either side
    saw, and the breaker's when faults are injected (behind a gateway: each deployment's
    share and its breaker's recovery instead)."""
    metrics = list(BASE_METRICS)
    if scenario.backend.is_llm:
        metrics += [(key, unit) for key, unit in LLM_METRICS if key.split(".", 1)[0] != "itl_ms" or scenario.request.stream]
    for name in KIND_NAMES[1:]:
        key = f"error_rates.{name}"
        if any(_get(s, key) for s in summaries) or _get(live, key):
            metrics.append((key, "fraction"))
    if scenario.deployments:
        metrics += deployment_metrics(scenario)
    elif scenario.faults:
        metrics += [("breaker.trips", "count"), (RECOVERY, "s")]
        if _observed(live) is not None:
            metrics.append((OBSERVED_RECOVERY, "s"))
    return metrics


def _observed(live: dict | None) -> dict | None:
    """The live run's observed breaker (``live.faults.observed_breaker``), if it had a fault proxy."""
    found = ((live or {}).get("live") or {}).get("faults") or {}
    return found.get("observed_breaker") if isinstance(found, dict) else None


def row_level(level: float, rows: int, adjust: str = "bonferroni") -> float:
    """Each row's prediction level: ``level`` for the whole table (Bonferroni) or per row."""
    if adjust not in ADJUSTMENTS:
        raise ConfigError("--adjust", f"expected one of {', '.join(ADJUSTMENTS)}, got {adjust!r}")
    return 1 - (1 - level) / max(rows, 1) if adjust == "bonferroni" else level


def _verdict(inside: bool | None, pi, mean: float | None, unit: str) -> str | None:
    if inside is None:
        return None
    if not inside:
        return "no"
    scale = max(abs(mean or 0.0), SCALE_FLOOR.get(unit, 0.0))
    half = (pi[1] - pi[0]) / 2  # before the cut at 0: the spread itself
    return "inconclusive" if half > WIDE * scale or (scale == 0 and half > 0) else "yes"


def _not_recovered(summary: dict | None, key: str = RECOVERY) -> bool:
    """Whether the breaker of the row ``key`` (the run's, or a deployment's) never recovered."""
    if not summary:
        return False
    if key.startswith(DEPLOYMENTS + "."):
        summary, _ = _deployment_entry(summary, key[len(DEPLOYMENTS) + 1 :])
    return bool(summary) and (summary.get("breaker") or {}).get("recovered") is False


def live_latency_figures(latencies_s: np.ndarray) -> dict:
    """The live latency figures with the simulation's definition (``metrics.latency_stats``)."""
    return latency_stats(np.array(latencies_s, dtype=float), overwrite=True)


def live_token_figures(timing: dict) -> dict:
    """``ttft_ms``, ``tpot_ms`` and ``itl_ms`` of a live run's ``token_timing()`` (seconds)
    with the simulation's definitions (module docstring)."""
    from ..llm_summary import weighted_stats

    tpot = np.asarray(timing["tpot"], dtype=float)
    itl = np.asarray(timing["itl"], dtype=float)
    return {
        "ttft_ms": latency_stats(np.array(timing["ttft"], dtype=float), overwrite=True),
        "tpot_ms": latency_stats(tpot[np.isfinite(tpot)].copy(), overwrite=True),
        "itl_ms": weighted_stats(itl, np.ones(itl.size, dtype=np.int64)),
    }


def comparison_rows(
    scenario: Scenario,
    summaries: list[dict],
    live: dict,
    paired: dict | None,
    level: float = DEFAULT_LEVEL,
    live_latencies_s: np.ndarray | None = None,
    adjust: str = "bonferroni",
    live_token_timing: dict | None = None,
    pooled: Callable[[str], Interval | None] | None = None,
) -> list[ComparisonRow]:
    """One row per compared metric (module docstring). ``live_latencies_s``: the live run's
    latencies; when given, its latency figures are recomputed from them as the simulation's;
    ``live_token_timing`` (``LiveResult.token_timing()``) likewise for the LLM rows.
    ``pooled(key)``: the pooled figure and its sectioning interval for the LLM rows
    (``ReplicatedResult.interval``); without it their rows use the replications' mean."""
    live = dict(live)
    samples_ms: dict[str, np.ndarray] = {}
    if live_latencies_s is not None:
        live["latency_ms"] = live_latency_figures(live_latencies_s)
        samples_ms["latency_ms"] = np.sort(np.asarray(live_latencies_s, dtype=float)) * 1000.0
    if live_token_timing is not None and scenario.backend.is_llm:
        live.update(live_token_figures(live_token_timing))
        tpot = np.asarray(live_token_timing["tpot"], dtype=float)
        for figure, values in (("ttft_ms", live_token_timing["ttft"]), ("tpot_ms", tpot[np.isfinite(tpot)]), ("itl_ms", live_token_timing["itl"])):
            samples_ms[figure] = np.sort(np.asarray(values, dtype=float)) * 1000.0
    metrics = compared_metrics(scenario, summaries, live)
    level_each = row_level(level, len(metrics), adjust)
    llm_keys = {key for key, _ in LLM_METRICS}
    rows = []
    for key, unit in metrics:
        sim_key = RECOVERY if key == OBSERVED_RECOVERY else key
        values = np.array([v for v in (_get(s, sim_key) for s in summaries) if v is not None], dtype=float)
        mean = float(values.mean()) if values.size else None
        ci = t_interval(values, level)
        if key in llm_keys and pooled is not None:
            ci = pooled(key)
            mean = ci.mean if ci is not None else mean
        live_value = _get(live, OBSERVED_SOURCE if key == OBSERVED_RECOVERY else key)
        se = live_standard_error(key, unit, live_value, live, samples_ms)
        pi = prediction_interval(values, level_each, se, centre=mean if key in llm_keys else None)
        # Every compared figure is >= 0: an interval reaching below 0 is cut there.
        ci_low = None if ci is None else max(0.0, ci.low)
        shown_pi = None if pi is None else (max(0.0, pi[0]), pi[1])
        rel = None
        if mean is not None and live_value is not None and mean != 0:
            rel = (live_value - mean) / abs(mean)
        inside = None if shown_pi is None or live_value is None else bool(shown_pi[0] <= live_value <= shown_pi[1])
        verdict = None if pi is None else _verdict(inside, pi, mean, unit)
        not_recovered = live_not_recovered = None
        if key in (RECOVERY, OBSERVED_RECOVERY) or key.endswith("." + RECOVERY):
            recovery_key = RECOVERY if key == OBSERVED_RECOVERY else key
            not_recovered = sum(1 for s in summaries if _not_recovered(s, recovery_key))
            live_not_recovered = _not_recovered(live, key) if key != OBSERVED_RECOVERY else live_value is None
            if live_not_recovered:
                verdict = "yes" if not_recovered else "no"
            elif live_value is not None and not_recovered and not_recovered == len(summaries):
                verdict = "no"
        rows.append(
            ComparisonRow(
                key, unit, mean,
                ci_low, ci.high if ci else None,
                shown_pi[0] if shown_pi else None, shown_pi[1] if shown_pi else None,
                _get(paired, key) if paired else None,
                live_value, rel, inside,
                verdict, level_each, se, int(values.size), not_recovered, live_not_recovered,
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
    adjust: str = "bonferroni"
    service_overhead: dict | None = None  # LLM backend: what the service adds (module docstring)

    def row(self, metric: str) -> ComparisonRow:
        return next(r for r in self.rows if r.metric == metric)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.rows])

    def verdict_counts(self) -> dict:
        names = ("yes", "no", "inconclusive")
        return {name: sum(1 for r in self.rows if r.verdict == name) for name in names}

    def multiple_comparisons(self) -> str:
        """One sentence on what the table's "no"s mean, given its number of rows."""
        m = len(self.rows)
        if self.adjust == "bonferroni":
            each = 1 - (1 - self.level) / max(m, 1)
            return (f"{m} rows, each prediction interval at {each:.2%} (Bonferroni): if the model is right, "
                    f"the chance of any 'no' in the table is at most {1 - self.level:.0%}")
        return f"{m} rows at {self.level:.0%} each (not adjusted): about {m * (1 - self.level):.1f} 'no' expected by chance even if the model is right"

    def to_dict(self) -> dict:
        from ..result import strict_json

        return strict_json(
            {
                "scenario": self.scenario.name,
                "seed": self.seed,
                "replications": self.replications,
                "level": self.level,
                "target": self.target,
                "interval": "prediction interval for one run: mean -/+ t(n-1) * sqrt(s^2 (1 + 1/n) + se_live^2), cut at 0",
                "adjust": self.adjust,
                "row_level": self.rows[0].row_level if self.rows else None,
                "multiple_comparisons": self.multiple_comparisons(),
                "inconclusive": f"inside, but the interval's half-width exceeds {WIDE:.0%} of the simulated mean (rates: of max(mean, 1 point); counts: of max(mean, 1))",
                "percentiles": "numpy linear interpolation over each run's latencies, live recomputed from its per-request latencies (not its HDR figures)",
                "verdicts": self.verdict_counts(),
                "rows": [r.to_dict() for r in self.rows],
                "breaker_timeline": breaker_timeline(self.sim_summaries, self.live.summary),
                "service_overhead": self.service_overhead,
                "live": self.live.to_dict(),
                "config": self.scenario.to_dict(),
            }
        )


def breaker_timeline(sim_summaries: list[dict], live: dict) -> dict:
    """The simulated breaker's transitions (replication 0) next to the live target's own (when it
    reports them) and the observed ones (through simrouter proxy), each as {"t", "from", "to"}."""
    observed = _observed(live)
    return {
        "simulated": list((sim_summaries[0].get("breaker") or {}).get("transitions") or []) if sim_summaries else [],
        "target": (live.get("breaker") or {}).get("transitions"),
        "observed": None if observed is None else observed["timeline"],
        "observed_recovery_s": None if observed is None else observed["observed_recovery_s"],
    }


@contextmanager
def serve_subprocess(scenario: Scenario, seed: int = 1, admin_token: str | None = None):
    """``simrouter serve`` for ``scenario`` on a free loopback port: yields (url, token)."""
    token = admin_token or secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="simrouter-compare-") as folder:
        config = Path(folder) / "scenario.toml"
        config.write_text(scenario_toml(_absolute_files(scenario.to_dict()), "written by simrouter compare"))
        command = [sys.executable, "-m", "simrouter", "serve", "--config", str(config), "--port", "0", "--seed", str(seed)]
        if scenario.request.protocol in ("openai-chat", "openai-completions"):
            command += ["--protocol", "openai"]  # the same policies behind /v1/chat/completions, /v1/completions
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
    adjust: str = "bonferroni",
) -> LiveComparison:
    """Simulate ``replications`` runs and one live run of ``scenario``; compare them."""
    from ..replications import replicate

    scenario = load_scenario(scenario, overrides)
    if replications < 2:
        raise ConfigError("--replications", f"expected at least 2 (an interval needs two runs), got {replications}")
    row_level(level, 1, adjust)  # a bad adjust is refused before anything runs
    if scenario.backend.is_llm and scenario.request.protocol not in LLM_PROTOCOLS:
        raise ConfigError("request.protocol", f'backend.model = "llm" streams tokens: compare it with {" or ".join(LLM_PROTOCOLS)}, got {scenario.request.protocol!r} '
                          '(e.g. --set request.protocol=\'"openai-chat"\' --set request.model=\'"m"\' --set request.stream=true)')
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
    if scenario.request.protocol in LLM_PROTOCOLS and scenario.backend.tpot is not None and not scenario.backend.is_llm:
        live.notes.append(
            "backend.tpot is not simulated by the delay model: the simulated latency is the backend's service time (backend.latency) while the "
            'live one includes streaming every output token; simulate tokens with backend.model = "llm" (docs/llm.md), or compare ttft_ms with backend.ttft'
        )
    llm = scenario.backend.is_llm
    rows = comparison_rows(
        scenario, summaries, live.summary, paired, level, live.latencies(), adjust,
        live_token_timing=live.token_timing() if llm else None, pooled=simulated.interval if llm else None,
    )
    overhead = service_overhead(rows, live) if llm else None
    if overhead is not None and overhead.get("step_lag_ms"):
        lag = overhead["step_lag_ms"]
        live.notes.append(f"service overhead: engine steps ended {lag['mean']:.2f} ms (mean) / {lag['max']:.1f} ms (max) after their deadlines")
    return LiveComparison(scenario, seed, len(summaries), level, target, rows, live, summaries, adjust, overhead)


def service_overhead(rows: list[ComparisonRow], live) -> dict:
    """What the live service adds on the LLM backend (module docstring): its engine's step lag
    (from the target's ``/metrics``, None from another target) and live - paired per LLM row."""
    service = ((live.target_metrics or {}).get("service") or {}).get("llm") or {}
    llm_keys = {key for key, _ in LLM_METRICS}
    return {
        "step_lag_ms": service.get("step_lag_ms"),
        "mean_step_ms": service.get("mean_step_ms"),
        "reanchored_steps": service.get("reanchored_steps"),
        "live_minus_paired_ms": {r.metric: r.live - r.sim_paired for r in rows if r.metric in llm_keys and r.live is not None and r.sim_paired is not None},
    }


def render_table(comparison: LiveComparison):
    """A rich Table of the comparison."""
    from rich.table import Table

    title = f"{comparison.scenario.name}: simulated ({comparison.replications} replications) vs live ({comparison.target})"
    caption = (
        f"+/-: {comparison.level:.0%} CI of the mean. PI: where one run should fall (with the live figure's own error). "
        f"{comparison.multiple_comparisons()}. inconclusive: inside an interval wider than +/-{WIDE:.0%} of the mean. "
        "Percentiles: linear interpolation on both sides."
    )
    if any(r.sim_paired is not None for r in comparison.rows):
        caption += " paired: replication 0 (same random numbers as the live service)."
    table = Table(title=title, caption=caption)
    for name in ("metric", "simulated +/-", "one-run PI", "paired", "live", "diff", "verdict"):
        table.add_column(name, justify="left" if name == "metric" else "right", no_wrap=True)

    def fmt(value, unit):
        if value is None:
            return "-"
        return f"{value:.2%}" if unit == "fraction" else f"{value:,.1f}"

    def _label(metric, unit):
        figure, _, leaf = metric.rpartition(".")
        name = leaf.replace("_", " ")
        if figure in ("ttft_ms", "itl_ms", "tpot_ms"):  # beside latency_ms's percentiles: say whose
            name = f"{figure[:-3]} {name}"
        if metric.startswith(DEPLOYMENTS + "."):  # "west share", "west recovery s (s)"
            deployment = next((d.name for d in comparison.scenario.deployments if metric.startswith(f"{DEPLOYMENTS}.{d.name}.")), "")
            name = f"{deployment} {name}"
        return f"{name} ({unit})" if unit in ("ms", "s", "req/s") else name

    for r in comparison.rows:
        mean = fmt(r.sim_mean, r.unit) + ("" if r.ci_low is None else f" +/- {fmt((r.ci_high - r.ci_low) / 2, r.unit)}")
        pi = "-" if r.pi_low is None else f"{fmt(r.pi_low, r.unit)}..{fmt(r.pi_high, r.unit)}"
        rel = "-" if r.rel_diff is None else f"{r.rel_diff:+.1%}"
        verdict = {"yes": "[green]yes[/]", "no": "[red]no[/]", "inconclusive": "[yellow]inconclusive[/]", None: "-"}[r.verdict]
        live = fmt(r.live, r.unit)
        if r.sim_not_recovered:
            mean += f" ({r.sim_not_recovered} of {comparison.replications} never recovered)"
        if r.live_not_recovered:
            live = "never recovered"
        table.add_row(_label(r.metric, r.unit), mean, pi, fmt(r.sim_paired, r.unit), live, rel, verdict)
    return table


def render_timeline(comparison: LiveComparison):
    """A rich Table of the breaker's transitions, simulated (replication 0) next to the observed
    ones (through simrouter proxy) and the target's own; None without a fault proxy."""
    from rich.table import Table

    timeline = breaker_timeline(comparison.sim_summaries, comparison.live.summary)
    if timeline["observed"] is None:
        return None
    columns = {"simulated": timeline["simulated"], "observed (proxy)": timeline["observed"], "target's own": timeline["target"] or []}
    table = Table(title="breaker transitions (s since the run's start)", caption=f"observed recovery {timeline['observed_recovery_s']} s")
    for name in columns:
        table.add_column(name, justify="left", no_wrap=True)
    depth = max(len(v) for v in columns.values())
    for i in range(depth):
        table.add_row(*(f"{v[i]['t']:.2f} {v[i]['from']}->{v[i]['to']}" if i < len(v) else "" for v in columns.values()))
    return table
