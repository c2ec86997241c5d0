"""``LiveResult``: one live run, shaped like a simulated ``RunResult`` plus live-only fields.

It IS a ``RunResult`` (``to_dict()``, ``to_frame()``, ``timeseries()``, the
dashboard all work), on the generator's clock: ``sent`` is the *intended* send
time, so ``latency_ms`` is coordinated-omission corrected. Differences:

* ``latency_ms`` and ``latency_ms_window`` percentiles come from HdrHistogram
  (3 significant digits, ``simrouter.live.hdr``), not from exact sorting;
* which requests the figures describe: ``requests`` and the error rates count
  every arrival once, by kind, with the live kinds (``simrouter.live.classify``)
  besides the simulation's, ``dropped`` included (so ``requests.sent`` is the
  arrivals the run recorded, and ``error_rate`` counts dropped ones as failed);
  ``latency_ms`` describes every request that spent time on the target: the
  simulation's backend kinds (succeeded, timeouts, failures) and the live ones
  that took time (``client_timeouts`` and ``protocol_errors`` at the time they
  took, ``connect_errors``, ``unexpected_status``); not the router's immediate
  rejections (rate limited, breaker open, queue full, validation), as in the
  simulation, nor ``dropped`` (never sent) or ``interrupted`` (cut off);
* ``breaker`` comes from the target's ``/metrics`` (transitions moved to the
  generator's clock) when the target provides one (simrouter's own serve); a
  target that does not report it gets ``null`` state, health, trips,
  transitions and recovery, listed in ``live.not_measured`` and shown as "not
  measured"; ``live.breaker_source`` says ``"target"`` or ``"none"``;
* ``backend`` is the target's own figure when available (utilisation since the
  target started or was reset), else capacity and utilisation are ``null``;
* behind a gateway (the target's ``/metrics`` has ``deployments``: simrouter's
  serve with ``[[deployments]]``), ``deployments``, ``fallbacks`` and
  ``attempts`` are the target's own (``gateway_sections``), with every
  deployment's breaker transitions and recoveries moved to the generator's clock
  (a ``t`` below 0 happened before this run started), and the run's ``breaker``
  is ``deployment_summary.overall_breaker`` of them. Unlike the rest of the
  summary, they describe the SERVICE's whole run since its start or last
  ``/admin/reset`` (every attempt it routed, no warm-up cut), not this run's
  measured requests: the two agree when the service was started or reset for
  this run and ``warmup = 0``;
* ``live``: target (without userinfo), cut_short, corrected and uncorrected HDR
  latency (with the encoded histograms, mergeable), schedule (arrivals, sent,
  dropped, late, lag), ``generator`` (scheduler lag vs pool wait, loop lag, CPU,
  what limited the run), transport errors, fault injection, the target's own
  request counts and latency, notes, and ``latency_sample_s`` (successful
  requests, for ``simrouter calibrate``).

Token timing (``[request] protocol = "openai-chat"`` / ``"openai-completions"``;
``simrouter.live.answer_record``), over the measured successes, with the same
fields as ``latency_ms`` (HdrHistogram):

* ``ttft_ms``: intended send -> first content token (coordinated-omission
  corrected as ``latency_ms``; from the actual send in ``live.ttft_ms_uncorrected``).
  A whole (non-streamed) answer's first token comes with its last byte;
* ``itl_ms``: every gap between consecutive content chunks of every stream;
* ``tpot_ms``: per request, ``(e2e - ttft) / (output tokens - 1)`` (vLLM's
  definition; requests with at least two tokens);
* ``tokens``: ``{prompt, output, output_per_s, source}``: prompt and output
  tokens summed (``prompt`` None when the server reported none), output tokens
  per second over the throughput window, and ``source`` ``"usage"`` (every count
  from the server's ``usage``) or ``"counted"`` (some counted from the content
  chunks); all None for a protocol that does not decode answers;
* ``live.rate_limits``: answers that carried ``Retry-After`` (count, min, max,
  last, seconds) and ``x-ratelimit-*`` (count, the last values seen);
  ``live.error_codes``: answers by JSON ``error.code`` (else ``error.type``);
* ``live.ttft_sample_s`` / ``live.tpot_sample_s``: uncorrected TTFT and TPOT of
  measured successes, for ``simrouter calibrate``.

Secrets: the ``[request]`` section's ``${VAR}`` values are put back as
``${VAR}`` in every string of ``to_dict()`` and in the notes (``secrets``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from .. import diagnosis
from ..deployment_summary import overall_breaker
from ..metrics import breaker_recommendation, throughput
from ..outcomes import SUCCESS
from ..policies.breakers import BreakerState, Transition
from ..result import RunResult
from ..targets import evaluate_targets
from ..warmup import resolve_warmup
from . import hdr
from ..outcomes import BACKEND_KINDS
from .classify import DROPPED, INCOMPLETE_STREAM, LATENCY_KINDS, LIVE_KIND_NAMES, LIVE_ONLY_KINDS, TRANSPORT_KINDS

SAMPLE_LIMIT = 20_000
CPU_LIMIT_SHARE = 0.9  # the generator's CPU over this share of one core: it limits the run
TIMED_KINDS = BACKEND_KINDS + LATENCY_KINDS  # the kinds in the latency figures
# What only simrouter's own serve reports: null for another target.
TARGET_ONLY = {"backend": ("capacity", "utilization"), "breaker": ("state", "healthy", "trips", "transitions", "recovery_s", "recovered", "recoveries")}


@dataclass(eq=False)
class LiveResult(RunResult):
    """One live run (see the module docstring)."""

    actual: np.ndarray = field(default_factory=lambda: np.empty(0))  # actual send times
    ready: np.ndarray | None = None  # ready to send, before waiting for a connection (None: = actual)
    target: str = ""
    cut_short: bool = False
    interrupted_by: str | None = None  # SIGINT / SIGTERM when a signal cut the run short
    arrivals: int = 0
    dropped: int = 0
    late: int = 0
    late_threshold_s: float = 0.0
    mean_lag_s: float = 0.0
    max_lag_s: float = 0.0
    fault_injection: dict = field(default_factory=dict)
    target_metrics: dict | None = None
    notes: list[str] = field(default_factory=list)
    generator: dict = field(default_factory=dict)  # live.generator: the generator's own figures
    answers: dict | None = None  # AnswerColumns.arrays() plus its counters (None: no answer decoded)
    protocol: str = "simrouter"
    stream: bool = False
    secrets: object = None  # simrouter.protocols.env.Secrets: values never written

    def redact(self, text: str) -> str:
        """``text`` with the run's secrets replaced by their ``${VAR}`` names."""
        return self.secrets.redact(text) if self.secrets else text

    def to_dict(self) -> dict:
        return _redacted(RunResult.to_dict(self), self.redact) if self.secrets else RunResult.to_dict(self)

    def latencies(self, corrected: bool = True) -> np.ndarray:
        """Seconds from the intended (or, ``corrected=False``, actual) send to the answer
        (or the failure), for measured requests that spent time on the target."""
        mask = self.latency_mask()
        start = self.sent if corrected else self.actual
        return self.done[mask] - start[mask]

    def latency_population(self) -> np.ndarray:
        """Requests that spent time on the target (``TIMED_KINDS``: every answer the
        target gave, and timeouts and transport errors at the time they took), warm-up
        included. Router rejections answered at once stay out, as in the simulation."""
        return np.isin(self.kind, TIMED_KINDS)

    def to_frame(self) -> pd.DataFrame:
        """One row per request; also ``actual_s``, the uncorrected latency and, when answers
        were decoded, ``ttft_ms`` (from the intended send; NaN without a first token),
        ``output_tokens`` (-1: unknown) and ``tpot_ms``."""
        names = np.array(LIVE_KIND_NAMES)
        extra = {}
        if self.answers and self.answers["row"].size:
            rows, n = self.answers["row"], self.kind.size
            ttft, tokens, tpot = np.full(n, np.nan), np.full(n, -1, dtype=np.int64), np.full(n, np.nan)
            ttft[rows] = (self.answers["first_token"] - self.sent[rows]) * 1000.0
            tokens[rows] = self.answers["output"]
            tpot[rows] = self.answers["tpot"] * 1000.0
            extra = {"ttft_ms": ttft, "output_tokens": tokens, "tpot_ms": tpot}
        return pd.DataFrame(
            {
                "sent_s": self.sent,
                "actual_s": self.actual,
                "done_s": self.done,
                "latency_ms": (self.done - self.sent) * 1000.0,
                "uncorrected_latency_ms": (self.done - self.actual) * 1000.0,
                "outcome": pd.Categorical(names[self.kind], categories=list(LIVE_KIND_NAMES)),
                "measured": self.measured,
                **extra,
            }
        )

    def token_timing(self) -> dict:
        """Per measured success with a first token: ``row``, ``ttft`` corrected and
        uncorrected (s), ``tpot`` (s, NaN below two tokens), ``output``, ``prompt``,
        ``usage``; and ``itl`` (s) of those requests' streams."""
        empty = np.empty(0)
        a = self.answers
        if not a or a["row"].size == 0:
            return {"ttft": empty, "ttft_uncorrected": empty, "tpot": empty, "output": empty, "prompt": empty, "usage": empty, "itl": empty, "rows": empty}
        rows = a["row"]
        keep = (self.kind[rows] == SUCCESS) & self.measured[rows] & np.isfinite(a["first_token"])
        rows = rows[keep]
        first = a["first_token"][keep]
        itl_keep = np.isin(a["itl_row"], rows)
        return {
            "rows": rows,
            "ttft": first - self.sent[rows],
            "ttft_uncorrected": first - self.actual[rows],
            "tpot": a["tpot"][keep],
            "output": a["output"][keep],
            "prompt": a["prompt"][keep],
            "usage": a["usage"][keep],
            "itl": a["itl"][itl_keep],
        }

    def _token_figures(self, summary: dict) -> tuple[dict, dict]:
        """(top-level ttft_ms / itl_ms / tpot_ms / tokens, the live-only extras)."""
        timing = self.token_timing()
        ttft = hdr.histogram(timing["ttft"])
        ttft_uncorrected = hdr.histogram(timing["ttft_uncorrected"])
        tpot_values = timing["tpot"][np.isfinite(timing["tpot"])]
        itl, tpot = hdr.histogram(timing["itl"]), hdr.histogram(tpot_values)
        decoded = bool(self.answers) and self.protocol in ("openai-chat", "openai-completions")
        tokens = {"prompt": None, "output": None, "output_per_s": None, "source": None}
        if decoded:
            output = int(timing["output"].sum())
            prompts = timing["prompt"]
            window = (summary.get("throughput") or {}).get("window_s") or 0.0
            tokens = {
                "prompt": int(prompts[prompts >= 0].sum()) if np.any(prompts >= 0) else None,
                "output": output,
                "output_per_s": output / window if window > 0 else None,
                "source": None if timing["usage"].size == 0 else ("usage" if bool(np.all(timing["usage"] == 1)) else "counted"),
            }
        figures = {
            "ttft_ms": _like_simulation(hdr.stats(ttft)),
            "itl_ms": _like_simulation(hdr.stats(itl)),
            "tpot_ms": _like_simulation(hdr.stats(tpot)),
            "tokens": tokens,
        }
        a = self.answers or {}
        retry = a.get("retry_after", np.empty(0))
        retry = retry[np.isfinite(retry)] if retry.size else retry
        extras = {
            "protocol": self.protocol,
            "stream": self.stream,
            "ttft_ms_corrected": hdr.stats(ttft),
            "ttft_ms_uncorrected": hdr.stats(ttft_uncorrected),
            "hdr_tokens": {"ttft_corrected": hdr.encode(ttft), "ttft_uncorrected": hdr.encode(ttft_uncorrected), "itl": hdr.encode(itl), "tpot": hdr.encode(tpot)},
            "rate_limits": {
                "retry_after_s": {
                    "count": int(retry.size),
                    "min": float(retry.min()) if retry.size else None,
                    "max": float(retry.max()) if retry.size else None,
                    "last": float(retry[-1]) if retry.size else None,
                },
                "x_ratelimit": {"count": int(a.get("ratelimited_answers", 0)), "last": dict(a.get("last_ratelimit", {}))},
            },
            "error_codes": dict(a.get("error_codes", {})),
            "ttft_sample_s": _sample(timing["ttft_uncorrected"]).tolist(),
            "tpot_sample_s": _sample(tpot_values).tolist(),
        }
        return figures, extras

    def latency_sample(self, limit: int = SAMPLE_LIMIT) -> np.ndarray:
        """Uncorrected latencies (s) of measured successes, at most ``limit``, chosen at random (seed 0)."""
        mask = self.measured & (self.kind == SUCCESS)
        values = (self.done - self.actual)[mask]
        if values.size > limit:
            values = np.random.default_rng(0).choice(values, limit, replace=False)
        return values

    @cached_property
    def summary(self) -> dict:
        summary = RunResult.summary.func(self)
        kind = self.kind[self.measured]
        sent = int(kind.size)
        counts = np.bincount(kind, minlength=len(LIVE_KIND_NAMES)) if sent else np.zeros(len(LIVE_KIND_NAMES), int)
        live_kinds = {LIVE_KIND_NAMES[code]: int(counts[code]) for code in LIVE_ONLY_KINDS}
        summary["requests"].update(live_kinds)
        summary["error_rates"].update({name: (n / sent if sent else 0.0) for name, n in live_kinds.items()})
        transport = {LIVE_KIND_NAMES[code]: live_kinds[LIVE_KIND_NAMES[code]] for code in TRANSPORT_KINDS}
        if live_kinds["dropped"]:  # answers per second: a dropped arrival got none
            answered = self.kind != DROPPED
            rates = throughput(self.sent[answered], self.done[answered], self.kind[answered] == SUCCESS, self.scenario.warmup, self.full_load_end_s)
            rates["offered_rps"] = summary["throughput"]["offered_rps"]  # a dropped arrival was offered all the same
            summary["throughput"] = rates

        corrected = hdr.histogram(self.latencies(corrected=True))
        uncorrected = hdr.histogram(self.latencies(corrected=False))
        summary["latency_ms"] = _like_simulation(hdr.stats(corrected))
        summary["latency_ms_window"] = _like_simulation(hdr.stats(hdr.histogram(self.window_latencies(self.scenario.metrics.window))))
        summary["breaker"]["avg_response_ms"] = summary["latency_ms"]["avg"]

        target = self.target_metrics
        not_measured = []
        if target and isinstance(target.get("backend"), dict):
            summary["backend"] = target["backend"]
        else:
            summary["backend"].update(dict.fromkeys(TARGET_ONLY["backend"]))
            not_measured += [f"backend.{key}" for key in TARGET_ONLY["backend"]]
        gateway = gateway_sections(target)
        if gateway is not None:
            summary.update(gateway)
            summary["breaker"].update(overall_breaker(gateway["deployments"], self.final_state))
        trips = diagnosis.trip_causes(self.sent, self.done, self.kind, self.transitions, self.scenario.breaker)
        summary["diagnosis"] = diagnosis.diagnose(summary, self.scenario, trips)  # with the live kinds (unreachable)
        if target:
            summary["breaker"]["recommendation"] = breaker_recommendation(summary, self.scenario)
        else:
            # Advice from what was measured (latency, errors), not from a breaker nobody reported.
            assumed = {**summary, "breaker": {**summary["breaker"], "state": "closed", "recovered": None, "recovery_s": None}}
            summary["breaker"]["recommendation"] = breaker_recommendation(assumed, self.scenario)
            summary["breaker"].update(dict.fromkeys(TARGET_ONLY["breaker"]))
            not_measured += [f"breaker.{key}" for key in TARGET_ONLY["breaker"]]
        has_faults = bool(self.scenario.faults) or any(d.faults for d in self.scenario.deployments)
        summary["targets"] = [t.to_dict() for t in evaluate_targets(summary, self.scenario.targets, has_faults)]
        tokens, extras = self._token_figures(summary)
        summary.update(tokens)
        summary["live"] = self._live_section(corrected, uncorrected, transport)
        summary["live"]["not_measured"] = not_measured
        hdr_tokens = extras.pop("hdr_tokens")
        summary["live"]["hdr"].update(hdr_tokens)
        summary["live"].update(extras)
        return summary

    def _live_section(self, corrected, uncorrected, transport: dict) -> dict:
        target = self.target_metrics
        sent = int(np.count_nonzero(self.kind != DROPPED))
        return {
            "target": self.target,
            "cut_short": self.cut_short,
            "interrupted_by": self.interrupted_by,
            "latency_ms_corrected": hdr.stats(corrected),
            "latency_ms_uncorrected": hdr.stats(uncorrected),
            "hdr": {"unit": "us", "corrected": hdr.encode(corrected), "uncorrected": hdr.encode(uncorrected)},
            "schedule": {
                "arrivals": self.arrivals,
                "sent": sent,
                "dropped": self.dropped,
                "late": self.late,
                "late_threshold_ms": self.late_threshold_s * 1000.0,
                "mean_lag_ms": self.mean_lag_s * 1000.0,
                "max_lag_ms": self.max_lag_s * 1000.0,
            },
            "generator": dict(self.generator),
            "transport_errors": transport,
            "breaker_source": "target" if target else "none",
            "faults": self.fault_injection,
            "target_metrics": None if not target else {k: target.get(k) for k in ("requests", "latency_ms", "throughput", "service")},
            "notes": [self.redact(note) for note in self.notes],
            "latency_sample_s": self.latency_sample().tolist(),
        }


