"""The real router's breaker, observed from outside (``simrouter live --fault-proxy URL``).

The generator knows what it sent and what came back; ``simrouter proxy``, in
front of one backend of the router, knows which of those requests reached that
backend (its record, ``GET /metrics?rows=1``, moved to the generator's clock by
the midpoint of the call: ``offset = (before + after) / 2 - proxy uptime``).
Requests the router answered without reaching the backend (fast rejections,
fallbacks elsewhere) are what an open breaker looks like from outside.

The rule, in bins of ``BIN_S`` seconds of the generator's clock (requests by the
time they went on the wire, dropped arrivals left out; proxy arrivals by their
arrival):

* ``reach`` of a bin = proxy arrivals / requests sent; ``success`` = requests sent
  in the bin that succeeded / requests sent. The *reference* ``reach`` and
  ``success`` are those of all the bins before the first fault window starts (1.0
  when there are none).
* Timeline: the breaker is observed ``open`` from the start of the first of two
  consecutive bins with requests whose ``reach`` is below ``OPEN_BELOW`` x the
  reference (one such bin alone is a stall of the router or the machine, not a
  breaker: opens shorter than two bins are not seen), and ``closed`` again from the
  start of the first later bin whose ``reach`` is at least ``FLOWING_AT`` x the
  reference (between the two: unchanged; empty bins change nothing). It starts
  closed. Half-open probes look like "open": few requests pass.
* ``observed_recovery_s`` of a fault window: with bins now aligned on the window's
  ``end``, the start of the first bin ``t >= end`` that has requests, ``reach`` at
  least ``OPEN_BELOW`` x the reference, and from which the whole span ``[t, t +
  SETTLE_S)`` has ``reach`` and ``success`` (its requests together) at least
  ``FLOWING_AT`` x the reference, minus ``end``; None (not recovered) when no such
  ``t`` leaves ``SETTLE_S`` of sending before the run's last request or the next
  window. The run's ``observed_recovery_s`` is the largest over the windows (None
  if one did not recover). Taking the span's requests together keeps a short stall
  (requests reaching the backend a bin late) from delaying the recovery.

A real breaker that closes at ``t_c`` is observed within one bin of ``t_c``
(``BIN_S`` = 0.25 s) when the traffic is at least a few requests per bin.
``per_second`` lists, per whole second, requests sent, those that reached the
backend, the generator's outcomes by kind, and the proxy's faults by kind.
"""

from __future__ import annotations

import math

import numpy as np

BIN_S = 0.25
SETTLE_S = 1.0
OPEN_BELOW = 0.5
FLOWING_AT = 0.9


async def read_proxy(session, url: str, now) -> dict | None:
    """The proxy's ``/metrics?rows=1`` with ``clock_offset_s`` (generator minus proxy clock), or None."""
    import asyncio

    import aiohttp

    before = now()
    try:
        async with session.get(url.rstrip("/") + "/metrics", params={"rows": "1"}, timeout=aiohttp.ClientTimeout(total=10.0)) as response:
            if response.status != 200:
                return None
            data = await response.json(content_type=None)
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ValueError):
        return None
    after = now()
    if not isinstance(data, dict) or not data.get("proxy") or not isinstance(data.get("uptime_s"), (int, float)):
        return None
    data["clock_offset_s"] = (before + after) / 2 - data["uptime_s"]
    return data


