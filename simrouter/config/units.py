"""Unit traps: times typed in milliseconds where the schema means seconds.

Every time in a scenario is in seconds (``sections`` docstring). A latency
typed as ``p50 = 80`` (meaning 80 ms) runs as 80 seconds and reports a P95 of
minutes. ``unit_warnings(scenario)`` lists one line per distribution whose
median is implausible for seconds:

* a backend latency (``backend.latency``, ``backend.ttft``, ``backend.tpot``)
  whose median exceeds the router timeout (when finite) or 60 s;
* a think time (``workload.think_time``) whose median exceeds 60 s.

The median is read from the distribution's CDF (``cdf(limit) < 0.5``: more
than half the draws exceed the limit). ``Scenario`` emits each line as a
``UnitWarning`` (Python's ``warnings``, shown once per message); the
``simrouter`` command prints it as one ``simrouter: warning:`` line.
"""

from __future__ import annotations

import math
import warnings

from ..errors import ScenarioWarning

PLAUSIBLE_S = 60.0  # a median above this many seconds is most likely milliseconds


class UnitWarning(ScenarioWarning):
    """A value that looks typed in the wrong unit (it names the field and "seconds")."""


def unit_warnings(scenario) -> list[str]:
    found = []
    timeout = scenario.router.timeout
    latency_limit = min(timeout, PLAUSIBLE_S) if math.isfinite(timeout) else PLAUSIBLE_S
    why = f"the router timeout ({timeout:g} s)" if latency_limit == timeout else f"{PLAUSIBLE_S:g} s"
    backend = scenario.backend
    checks = [("backend.latency", backend.latency, latency_limit, why)]
    checks += [(f"backend.{name}", getattr(backend, name), latency_limit, why) for name in ("ttft", "tpot") if getattr(backend, name) is not None]
    checks.append(("workload.think_time", scenario.workload.think_time, PLAUSIBLE_S, f"{PLAUSIBLE_S:g} s"))
    for field, distribution, limit, reason in checks:
        if distribution.cdf(limit) < 0.5:
            found.append(
                f"{field}: its median is above {reason}; times are in seconds (80 ms is 0.08), "
                "so a value typed in milliseconds runs a thousand times too slow"
            )
    return found


def warn_units(scenario) -> None:
    for message in unit_warnings(scenario):
        warnings.warn(message, UnitWarning, stacklevel=2)