def gateway_sections(target_metrics: dict | None) -> dict | None:
    """``{deployments, fallbacks, attempts}`` of a gateway target's ``/metrics`` (None
    when it reports no ``deployments``), each deployment's breaker transitions and
    recoveries shifted by ``clock_offset_s`` onto the generator's clock. They count
    the service's whole run since its start or reset (module docstring)."""
    if not target_metrics or not isinstance(target_metrics.get("deployments"), list):
        return None
    offset = target_metrics.get("clock_offset_s", 0.0)

    def shifted(t):
        return None if t is None else t + offset

    deployments = []
    for entry in target_metrics["deployments"]:
        breaker = entry["breaker"]
        deployments.append(
            {
                **entry,
                "breaker": {
                    **breaker,
                    "transitions": [{**tr, "t": tr["t"] + offset} for tr in breaker["transitions"]],
                    "recoveries": [{**r, "fault_end": shifted(r["fault_end"]), "closed_at": shifted(r["closed_at"])} for r in breaker["recoveries"]],
                },
            }
        )
    sections = {"deployments": deployments}
    for key in ("fallbacks", "attempts"):  # the summary keeps its own when the target reports none
        if isinstance(target_metrics.get(key), dict):
            sections[key] = dict(target_metrics[key])
    return sections


def _sample(values: np.ndarray, limit: int = SAMPLE_LIMIT) -> np.ndarray:
    """At most ``limit`` of ``values``, chosen at random (seed 0)."""
    if values.size > limit:
        values = np.random.default_rng(0).choice(values, limit, replace=False)
    return values


