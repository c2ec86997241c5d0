"""Open-workload arrivals, shared by the simulator and the live load generator.

``open_schedule(scenario)`` is the piecewise-constant rate as ``[(stage end, rate)]``:
one stage at ``workload.rate`` up to ``duration``, or the ``stages`` in order, each
cut at ``duration``.

``arrival_times(schedule, poisson, gaps)`` yields the intended arrival times in
order. Constant arrivals fall at ``stage start + k / rate`` (k = 0, 1, ...),
computed rather than accumulated so they do not drift. Poisson gaps are unit
exponentials (``gaps``, a ``VariateStream``) divided by the stage's rate; at a
stage boundary the next gap is drawn afresh (memorylessness makes that exact).
A stage of rate 0 is a pause.
"""

from __future__ import annotations

from collections.abc import Iterator


def open_schedule(scenario) -> list[tuple[float, float]]:
    w = scenario.workload
    if not w.stages:
        return [(scenario.duration, w.rate)]
    schedule, end = [], 0.0
    for stage in w.stages:
        end += stage.duration
        schedule.append((min(end, scenario.duration), stage.rate))
    return schedule


def arrival_times(schedule: list[tuple[float, float]], poisson: bool, gaps) -> Iterator[float]:
    stage_start = 0.0
    for stage_end, rate in schedule:
        if rate > 0:
            k, t = 0, stage_start
            while True:
                if poisson:
                    t += gaps.next() / rate
                else:
                    t = stage_start + k / rate
                    k += 1
                if t >= stage_end:
                    break
                yield t
        stage_start = stage_end
