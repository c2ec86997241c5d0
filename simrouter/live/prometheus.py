"""The reference service's metrics in the Prometheus text format.

Read at scrape time from the service's running aggregates
(``simrouter.live.running``, a custom collector): a scrape costs the same
whatever the number of requests.

* ``simrouter_requests_total{kind}``: answers by outcome kind (counter);
* ``simrouter_request_latency_seconds``: latency of requests admitted to the
  backend (histogram; ``LATENCY_BUCKETS``);
* ``simrouter_breaker_state`` (0 closed, 1 open, 2 half-open), ``simrouter_breaker_trips_total``;
* ``simrouter_backend_busy_slots``, ``simrouter_backend_queued``, ``simrouter_uptime_seconds``.

Behind a gateway (``[[deployments]]``) the breaker gauges are the worst
deployment's state and the trips summed, and each deployment has its own series
with a ``deployment`` label:

* ``simrouter_deployment_attempts_total{deployment, kind}``: its attempts by kind;
* ``simrouter_deployment_breaker_state{deployment}``, ``simrouter_deployment_breaker_trips_total{deployment}``;
* ``simrouter_deployment_busy_slots{deployment}``, ``simrouter_deployment_queued{deployment}``;

and ``simrouter_fallbacks_total`` counts the fallback attempts.
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

        state, trips = service.breaker_gauges()
        yield GaugeMetricFamily("simrouter_breaker_state", "Breaker state: 0 closed, 1 open, 2 half-open.", value=STATE_VALUE.get(state, -1))
        yield CounterMetricFamily("simrouter_breaker_trips", "Times the breaker opened.", value=trips)
        busy, queued = service.backend_gauges()
        yield GaugeMetricFamily("simrouter_backend_busy_slots", "Backend slots in service.", value=busy)
        yield GaugeMetricFamily("simrouter_backend_queued", "Requests waiting for a backend slot.", value=queued)
        yield GaugeMetricFamily("simrouter_uptime_seconds", "Seconds since the service started.", value=service.now())
        deployments = service.deployment_gauges()
        if deployments:
            yield from _deployment_families(deployments, service.fallbacks)


def _deployment_families(deployments: list[dict], fallbacks: int):
    """The per-deployment series (label ``deployment``) and the fallback counter."""
    attempts = CounterMetricFamily("simrouter_deployment_attempts", "Attempts routed to a deployment, by outcome kind.", labels=["deployment", "kind"])
    state = GaugeMetricFamily("simrouter_deployment_breaker_state", "A deployment's breaker: 0 closed, 1 open, 2 half-open.", labels=["deployment"])
    trips = CounterMetricFamily("simrouter_deployment_breaker_trips", "Times a deployment's breaker opened.", labels=["deployment"])
    busy = GaugeMetricFamily("simrouter_deployment_busy_slots", "A deployment's backend slots in service.", labels=["deployment"])
    queued = GaugeMetricFamily("simrouter_deployment_queued", "Requests waiting for a slot of a deployment's backend.", labels=["deployment"])
    for d in deployments:
        name = d["name"]
        for kind, count in d["attempts"].items():
            attempts.add_metric([name, kind], count)
        state.add_metric([name], STATE_VALUE.get(d["state"], -1))
        trips.add_metric([name], d["trips"])
        busy.add_metric([name], d["busy"])
        queued.add_metric([name], d["queued"])
    yield from (attempts, state, trips, busy, queued)
    yield CounterMetricFamily("simrouter_fallbacks", "Fallback attempts sent to another deployment.", value=fallbacks)


def render(service) -> tuple[bytes, str]:
    """(body, content type) of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ServiceCollector(service))
    return generate_latest(registry), CONTENT_TYPE_LATEST