def _redacted(value, redact):
    """Every string in a JSON-like value passed through ``redact`` (keys too)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: _redacted(v, redact) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redact) for v in value]
    return value


def _like_simulation(stats: dict) -> dict:
    """HDR stats with the simulation's keys (P99.9 kept in ``live`` only)."""
    return {k: v for k, v in stats.items() if k != "p99_9"}


# What each transport kind means, for the notes of a run that had some.
TRANSPORT_MEANINGS = {
    "connect_errors": "could not connect (refused or unreachable)",
    "client_timeouts": "got no complete answer within the client timeout of {timeout:g} s (a hung or too slow target)",
    "protocol_errors": "had the connection reset or closed mid-answer, or got an answer that is not HTTP",
    "unexpected_status": "got an HTTP status no --map rule (nor the defaults) classifies",
}


def transport_notes(kind: np.ndarray, target: str, timeout: float) -> list[str]:
    """One note per transport kind that occurred, saying what it means."""
    count = int(np.count_nonzero(kind != DROPPED))
    notes = []
    for name, meaning in TRANSPORT_MEANINGS.items():
        n = int(np.count_nonzero(kind == LIVE_KIND_NAMES.index(name)))
        if name == "connect_errors" and n and n == count:
            notes.append(f"the target {target} refused every connection: is it running?")
        elif n:
            notes.append(f"{n} of {count} requests {meaning.format(timeout=timeout)}")
    return notes


