"""The baseline: an idiomatic, bare SimPy M/M/c queue.

One process per request, a ``simpy.Resource`` with ``c`` slots, exponential
inter-arrival and service times drawn in numpy blocks up front (so the baseline
is not handicapped by per-request random calls), response times kept in a list.
This is how SimPy's own examples model a queue; simrouter's full router must
be at least as fast on the same workload.
"""

from __future__ import annotations

import numpy as np
import simpy


def run_mmc(requests: int, lam: float, mu: float, c: int, seed: int = 1) -> np.ndarray:
    """Simulate ``requests`` customers of an M/M/c queue; return their response times."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / lam, requests).tolist()
    services = rng.exponential(1.0 / mu, requests).tolist()
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=c)
    responses: list[float] = []

    def customer(service: float):
        arrived = env.now
        with servers.request() as slot:
            yield slot
            yield env.timeout(service)
        responses.append(env.now - arrived)

    def source():
        for gap, service in zip(gaps, services):
            yield env.timeout(gap)
            env.process(customer(service))

    env.process(source())
    env.run()
    return np.asarray(responses)


if __name__ == "__main__":
    import time

    started = time.perf_counter()
    times = run_mmc(200_000, lam=6.4, mu=1.0, c=8)
    elapsed = time.perf_counter() - started
    print(f"{len(times)} requests in {elapsed:.2f} s: {len(times) / elapsed:,.0f} req/s; mean response {times.mean():.3f} s")
