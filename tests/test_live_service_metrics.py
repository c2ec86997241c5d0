"""``/metrics`` of the reference service from running aggregates (issue 17, item 10).

200,000 answers go through the service's recorder API directly (no HTTP: the
point is the bookkeeping, not the network). The service must keep no
per-request column: the memory it holds does not grow from 20,000 answers to
200,000, and a scrape allocates a bounded amount whatever the count (work is
counted in bytes allocated, not in seconds). Its figures agree with an exact
computation over the same answers: counts, rates and throughput exactly;
P50..P99 within HdrHistogram's 3 significant digits; max, min and avg exactly;
the rolling window exactly (numpy's linear interpolation, as the simulation).
Timing at 2 million requests is in ``benchmarks/bench_service_metrics.py``.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import simrouter
from simrouter.live.service import RouterService
from simrouter.metrics import latency_stats
from simrouter.outcomes import BACKEND_KINDS, BREAKER_REJECTED, FAILURE, KIND_NAMES, QUEUE_FULL, RATE_LIMITED, SUCCESS, TIMEOUT, VALIDATION

N = 200_000
FIRST = 20_000


def answers(n: int, start: float, seed: int = 5):
    """(sent, done, kind) of ``n`` answers in answer order, every one sent after ``start``."""
    rng = np.random.default_rng(seed)
    codes = np.array([SUCCESS, FAILURE, TIMEOUT, RATE_LIMITED, VALIDATION, QUEUE_FULL, BREAKER_REJECTED])
    kind = rng.choice(codes, size=n, p=[0.8, 0.05, 0.03, 0.05, 0.03, 0.02, 0.02])
    sent = start + 1.0 + np.cumsum(rng.exponential(1e-3, n))
    latency = np.where(np.isin(kind, BACKEND_KINDS), rng.lognormal(np.log(0.05), 0.8, n), 0.0)
    done = sent + latency
    order = np.argsort(done, kind="stable")
    return sent[order], done[order], kind[order]


@pytest.fixture(scope="module")
def pushed():
    scenario = simrouter.load_scenario("concurrent")
    service = RouterService(scenario)
    sent, done, kind = answers(N, service.now())
    add = service.recorder.add
    rows = list(zip(sent.tolist(), done.tolist(), kind.tolist()))
    tracemalloc.start()
    try:
        for row in rows[:FIRST]:
            add(*row)
        held_at_first = tracemalloc.get_traced_memory()[0]
        for row in rows[FIRST:]:
            add(*row)
        held_at_all = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        before_scrape = tracemalloc.get_traced_memory()[0]
        metrics = service.metrics()
        scrape_peak = tracemalloc.get_traced_memory()[1] - before_scrape
    finally:
        tracemalloc.stop()
    return {
        "service": service, "metrics": metrics, "sent": sent, "done": done, "kind": kind,
        "growth": held_at_all - held_at_first, "scrape_peak": scrape_peak,
    }


def test_the_service_keeps_no_per_request_state(pushed):
    # A per-request column would be >= 17 bytes x 180,000 = 3 MB (the old Recorder's columns).
    assert pushed["growth"] < 100_000, pushed["growth"]


def test_a_scrape_allocates_a_bounded_amount(pushed):
    # Copying or sorting the latencies of 200,000 requests would take > 1.6 MB; the rolling
    # window (10,000 values, 80 kB) and the JSON dict are all a scrape may build.
    assert pushed["scrape_peak"] < 1_000_000, pushed["scrape_peak"]


def test_counts_rates_and_throughput_are_exact(pushed):
    metrics, kind, done = pushed["metrics"], pushed["kind"], pushed["done"]
    requests = metrics["requests"]
    assert requests["sent"] == N
    for code, name in enumerate(KIND_NAMES):
        assert requests[name] == int(np.count_nonzero(kind == code)), name
    successes = int(np.count_nonzero(kind == SUCCESS))
    assert metrics["error_rate"] == pytest.approx((N - successes) / N, rel=1e-12)
    admitted = int(np.count_nonzero(np.isin(kind, BACKEND_KINDS)))
    assert metrics["breaker"]["failure_rate"] == pytest.approx((admitted - successes) / admitted, rel=1e-12)
    window = done.max() - metrics["warmup"]["seconds"]
    assert metrics["throughput"]["rps"] == pytest.approx(N / window, rel=1e-12)
    assert metrics["throughput"]["success_rps"] == pytest.approx(successes / window, rel=1e-12)


def test_latency_figures_agree_with_the_exact_ones(pushed):
    metrics, kind = pushed["metrics"], pushed["kind"]
    mask = np.isin(kind, BACKEND_KINDS)
    latency_ms = (pushed["done"] - pushed["sent"])[mask] * 1000.0
    figures = metrics["latency_ms"]
    assert figures["count"] == latency_ms.size
    for p in (50, 90, 95, 99):
        exact = float(np.percentile(latency_ms, p))
        assert figures[f"p{p}"] == pytest.approx(exact, rel=1.5e-3), p  # 3 significant digits (and 1 us rounding)
    assert figures["max"] == pytest.approx(latency_ms.max(), rel=1e-9)
    assert figures["min"] == pytest.approx(latency_ms.min(), rel=1e-9)
    assert figures["avg"] == pytest.approx(latency_ms.mean(), rel=1e-9)
    assert metrics["breaker"]["avg_response_ms"] == figures["avg"]


def test_the_rolling_window_is_the_last_answers_exactly(pushed):
    metrics, kind = pushed["metrics"], pushed["kind"]
    size = pushed["service"].scenario.metrics.window
    mask = np.isin(kind, BACKEND_KINDS)
    last = ((pushed["done"] - pushed["sent"])[mask])[-size:]
    expected = latency_stats(last.copy())
    for key, value in expected.items():
        assert metrics["latency_ms_window"][key] == pytest.approx(value, rel=1e-9), key


def test_prometheus_histogram_counts_every_admitted_request(pushed):
    from prometheus_client.parser import text_string_to_metric_families

    from simrouter.live.prometheus import render

    body, _ = render(pushed["service"])
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    latency = pushed["done"] - pushed["sent"]
    admitted = latency[np.isin(pushed["kind"], BACKEND_KINDS)]
    buckets = {s.labels["le"]: s.value for s in families["simrouter_request_latency_seconds"].samples if s.name.endswith("_bucket")}
    assert buckets["+Inf"] == admitted.size
    assert buckets["0.1"] == np.count_nonzero(admitted <= 0.1)
    requests = {s.labels["kind"]: s.value for s in families["simrouter_requests"].samples if s.name.endswith("_total")}
    assert requests["succeeded"] == np.count_nonzero(pushed["kind"] == SUCCESS)