def stream_notes(kind: np.ndarray) -> list[str]:
    """A note when some streams ended without ``[DONE]`` or a finish reason."""
    n = int(np.count_nonzero(kind == INCOMPLETE_STREAM))
    if not n:
        return []
    return [f"{n} of {int(np.count_nonzero(kind != DROPPED))} requests were streams that ended without [DONE] or a finish reason (kind incomplete_stream, a failure)"]


def _ms_stats(seconds: np.ndarray) -> dict:
    """mean / p50 / p99 / max in ms (exact: numpy's linear interpolation); None for no value."""
    if seconds.size == 0:
        return {"mean": None, "p50": None, "p99": None, "max": None}
    p50, p99 = np.percentile(seconds, [50, 99]) * 1000.0
    return {"mean": float(seconds.mean() * 1000.0), "p50": float(p50), "p99": float(p99), "max": float(seconds.max() * 1000.0)}


def generator_figures(generator, sent: np.ndarray, ready: np.ndarray, actual: np.ndarray, kind: np.ndarray) -> tuple[dict, list[str]]:
    """``live.generator`` and its notes: whose lag made requests late, and whether the
    generator's own CPU or event loop limited the run.

    Open model, per request sent: ``scheduler_lag_ms`` is intended -> ready to send (the
    generator's timers, tasks, CPU), ``pool_wait_ms`` ready -> on a connection (all
    connections busy). A late request is blamed on the larger of the two; ``limited_by``
    is ``"connections"`` when most late requests waited for a connection (the target is
    slower than the rate needs, or too few ``--connections``), ``"generator"`` when most
    were late by the generator's own scheduling, ``None`` when none was late. Closed and
    sequential users send when ready: no schedule, so both lags are ``None``.
    """
    options = generator.options
    open_model = generator.scenario.workload.model == "open"
    on_wire = kind != DROPPED
    late, late_pool = generator.late, generator.late_pool
    late_by = {"scheduler": late - late_pool, "pool": late_pool}
    limited_by = None if late == 0 or not open_model else ("connections" if late_pool >= late - late_pool else "generator")
    loop_lag = np.frombuffer(generator.loop_lag, dtype=np.float64) if len(generator.loop_lag) else np.empty(0)
    cpu_share = generator.cpu_s / generator.sending_s if generator.sending_s > 0 else 0.0
    loop = _ms_stats(loop_lag)
    figures = {
        "scheduler_lag_ms": _ms_stats((ready - sent)[on_wire]) if open_model else None,
        "pool_wait_ms": _ms_stats((actual - ready)[on_wire]) if open_model else None,
        "late_by": late_by,
        "limited_by": limited_by,
        "loop_lag_ms": loop,
        "cpu_s": generator.cpu_s,
        "cpu_share": cpu_share,
        "resent_on_reused_connection": generator.resent,
        "generator_limited": False,
    }
    notes = []
    count = int(np.count_nonzero(on_wire))
    threshold_ms = options.late_threshold * 1000
    if limited_by == "connections":
        wait = figures["pool_wait_ms"]
        notes.append(
            f"{late} of {count} requests sent more than {threshold_ms:g} ms after their intended time, {late_pool} of them "
            f"mostly waiting for a free connection (pool wait p99 {wait['p99']:.1f} ms, max {wait['max']:.1f} ms): all "
            f"connections were busy, the target is slower than this rate needs (or raise --connections); corrected latency includes the wait"
        )
    elif limited_by == "generator":
        lag = figures["scheduler_lag_ms"]
        notes.append(
            f"generator fell behind: {late} of {count} requests sent more than {threshold_ms:g} ms after their intended time, "
            f"{late_by['scheduler']} of them by its own scheduling (scheduler lag p99 {lag['p99']:.1f} ms, max {lag['max']:.1f} ms); "
            "corrected latency includes the lag"
        )
    loop_p99 = loop["p99"] or 0.0
    loop_text = f"event-loop lag p99 {loop_p99:.1f} ms, max {loop['max'] or 0.0:.1f} ms"
    if cpu_share >= CPU_LIMIT_SHARE:
        figures["generator_limited"] = True
        notes.append(
            f"the generator's own CPU limited the run: its event loop was busy {cpu_share:.0%} of the time ({loop_text}); "
            "its figures include its own delays (lower the rate or users, or spread the load over more processes)"
        )
    elif limited_by == "generator" or loop_p99 > max(threshold_ms, 1.0):
        figures["generator_limited"] = True
        notes.append(
            f"the generator's event loop lagged ({loop_text}) while it used {cpu_share:.0%} of a core: the machine is busy "
            "with other work (or something blocked the loop); the figures include these delays"
        )
    return figures, notes


