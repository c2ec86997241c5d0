"""What is wrong with a run, and why: the ``diagnosis`` list of every result.

``diagnose(...)`` returns a list of ``{"code", "message"}`` (JSON
``diagnosis: [{code, message}]``), most fundamental first. The codes:

=============================  ==============================================================
``overloaded``                 offered work >= capacity before any fault: offered rate x the
                               mean service time of ``backend.latency`` (slot-seconds per
                               second) against ``backend.capacity``; says the slots needed
                               (``ceil(work)``, at least ``capacity + 1`` when work equals it).
                               Offered rate: open workloads their (largest stage) rate;
                               closed ones ``users / (mean service + mean think time)`` (the
                               demand with no queueing); sequential one user.
                               Behind a gateway (``[[deployments]]``): the offered rate against
                               the sum of the deployments' service rates (each its capacity /
                               its own mean service time, its backend being its own keys over
                               ``[backend]``); and, when the strategy splits by weight
                               (``simple-shuffle``, ``round-robin``), each deployment's weight
                               share of the offered rate against its own service rate
``latency_floor_above_target`` the backend's own latency quantile (``backend.latency``'s
                               quantile function, faults and queueing not mixed in) already
                               misses ``targets.p95_ms`` / ``p99_ms``: no capacity can meet it.
                               Behind a gateway: the smallest of the deployments' own
                               quantiles (a mixture's q-quantile is never below the smallest
                               of its parts': F(x) = sum p_d F_d(x) < q wherever every F_d < q)
``unreachable``                (live) most arrivals could not connect to the target
``backend_failing``            at least half of the calls admitted to the backend failed or
                               timed out (failure rate of ``breaker.failure_rate``)
``breaker_tripped_by``         what the breaker counted when it opened: for each trip, the
                               outcomes of the calls the breaker's window held just before it
                               (``trip_causes``): failures, timeouts, slow calls, queue full
``never_recovered``            the breaker opened and was not closed again (by the end of the
                               run, or before the next fault)
``not_converged``              replications with sequential stopping reached
                               ``max_replications`` before the precision asked for
=============================  ==============================================================

``trip_causes(result)`` derives the breaker's window from the recorded columns
(answer time, outcome), the calls that ended at or before each OPEN transition:
the last ``window`` calls for count-based breakers (default: ``window_size``,
resilience4j COUNT_BASED: ``sliding_window_size``, pybreaker: ``fail_max``),
the calls of the last ``window`` seconds for time-based ones (resilience4j
TIME_BASED, Hystrix ``rolling_window``, Polly ``sampling_duration``); LiteLLM's
cooldowns read ``cooldown_time`` seconds (the TTL of its failed-calls counter)
when ``allowed_fails`` is set, else its current-minute counters (60 s); Envoy's
outlier detection the last ``consecutive_5xx`` calls. Behind a gateway each
deployment's breaker is judged on its own attempts (``RunResult`` passes its
attempt log, each trip tagged with ``deployment``). A call
is slow (resilience4j only) when it lasted longer than
``slow_call_duration_threshold``. Figures describe logical requests by their
final outcome (a retried request counts once), so they are what the breaker
saw up to retries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .outcomes import FAILURE, QUEUE_FULL, SUCCESS, TIMEOUT

CODES = (
    "overloaded",
    "latency_floor_above_target",
    "unreachable",
    "backend_failing",
    "breaker_tripped_by",
    "never_recovered",
    "not_converged",
)
FAILING_RATE = 0.5  # backend_failing: at least this share of admitted calls failed
UNREACHABLE_SHARE = 0.5  # unreachable: at least this share of arrivals could not connect
CAUSES = ("failures", "timeouts", "slow_calls", "queue_full")
LITELLM_MINUTE_S = 60.0  # LiteLLM's per-deployment success/failure counters are per minute


def entry(code: str, message: str) -> dict:
    """One diagnosis item, exactly ``{"code", "message"}``."""
    return {"code": code, "message": message}


# ---------------------------------------------------------------- scenario-only checks


def backend_service_s(backend) -> float:
    """Mean seconds a call holds a slot of ``backend`` (a ``BackendConfig``): the
    latency distribution's mean, hung calls (``failures.timeout``) holding theirs
    ``hang_time``."""
    hang = backend.failures.timeout
    return (1.0 - hang) * backend.latency.mean + hang * backend.hang_time


def deployment_rates(scenario) -> list[tuple[str, int, float, float]]:
    """Per deployment: (name, capacity, mean service s, service rate = capacity /
    mean service, requests/s at full load); empty without deployments."""
    rows = []
    for deployment in scenario.deployments:
        backend = deployment.backend_of(scenario.backend)
        service = backend_service_s(backend)
        rows.append((deployment.name, backend.capacity, service, backend.capacity / service if service > 0 else math.inf))
    return rows


def mean_service_s(scenario) -> float:
    """Mean seconds a call holds a backend slot (``backend_service_s``). Behind a
    gateway, its slots over its service rate (``sum capacity / sum service
    rates``): the mean service time when every deployment's slots are busy."""
    if not scenario.deployments:
        return backend_service_s(scenario.backend)
    rows = deployment_rates(scenario)
    rate = sum(row[3] for row in rows)
    return sum(row[1] for row in rows) / rate if rate > 0 else 0.0