def _ratio(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(whole > 0, part / np.maximum(whole, 1), np.nan)


def observe(sent_at: np.ndarray, success: np.ndarray, kinds: np.ndarray, kind_names, reached_at: np.ndarray, proxy_faults: list[str], faults, run_end: float) -> dict:
    """The observed breaker (module docstring) from requests sent at ``sent_at`` (on the wire,
    generator clock) with ``success`` flags and ``kinds`` codes (names ``kind_names``), proxy
    arrivals ``reached_at`` (generator clock) with their fault kinds, the scenario's ``faults``."""
    order = sorted(faults, key=lambda f: f.start)
    first_start = order[0].start if order else math.inf
    pre_sent = sent_at < first_start
    n_pre = int(np.count_nonzero(pre_sent))
    if n_pre:
        ref_reach = min(1.0, np.count_nonzero(reached_at < first_start) / n_pre)
        ref_success = float(np.count_nonzero(success & pre_sent)) / n_pre
    else:
        ref_reach, ref_success = 1.0, 1.0

    # Timeline on bins from 0.
    bins = max(1, math.ceil(run_end / BIN_S))
    edges = np.arange(bins + 1) * BIN_S
    n_sent = np.histogram(sent_at, edges)[0]
    n_reached = np.histogram(reached_at, edges)[0]
    reach = _ratio(n_reached, n_sent)
    timeline, state = [], "closed"
    busy = [i for i in range(bins) if n_sent[i] > 0]
    for position, i in enumerate(busy):
        following = busy[position + 1] if position + 1 < len(busy) else None
        if state == "closed" and reach[i] < OPEN_BELOW * ref_reach and following is not None and reach[following] < OPEN_BELOW * ref_reach:
            timeline.append({"t": float(edges[i]), "from": "closed", "to": "open"})
            state = "open"
        elif state == "open" and reach[i] >= FLOWING_AT * ref_reach:
            timeline.append({"t": float(edges[i]), "from": "open", "to": "closed"})
            state = "closed"

    recoveries = []
    for position, fault in enumerate(order):
        horizon = min(order[position + 1].start if position + 1 < len(order) else math.inf, float(sent_at.max()) if sent_at.size else 0.0)
        recovered_at = None
        k = 0
        while fault.end + k * BIN_S + SETTLE_S <= horizon + 1e-9:
            t = fault.end + k * BIN_S
            if _flowing(t, sent_at, success, reached_at, ref_reach, ref_success):
                recovered_at = t
                break
            k += 1
        recoveries.append({"fault_start": fault.start, "fault_end": fault.end, "recovered_at": recovered_at, "observed_recovery_s": None if recovered_at is None else recovered_at - fault.end})
    values = [r["observed_recovery_s"] for r in recoveries]
    observed = None if not values or None in values else max(values)

    seconds = max(1, math.ceil(run_end))
    second_edges = np.arange(seconds + 1, dtype=float)
    per_second = []
    index = np.clip(np.floor(sent_at).astype(int), 0, seconds - 1) if sent_at.size else np.empty(0, int)
    reached_index = np.floor(reached_at).astype(int) if reached_at.size else np.empty(0, int)
    reached_counts = np.histogram(reached_at, second_edges)[0]
    faults_arr = np.asarray(proxy_faults)
    for s in range(seconds):
        mask = index == s
        outcomes = {kind_names[code]: int(n) for code, n in zip(*np.unique(kinds[mask], return_counts=True))} if mask.any() else {}
        in_second = reached_index == s
        proxy = {str(k): int(n) for k, n in zip(*np.unique(faults_arr[in_second], return_counts=True))} if faults_arr.size and in_second.any() else {}
        per_second.append({"t": float(s), "sent": int(np.count_nonzero(mask)), "reached_backend": int(reached_counts[s]), "outcomes": outcomes, "proxy_faults": proxy})
    return {
        "bin_s": BIN_S,
        "settle_s": SETTLE_S,
        "reference": {"reach": ref_reach, "success": ref_success},
        "timeline": timeline,
        "state": state,
        "recoveries": recoveries,
        "observed_recovery_s": observed,
        "per_second": per_second,
    }


def _flowing(t: float, sent_at, success, reached_at, ref_reach: float, ref_success: float) -> bool:
    """The bin at t has requests and reach >= OPEN_BELOW x the reference, and [t, t + SETTLE_S)
    as a whole has reach and success at least FLOWING_AT x the reference."""
    def count(values, low, high):
        return int(np.count_nonzero((values >= low) & (values < high)))

    first_sent = count(sent_at, t, t + BIN_S)
    if first_sent == 0 or count(reached_at, t, t + BIN_S) < OPEN_BELOW * ref_reach * first_sent:
        return False
    end = t + SETTLE_S
    sent = count(sent_at, t, end)
    return count(reached_at, t, end) >= FLOWING_AT * ref_reach * sent and count(sent_at[success], t, end) >= FLOWING_AT * ref_success * sent


def attach(result, proxy: dict | None) -> None:
    """Put the observed breaker of a finished live ``result`` in ``result.fault_injection["observed_breaker"]``
    (``live.faults.observed_breaker`` of its summary), or a note when the proxy could not be read."""
    from ..outcomes import SUCCESS
    from .classify import DROPPED, LIVE_KIND_NAMES

    if proxy is None:
        result.fault_injection["observed_breaker"] = None
        result.notes.append("the fault proxy's /metrics could not be read: no observed breaker")
        return
    rows = proxy.get("rows") or {}
    offset = proxy["clock_offset_s"]
    arrivals = np.asarray(rows.get("arrival_s", []), dtype=float) + offset
    faults = list(rows.get("fault", []))
    keep = arrivals >= 0  # requests of earlier runs through the same proxy stay out
    arrivals = arrivals[keep]
    faults = [f for f, k in zip(faults, keep) if k]
    on_wire = result.kind != DROPPED
    sent_at = result.actual[on_wire]
    kinds = result.kind[on_wire]
    result.fault_injection["proxy_clock_offset_s"] = offset
    result.fault_injection["observed_breaker"] = observe(
        sent_at, kinds == SUCCESS, kinds, LIVE_KIND_NAMES, arrivals, faults, result.scenario.faults, float(result.sim_time_s)
    )


def describe(observed: dict | None) -> str:
    """A few lines for the terminal: the observed timeline and recovery."""
    if observed is None:
        return "observed breaker (fault proxy): not available (the proxy's /metrics could not be read)"
    steps = ", ".join(f"{t['to']} at {t['t']:.2f} s" for t in observed["timeline"]) or "never opened"
    lines = [f"observed breaker (fault proxy, {observed['bin_s']:g} s bins): {steps}"]
    for r in observed["recoveries"]:
        value = "not recovered" if r["observed_recovery_s"] is None else f"{r['observed_recovery_s']:.2f} s"
        lines.append(f"  fault {r['fault_start']:g}-{r['fault_end']:g} s: observed_recovery_s {value}")
    return "\n".join(lines)
