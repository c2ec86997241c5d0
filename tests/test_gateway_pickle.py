"""A gateway scenario crosses process boundaries: pickling, process pools, sweeps.

A scenario with ``[[deployments]]`` carries the partial ``backend`` sections
(``config.sections.PartialBackend``), classes made at import time: pickle must
find them under their module-level names, or ``replicate(..., executor=pool)``,
``simrouter sweep --executor processes`` and Dask all fail.
"""

from __future__ import annotations

import pickle

from simrouter.config.loader import load_scenario
from simrouter.executors import open_executor
from simrouter.replications import replicate
from simrouter.sweeps import sweep


def test_a_gateway_scenario_survives_a_pickle_round_trip():
    scenario = load_scenario("failover", ["deployments.1.backend.capacity=6", "deployments.0.backend.failures.processing=0.01"])
    assert scenario.deployments[1].backend.capacity == 6  # a partial section that is set, not only the default
    copy = pickle.loads(pickle.dumps(scenario))
    assert copy == scenario
    assert type(copy.deployments[0].backend) is type(scenario.deployments[0].backend)
    assert copy.deployments[0].backend_of(copy.backend).failures.processing == 0.01


def test_replications_on_a_process_pool_equal_the_serial_ones():
    serial = replicate("failover", replications=4)
    with open_executor("processes", 2) as pool:
        pooled = replicate("failover", replications=4, executor=pool)
    assert pooled.summaries == serial.summaries
    assert pooled.summary["deployments"] == serial.summary["deployments"]
    assert pooled.summary["fallbacks"] == serial.summary["fallbacks"]


def test_a_gateway_sweep_on_a_process_pool_has_no_failed_runs():
    spec = {
        "scenario": "failover",
        "replications": 2,
        "grid": {"router.max_fallbacks": [0, 2]},
        "metrics": ["error_rate", "attempts.total"],
    }
    serial = sweep(spec)
    with open_executor("processes", 2) as pool:
        pooled = sweep(spec, executor=pool)
    assert "error" not in pooled.columns or pooled["error"].isna().all()  # a run that raised would be a row with an error
    assert pooled.equals(serial)
    by_fallbacks = pooled.groupby("router.max_fallbacks")["error_rate"].mean()
    assert by_fallbacks[2] < by_fallbacks[0]  # the fallbacks really ran in the workers


def test_every_partial_section_class_is_found_by_its_qualified_name():
    import importlib

    from simrouter.config import sections

    for cls in (sections.PartialBackend, sections.PartialFailures):
        assert getattr(importlib.import_module(cls.__module__), cls.__qualname__) is cls
