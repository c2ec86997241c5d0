"""The real-clock engine: the reference router service, the load generator, and
the comparison with the simulation.

=============================  ====================================================
``RouterService``              the router as an aiohttp service (``simrouter serve``)
``GatewayService``             the same router in front of several deployments
``router_service(scenario)``   the one of the two a scenario needs
``ServiceThread``, ``serving``  the service on a background thread, free port
``run_live(scenario, url)``    the scenario's workload against a live target -> ``LiveResult``
``LiveOptions``                connections, bounds, timeouts, classification, client
``Classifier``                 HTTP answer -> outcome kind mapping
``compare(scenario)``          simulation (replications) vs live, side by side
``calibrate(sample)``          fit latency families; ``calibrated_scenario`` writes TOML
=============================  ====================================================
"""

from .calibrate import Calibration, calibrate, calibrated_scenario
from .classify import Classifier
from .compare import LiveComparison, compare
from .loadgen import LiveOptions, LoadGenerator, run_live
from .result import LiveResult
from .gateway_service import GatewayService
from .service import RouterService
from .service_thread import ServiceThread, router_service, serving

__all__ = [
    "Calibration",
    "Classifier",
    "GatewayService",
    "LiveComparison",
    "LiveOptions",
    "LiveResult",
    "LoadGenerator",
    "RouterService",
    "ServiceThread",
    "calibrate",
    "calibrated_scenario",
    "compare",
    "router_service",
    "run_live",
    "serving",
]
