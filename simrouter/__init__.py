"""simrouter: predict how an AI request router behaves under load.

Public API
==========

================================  ==================================================
``simulate(scenario, seed=1)``    run a scenario in simulated time -> ``RunResult``
``load_scenario(name_or_path)``   a built-in scenario or TOML file -> ``Scenario``
``Scenario`` and its sections     typed, validated configuration (``config``)
``RunResult``                     raw columns, ``summary``, ``to_dict()``, DataFrames
``TokenBucket``, ``CircuitBreaker``  the clock-free policies (``policies``)
``ConfigError``                   a bad configuration value, naming its field
================================  ==================================================
"""

from .config import (
    BackendConfig,
    BreakerConfig,
    Failures,
    FaultWindow,
    LimiterConfig,
    MetricsConfig,
    RouterConfig,
    Scenario,
    Stage,
    Targets,
    WorkloadConfig,
    builtin_names,
    load_scenario,
    scenario_from_dict,
)
from .distributions import Constant, Distribution, Empirical, Exponential, Gamma, Lognormal
from .errors import ConfigError
from .policies import BreakerState, CircuitBreaker, TokenBucket
from .result import RunResult
from .sim import simulate

__version__ = "0.1.0"

__all__ = [
    "BackendConfig",
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "ConfigError",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "Failures",
    "FaultWindow",
    "Gamma",
    "LimiterConfig",
    "Lognormal",
    "MetricsConfig",
    "RouterConfig",
    "RunResult",
    "Scenario",
    "Stage",
    "Targets",
    "TokenBucket",
    "WorkloadConfig",
    "builtin_names",
    "load_scenario",
    "scenario_from_dict",
    "simulate",
]
