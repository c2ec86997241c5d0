"""What can happen to one request, as small integer codes (cheap to record).

Only ``SUCCESS``, ``TIMEOUT`` and ``FAILURE`` reach the backend; their latency
is what the latency percentiles describe. The others are answered by the router
at once. ``KIND_NAMES`` gives each code its name in results (``requests.*``).
"""

SUCCESS = 0
RATE_LIMITED = 1
BREAKER_REJECTED = 2
TIMEOUT = 3
FAILURE = 4
VALIDATION = 5
QUEUE_FULL = 6

KIND_NAMES = (
    "succeeded",
    "rate_limited",
    "breaker_rejected",
    "timeouts",
    "failures",
    "validation_errors",
    "queue_full",
)

# Outcomes of requests admitted to the backend (they have a meaningful latency).
BACKEND_KINDS = (SUCCESS, TIMEOUT, FAILURE)