def offered_rate(scenario) -> float:
    """Requests per second the workload offers with no queueing (module doc)."""
    w = scenario.workload
    if w.model == "open":
        return max((stage.rate for stage in w.stages), default=0.0) if w.stages else w.rate
    users = 1 if w.model == "sequential" else w.users
    cycle = mean_service_s(scenario) + w.think_time.mean
    return users / cycle if cycle > 0 else math.inf


def offered_work(scenario) -> float:
    """Slot-seconds per second of work offered: offered rate x mean service time."""
    return offered_rate(scenario) * mean_service_s(scenario)


def _at_or_over(offered: float, limit: float, scenario) -> bool:
    """Offered >= what can be served: open arrivals at exactly the limit queue
    without bound; closed users (at most one request each) that just fill the
    slots keep them busy with no queue."""
    return offered >= limit and not (scenario.workload.model != "open" and offered <= limit * (1 + 1e-9))


WEIGHTED_ROUTING = ("simple-shuffle", "round-robin")  # strategies whose shares are the weights' (policies.routing)


def gateway_overloaded(scenario) -> dict | None:
    """``overloaded`` behind a gateway (module doc): the whole gateway first, then
    each deployment against its weight share of the offered rate."""
    rows = deployment_rates(scenario)
    offered = offered_rate(scenario)
    total_rate = sum(row[3] for row in rows)
    if not math.isfinite(offered):
        return None  # closed users with no think time on a backend that takes no time: no rate to weigh
    parts = ", ".join(f"{name} {capacity} slots / {service * 1000:.0f} ms = {rate:.1f}/s" for name, capacity, service, rate in rows)
    if math.isfinite(total_rate) and _at_or_over(offered, total_rate, scenario):  # infinite: a deployment that takes no time
        slots = sum(row[1] for row in rows)
        needed = max(math.ceil(slots * offered / total_rate), slots + 1)
        return entry(
            "overloaded",
            f"offered rate {offered:.1f}/s against the deployments' combined service rate {total_rate:.1f}/s ({parts}): "
            f"overloaded before any fault; at least {needed} slots in all (the deployments' backend.capacity, at these service "
            f"times) are needed to keep up, {slots} now",
        )
    if scenario.router.routing not in WEIGHTED_ROUTING:
        return None  # the other strategies move load by what they see: the whole gateway's rate is the bound
    weights = sum(d.weight for d in scenario.deployments)
    for index, (deployment, (name, capacity, service, rate)) in enumerate(zip(scenario.deployments, rows)):
        share = deployment.weight / weights
        if _at_or_over(offered * share, rate, scenario):
            needed = max(math.ceil(offered * share * service), capacity + 1)
            return entry(
                "overloaded",
                f"deployment {name} gets {offered * share:.1f}/s ({share:.0%} of the offered {offered:.1f}/s by weight, "
                f"router.routing = {scenario.router.routing!r}) but serves at most {rate:.1f}/s ({capacity} slots / "
                f"{service * 1000:.0f} ms): overloaded before any fault although the gateway as a whole keeps up "
                f"({total_rate:.1f}/s); give it at least {needed} slots (deployments.{index}.backend.capacity), "
                "a lower weight, or a load-aware routing (least-busy, power-of-two)",
            )
    return None


def overloaded(scenario) -> dict | None:
    if scenario.deployments:
        return gateway_overloaded(scenario)
    work, capacity = offered_work(scenario), scenario.backend.capacity
    # Open arrivals at work = capacity queue without bound; closed users (at most one
    # request each) that just fill the slots keep them busy with no queue.
    if not _at_or_over(work, capacity, scenario):
        return None
    needed = max(math.ceil(work), capacity + 1) if math.isfinite(work) else None
    message = (
        f"offered work {work:.1f} slot-seconds per second (offered rate {offered_rate(scenario):.1f}/s x mean service "
        f"{mean_service_s(scenario) * 1000:.0f} ms) on {capacity} slots: overloaded before any fault; "
        f"at least {needed} slots (backend.capacity) are needed to keep up"
    )
    return entry("overloaded", message)


