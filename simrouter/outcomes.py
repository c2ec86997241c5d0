"""What can happen to one request, as small integer codes (cheap to record).

A logical request (one workload send, whatever retries or hedges it took)
keeps the kind of its final answer. ``SUCCESS``, ``TIMEOUT`` and ``FAILURE``
mean the final try reached the backend; the others are answered by the router
at once. The latency figures do not select by kind alone: they describe every
request that spent time (``metrics.latency_population``: a final kind in
``BACKEND_KINDS``, or an answer later than the first send, e.g. a request
whose tries were served, failed and whose last retry was then rejected by the
breaker). ``KIND_NAMES`` gives each code its name in results (``requests.*``).
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

# Final outcomes of a try admitted to the backend.
BACKEND_KINDS = (SUCCESS, TIMEOUT, FAILURE)