def build_live_result(generator, elapsed: float, target_metrics: dict | None, wall_start: float) -> LiveResult:
    """The ``LiveResult`` of a finished ``LoadGenerator`` run."""
    import time

    sent, actual, done, kind, ready = generator.columns.arrays()
    scenario, warmup = resolve_warmup(generator.scenario, sent, done, kind)
    transitions: list[Transition] = []
    final_state = BreakerState.CLOSED
    if target_metrics:
        offset = target_metrics["clock_offset_s"]
        breaker = target_metrics["breaker"]
        for tr in breaker.get("transitions", []):
            t = tr["t"] + offset
            if t >= 0:
                transitions.append(Transition(t, BreakerState(tr["from"]), BreakerState(tr["to"])))
        final_state = BreakerState(breaker.get("state", "closed"))
    notes = list(generator.notes)
    count = len(kind)
    on_wire = int(np.count_nonzero(kind != DROPPED))
    figures, generator_notes = generator_figures(generator, sent, ready, actual, kind)
    notes += generator_notes
    if generator.dropped:
        notes.append(
            f"{generator.dropped} of {count} arrivals dropped (kind dropped: failed requests, counted in the error rate, no latency): "
            f"more than connections + max_backlog ({generator.options.max_backlog}) requests were pending"
        )
    if generator.cut_short:
        notes.append("cut short (interrupted): figures cover the part that ran")
    notes += transport_notes(kind, generator.display_target, generator.options.timeout_for(generator.scenario))
    notes += stream_notes(kind)
    columns = getattr(generator, "answers", None)
    answers = None
    if columns is not None and len(columns):
        answers = {**columns.arrays(), "error_codes": dict(columns.error_codes), "last_ratelimit": dict(columns.last_ratelimit), "ratelimited_answers": columns.ratelimited_answers}
    secrets = getattr(generator, "secrets", None)
    notes = [secrets.redact(note) for note in notes] if secrets else notes
    return LiveResult(
        scenario=scenario,
        warmup=warmup,
        seed=generator.options.seed,
        sent=sent,
        done=done,
        kind=kind,
        transitions=transitions,
        final_state=final_state,
        sim_time_s=float(max(elapsed, done.max() if count else 0.0)),
        full_load_end_s=min(generator.finished) if generator.finished else elapsed,
        backend_busy_s=0.0,
        wall_time_s=time.time() - wall_start,
        actual=actual,
        ready=ready,
        target=generator.display_target,
        cut_short=generator.cut_short,
        interrupted_by=generator.interrupted_by,
        arrivals=generator.arrivals,
        dropped=generator.dropped,
        late=generator.late,
        late_threshold_s=generator.options.late_threshold,
        mean_lag_s=generator.lag_sum / on_wire if on_wire else 0.0,
        max_lag_s=generator.max_lag,
        fault_injection=dict(generator.fault_injection),
        target_metrics=target_metrics,
        notes=notes,
        generator=figures,
        answers=answers,
        protocol=getattr(generator, "protocol", "simrouter"),
        stream=bool(getattr(generator, "stream", False)),
        secrets=secrets,
    )