def latency_floors(scenario) -> list[dict]:
    """The latency targets the backend's own service-time quantile already misses
    (behind a gateway: every deployment's own quantile, module doc)."""
    if scenario.deployments:
        latencies = [(f"deployment {d.name}'s (deployments.{i}.backend.latency)", d.backend_of(scenario.backend).latency) for i, d in enumerate(scenario.deployments)]
    else:
        latencies = [("the backend's (backend.latency)", scenario.backend.latency)]
    found = []
    for name, q in (("p95_ms", 0.95), ("p99_ms", 0.99)):
        target_ms = getattr(scenario.targets, name)
        if not math.isfinite(target_ms):
            continue
        if any(latency.cdf(target_ms / 1000.0) >= q for _, latency in latencies):  # cheap test first: some quantile is within the target
            continue
        value_ms, whose = min((latency.quantile(q) * 1000.0, label) for label, latency in latencies)
        if len(latencies) == 1:
            message = (
                f"the backend's own latency P{round(q * 100)} is {value_ms:.0f} ms (backend.latency), above targets.{name} = "
                f"{target_ms:g} ms: no capacity can meet it; make the backend faster or relax the target"
            )
        else:
            message = (
                f"every deployment's own latency P{round(q * 100)} is above targets.{name} = {target_ms:g} ms (the lowest: "
                f"{whose}, {value_ms:.0f} ms): no capacity or routing can meet it; make a deployment faster or relax the target"
            )
        found.append(entry("latency_floor_above_target", message))
    return found


# ---------------------------------------------------------------- what the breaker counted


def _breaker_window(config) -> tuple[str, float] | None:
    """("count", n) or ("time", seconds): the outcomes a preset's trip rule reads."""
    preset = config.preset
    if preset == "default":
        return ("count", config.window_size)
    if preset == "resilience4j":
        if config.sliding_window_type == "TIME_BASED":
            return ("time", float(config.sliding_window_size))
        return ("count", config.sliding_window_size)
    if preset == "pybreaker":
        return ("count", config.fail_max)
    if preset == "hystrix":
        return ("time", config.rolling_window)
    if preset == "polly":
        return ("time", config.sampling_duration)
    if preset == "litellm":  # allowed_fails: its failed-calls counter's TTL; unset: the current minute's counters
        return ("time", config.cooldown_time if config.allowed_fails is not None else LITELLM_MINUTE_S)
    if preset == "envoy":
        return ("count", config.consecutive_5xx)
    return None


def trip_causes(sent: np.ndarray, done: np.ndarray, kind: np.ndarray, transitions, breaker_config) -> list[dict]:
    """For each OPEN transition: ``{"t", "calls", "failures", "timeouts", "slow_calls",
    "queue_full", "cause"}`` from the calls the breaker's window held (module doc)."""
    from .policies.breakers import BreakerState

    window = _breaker_window(breaker_config)
    trips = [tr for tr in transitions if tr.to_state is BreakerState.OPEN]
    if window is None or not trips:
        return []
    counted = (kind == SUCCESS) | (kind == FAILURE) | (kind == TIMEOUT) | (kind == QUEUE_FULL)
    index = np.flatnonzero(counted)
    index = index[np.argsort(done[index], kind="stable")]
    ends = done[index]
    slow_s = getattr(breaker_config, "slow_call_duration_threshold", None)
    found = []
    for tr in trips:
        last = int(np.searchsorted(ends, tr.t, side="right"))
        if window[0] == "count":
            first = max(0, last - int(window[1]))
        else:
            first = int(np.searchsorted(ends, tr.t - window[1], side="right"))
        calls = index[first:last]
        kinds = kind[calls]
        counts = {
            "failures": int(np.count_nonzero(kinds == FAILURE)),
            "timeouts": int(np.count_nonzero(kinds == TIMEOUT)),
            "slow_calls": int(np.count_nonzero((kinds == SUCCESS) & (done[calls] - sent[calls] > slow_s))) if slow_s is not None else 0,
            "queue_full": int(np.count_nonzero(kinds == QUEUE_FULL)),
        }
        cause = max(CAUSES, key=lambda name: counts[name]) if any(counts.values()) else None
        found.append({"t": float(tr.t), "calls": int(calls.size), **counts, "cause": cause})
    return found


