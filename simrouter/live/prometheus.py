"""The reference service's metrics in the Prometheus text format.

Read at scrape time from the service's running aggregates
(``simrouter.live.running``, a custom collector): a scrape costs the same
whatever the number of requests.

* ``simrouter_requests_total{kind}``: answers by outcome kind (counter);
* ``simrouter_request_latency_seconds``: latency of requests admitted to the
  backend (histogram; ``LATENCY_BUCKETS``);
* ``simrouter_breaker_state`` (0 closed, 1 open, 2 half-open), ``simrouter_breaker_trips_total``;
* ``simrouter_backend_busy_slots``, ``simrouter_backend_queued``, ``simrouter_uptime_seconds``.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from ..policies.breakers import BreakerState
from .running import LATENCY_BUCKETS  # noqa: F401  (re-exported: the buckets' upper bounds)

STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.OPEN: 1, BreakerState.HALF_OPEN: 2}


class _ServiceCollector:
    def __init__(self, service):
        self._service = service

    def collect(self):
        service = self._service
        recorder = service.recorder
        requests = CounterMetricFamily("simrouter_requests", "Answers by outcome kind.", labels=["kind"])
        for name, count in recorder.kind_counts().items():
            requests.add_metric([name], count)
        yield requests

        buckets = [("+Inf" if le == float("inf") else repr(le), float(n)) for le, n in recorder.cumulative_buckets()]
        yield HistogramMetricFamily(
            "simrouter_request_latency_seconds", "Latency of requests admitted to the backend.", buckets=buckets, sum_value=recorder.latency_sum_s
        )

        breaker = service.breaker
        yield GaugeMetricFamily("simrouter_breaker_state", "Breaker state: 0 closed, 1 open, 2 half-open.", value=STATE_VALUE.get(breaker.state, -1))
        trips = sum(1 for tr in breaker.transitions if tr.to_state is BreakerState.OPEN)
        yield CounterMetricFamily("simrouter_breaker_trips", "Times the breaker opened.", value=trips)
        busy, queued = service.backend_gauges()
        yield GaugeMetricFamily("simrouter_backend_busy_slots", "Backend slots in service.", value=busy)
        yield GaugeMetricFamily("simrouter_backend_queued", "Requests waiting for a backend slot.", value=queued)
        yield GaugeMetricFamily("simrouter_uptime_seconds", "Seconds since the service started.", value=service.now())


def render(service) -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service))
    return generate_latest(registry), CONTENT_TYPE_LATEST
