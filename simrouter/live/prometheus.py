"""The reference service's metrics in the Prometheus text format.

Computed at scrape time from the service's ``Recorder`` (a custom collector), so
serving requests costs no metric updates:

* ``simrouter_requests_total{kind}``: answers by outcome kind (counter);
* ``simrouter_request_latency_seconds``: latency of requests admitted to the
  backend (histogram; ``LATENCY_BUCKETS``);
* ``simrouter_breaker_state`` (0 closed, 1 open, 2 half-open), ``simrouter_breaker_trips_total``;
* ``simrouter_backend_busy_slots``, ``simrouter_backend_queued``, ``simrouter_uptime_seconds``.
"""

from __future__ import annotations

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..metrics import backend_mask, kind_counts
from ..policies.breakers import BreakerState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


class _ServiceCollector:
    def __init__(self, service):
        self._service = service

    def collect(self):
        service = self._service
        sent, done, kind = service.recorder.columns()
        requests = CounterMetricFamily("simrouter_requests", "Answers by outcome kind.", labels=["kind"])
        for name, count in kind_counts(kind).items():
            requests.add_metric([name], count)
        yield requests

        latency = (done - sent)[backend_mask(kind)]
        cumulative = np.searchsorted(np.sort(latency), LATENCY_BUCKETS, side="right")
        buckets = [(repr(le), float(n)) for le, n in zip(LATENCY_BUCKETS, cumulative)] + [("+Inf", float(latency.size))]
        yield HistogramMetricFamily(
            "simrouter_request_latency_seconds", "Latency of requests admitted to the backend.", buckets=buckets, sum_value=float(latency.sum())
        )

        breaker = service.breaker
        yield GaugeMetricFamily("simrouter_breaker_state", "Breaker state: 0 closed, 1 open, 2 half-open.", value=STATE_VALUE.get(breaker.state, -1))
        trips = sum(1 for tr in breaker.transitions if tr.to_state is BreakerState.OPEN)
        yield CounterMetricFamily("simrouter_breaker_trips", "Times the breaker opened.", value=trips)
        backend = service._backend
        yield GaugeMetricFamily("simrouter_backend_busy_slots", "Backend slots in service.", value=backend.busy if backend else 0)
        yield GaugeMetricFamily("simrouter_backend_queued", "Requests waiting for a backend slot.", value=backend.queued if backend else 0)
        yield GaugeMetricFamily("simrouter_uptime_seconds", "Seconds since the service started.", value=service.now())


def render(service) -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service))
    return generate_latest(registry), CONTENT_TYPE_LATEST