def _describe_trips(trips: Sequence[dict]) -> dict | None:
    if not trips:
        return None
    totals = {name: sum(trip[name] for trip in trips) for name in CAUSES}
    cause = max(CAUSES, key=lambda name: totals[name]) if any(totals.values()) else None
    first = min(trips, key=lambda trip: trip["t"])
    held = ", ".join(f"{first[name]} {name.replace('_', ' ')}" for name in CAUSES)
    label = {"failures": "failures", "timeouts": "timeouts", "slow_calls": "slow calls", "queue_full": "queue full"}
    if "deployment" in first:  # behind a gateway: each deployment's own breaker
        per = {}
        for trip in trips:
            per[trip["deployment"]] = per.get(trip["deployment"], 0) + 1
        whose = ", ".join(f"{name}: {n}" for name, n in per.items())
        opened = f"deployment breakers opened {len(trips)} time(s) ({whose}), first {first['deployment']}'s at {first['t']:.1f} s"
    else:
        opened = f"the breaker opened {len(trips)} time(s), first at {first['t']:.1f} s"
    message = f"{opened}, when its window held {first['calls']} calls: {held}; " + (
        f"tripped mostly by {label[cause]}" if cause else "no counted failures in its window"
    )
    return entry("breaker_tripped_by", message)


# ---------------------------------------------------------------- the list


def diagnose(summary: dict, scenario, trips: Sequence[dict] | None = None, precision: dict | None = None) -> list[dict]:
    """The diagnosis of a summary (one run, the means of replications, or live)
    of ``scenario``; ``trips``: ``trip_causes`` of the run; ``precision``: the
    sequential-stopping report of replications."""
    found: list[dict] = []
    overload = overloaded(scenario)
    if overload:
        found.append(overload)
    found += latency_floors(scenario)
    requests = summary.get("requests", {})
    sent = requests.get("sent") or 0
    refused = requests.get("connect_errors") or 0
    if sent and refused / sent >= UNREACHABLE_SHARE:
        found.append(entry("unreachable", f"{refused} of {sent} arrivals could not connect to the target (refused or unreachable): check the address and that it is listening"))
    breaker = summary.get("breaker", {})
    rate = breaker.get("failure_rate")
    if rate is not None and rate >= FAILING_RATE:
        found.append(entry("backend_failing", f"{rate:.0%} of the calls admitted to the backend failed or timed out: the backend, not the traffic, is the problem"))
    described = _describe_trips(trips or [])
    if described:
        found.append(described)
    if breaker.get("recovered") is False or (breaker.get("trips") and breaker.get("state") not in (None, "closed")):
        stuck = [d["name"] for d in summary.get("deployments") or () if d["breaker"].get("recovered") is False or (d["breaker"].get("trips") and d["breaker"].get("state") not in (None, "closed"))]
        whose = f"the breaker of deployment(s) {', '.join(stuck)}" if stuck else "the breaker"
        found.append(entry("never_recovered", f"{whose} opened and was not closed again before the next fault or the end of the run"))
    if precision is not None and precision.get("converged") is False:
        worst = max(precision.get("achieved", {}).items(), key=lambda item: item[1], default=None)
        detail = f" (worst: {worst[0]} within {worst[1]:.1%})" if worst else ""
        found.append(
            entry(
                "not_converged",
                f"sequential stopping reached max_replications = {precision.get('max_replications')} before the precision "
                f"{precision.get('target')} was met{detail}: the intervals are wider than asked; raise --max-replications",
            )
        )
    return found


def merge(diagnoses: Sequence[Sequence[dict]]) -> list[dict]:
    """One list from several replications' lists: each code once (the first
    replication's message), saying in how many replications it appeared when not all."""
    seen: dict[str, dict] = {}
    count: dict[str, int] = {}
    for items in diagnoses:
        for item in items:
            seen.setdefault(item["code"], entry(item["code"], item["message"]))
            count[item["code"]] = count.get(item["code"], 0) + 1
    total = len(diagnoses)
    merged = sorted(seen.values(), key=lambda item: CODES.index(item["code"]) if item["code"] in CODES else len(CODES))
    for item in merged:
        if count[item["code"]] < total:
            item["message"] += f" (in {count[item['code']]} of {total} replications)"
    return merged


def codes(diagnosis: Sequence[dict]) -> list[str]:
    return [item["code"] for item in diagnosis]
