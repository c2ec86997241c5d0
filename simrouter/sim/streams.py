"""Independent random streams, one per source of randomness.

Each source draws from its own generator seeded by
``SeedSequence([seed, replication, source, *index])``, so a source's draws depend
only on the seed, the replication and the source (and the user, for think
times), never on what other sources consumed. Two configurations run with the
same seed therefore see the same arrivals, think times and service times
(common random numbers).
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
