"""Independent random streams, one per source of randomness.

Each source draws from its own generator seeded by
``SeedSequence([seed, replication, source, *index])``, so a source's draws depend
only on the seed, the replication and the source (and the user, for think
times), never on what other sources consumed. Two configurations run with the
same seed therefore see the same arrivals, think times and service times
(common random numbers).

Behind a gateway each deployment draws its backend, fault and breaker numbers
from the same sources keyed by ``deployment_key(d)``: deployment 0 uses the
single backend's keys (a one-deployment gateway is the single backend, draw for
draw), deployment d > 0 appends d, so no two deployments share a stream.
"""

from __future__ import annotations

import numpy as np

ARRIVALS = 0
USER_KEYS = 1
THINK = 2
LATENCY = 3
BACKEND_OUTCOME = 4
FAULT_OUTCOME = 5
VALIDATION = 6
BREAKER = 7  # randomized breaker waits (resilience4j)
RETRY_JITTER = 8  # client retry backoff jitter


def stream(seed: int, replication: int, source: int, *index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, replication, source, *index]))
PROMPT_TOKENS = 9  # [workload.tokens] prompt, per logical request (sim.requests)
OUTPUT_TOKENS = 10  # [workload.tokens] output, per logical request
ROUTING = 11  # a gateway's routing strategy (simple-shuffle, power-of-two draws)


def deployment_key(deployment: int) -> tuple[int, ...]:
    """The index a deployment's streams append to their source (module docstring)."""
    return (deployment,) if deployment else ()
