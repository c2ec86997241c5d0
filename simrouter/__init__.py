"""simrouter: predict how an AI request router behaves under load.

Public API
==========

================================  ==================================================
``simulate(scenario, seed=1)``    ONE run of a scenario in simulated time -> ``RunResult``
``load_scenario(name_or_path)``   a built-in scenario or TOML file -> ``Scenario``
``Scenario`` and its sections     typed, validated configuration (``config``)
``RunResult``                     raw columns, ``summary``, ``to_dict()``, DataFrames
``TokenBucket``, ``CircuitBreaker``  the clock-free policies (``policies``); limiters
                                  ``GCRA``, ``LeakyBucket``, ``SlidingWindowLog``,
                                  ``SlidingWindowCounter``, ``FixedWindow``,
                                  ``ConcurrencyLimit``, ``build_limiter``; client
                                  policies ``RetryPolicy``, ``Backoff``,
                                  ``RetryBudget``, ``HedgePolicy``
``build_breaker(config)``         breaker presets ``CircuitBreaker`` (default),
                                  ``Resilience4jBreaker``, ``PybreakerBreaker``,
                                  ``HystrixBreaker``, ``PollyBreaker`` (``policies.breakers``);
                                  their configs ``BreakerConfig``, ``*BreakerConfig``
``[[deployments]]`` (a gateway)    ``DeploymentConfig``; the clock-free ``Gateway`` /
                                  ``build_gateway`` (``policies.gateway``) over per-deployment
                                  chains, routing strategies ``build_routing`` /
                                  ``ROUTING_STRATEGIES`` (``policies.routing``), breaker presets
                                  ``LiteLLMBreaker``, ``EnvoyBreaker``; a run's per-attempt
                                  ``RunResult.attempt_log`` (``AttemptColumns``); the policies of
                                  a scenario's gateway ``build_gateway_policies`` ->
                                  ``DeploymentPolicies`` (``gateway_build``); the share plot
                                  data ``deployment_shares`` (lazy: pandas); docs/gateway.md
``BatchScheduler``                the clock-free continuous-batching scheduler of the LLM
                                  backend (``sim.batching``), for both engines
``ConfigError``                   a bad configuration value, naming its field
``replicate(scenario, seed=1,``   many runs: replications 0..R-1 -> ``ReplicatedResult``
``replications=R)``               (means, ``ci95``); ``precision=`` stops sequentially
                                  (``replications``)
``compare_configs(a, b)``         paired differences under CRN -> ``Comparison``
``capacity(scenario, vary,``      bisection on one parameter, replicated, CRN across probes:
``range, replications=R)``        max (or min) passing value -> ``CapacityResult``
                                  (``capacity_search``)
``sweep(file, executor=...)``     a sweep file's tidy table (pandas); ``aggregate``
                                  gives its 95 % intervals (``sweeps``, ``sweepfile``);
                                  ``completed_runs(table, spec)`` -> ``sweep(done=)`` resumes
                                  (loaded on first use: it imports pandas)
``t_interval``, ``mser``          output analysis (``stats``, ``warmup``)
``latency_figure(results)``       matplotlib Figures; also ``timeline_figure``,
                                  ``sweep_figure``, ``sweep_heatmap``, ``compare_figure``
``write_report(paths, out)``      the HTML report; ``write_run_plots`` PNGs (``report``)
``run_live(scenario, url)``       the scenario in wall time against a live router ->
                                  ``LiveResult``; ``serving`` / ``RouterService`` the
                                  reference service, ``GatewayService`` with deployments;
                                  ``compare_live``, ``calibrate_latency``; the LLM engine
                                  ``LiveLLMBackend``, ``StreamRecord`` / ``from_live`` /
                                  ``from_simulation``, ``fit_step_time`` -> ``StepTimeFit``,
                                  ``calibrated_llm_scenario`` (``live``; loaded on first use:
                                  it imports aiohttp, the step-time fit scipy)
================================  ==================================================

Importing the package loads numpy and SimPy, not pandas, matplotlib, scipy,
rich or aiohttp: those load with the functions that use them (DataFrames,
plots, dashboards, the live engine), so a plain run starts fast.
"""

from .config import (
    BackendConfig,
    BreakerConfig,
    Failures,
    FaultWindow,
    HedgeConfig,
    HystrixBreakerConfig,
    LimiterConfig,
    MetricsConfig,
    PollyBreakerConfig,
    PybreakerBreakerConfig,
    Resilience4jBreakerConfig,
    RetryConfig,
    RouterConfig,
    Scenario,
    Stage,
    Targets,
    WorkloadConfig,
    builtin_names,
    load_scenario,
    scenario_from_dict,
)
from .config import DeploymentConfig, DeploymentLimiterConfig, EnvoyBreakerConfig, LiteLLMBreakerConfig
from .distributions import Constant, Distribution, Empirical, Exponential, Gamma, Lognormal
from .errors import ConfigError
from .policies import (
    GCRA,
    Backoff,
    BreakerState,
    CircuitBreaker,
    ConcurrencyLimit,
    FixedWindow,
    HedgePolicy,
    HystrixBreaker,
    LeakyBucket,
    PollyBreaker,
    PybreakerBreaker,
    Resilience4jBreaker,
    RetryBudget,
    RetryPolicy,
    SlidingWindowCounter,
    SlidingWindowLog,
    TokenBucket,
    build_breaker,
    build_limiter,
)
from .metrics import AttemptColumns
from .policies import ROUTING_STRATEGIES, EjectionPool, EnvoyBreaker, Gateway, LiteLLMBreaker, RoutingStrategy, build_gateway, build_routing
from .gateway_build import DeploymentPolicies, build_gateway_policies
from .result import RunResult
from .sim import simulate
from .sim.batching import BatchScheduler
from .comparison import Comparison, compare_configs
from .capacity_search import CapacityResult, capacity
from .replications import ReplicatedResult, replicate
from .stats import paired_t_interval, t_interval
from .sweepfile import SweepSpec, load_sweep
from .warmup import mser

__version__ = "0.1.0"

# The real-clock engine imports aiohttp: loaded on first use, not with the package.
_LIVE_NAMES = {
    "run_live": "run_live",
    "LiveOptions": "LiveOptions",
    "LiveResult": "LiveResult",
    "RouterService": "RouterService",
    "serving": "serving",
    "compare_live": "compare",
    "calibrate_latency": "calibrate",
    "GatewayService": "GatewayService",
    # "module:name": a name of that module of simrouter.live, not re-exported by the package
    "LiveLLMBackend": "llm_engine:LiveLLMBackend",
    "fit_step_time": "step_fit:fit_step_time",  # scipy
    "StepTimeFit": "step_fit:StepTimeFit",
    "calibrated_llm_scenario": "step_fit:calibrated_llm_scenario",
    "StreamRecord": "stream_record:StreamRecord",
    "from_live": "stream_record:from_live",
    "from_simulation": "stream_record:from_simulation",
}


__all__ = [
    "GCRA",
    "ROUTING_STRATEGIES",
    "AttemptColumns",
    "DeploymentConfig",
    "DeploymentLimiterConfig",
    "EjectionPool",
    "EnvoyBreaker",
    "EnvoyBreakerConfig",
    "Gateway",
    "LiteLLMBreaker",
    "LiteLLMBreakerConfig",
    "RoutingStrategy",
    "build_gateway",
    "build_routing",
    "BatchScheduler",
    "DeploymentPolicies",
    "build_gateway_policies",
    "Backoff",
    "BackendConfig",
    "BreakerConfig",
    "BreakerState",
    "CapacityResult",
    "CircuitBreaker",
    "Comparison",
    "ConcurrencyLimit",
    "ConfigError",
    "Constant",
    "Distribution",
    "Empirical",
    "Exponential",
    "Failures",
    "FaultWindow",
    "FixedWindow",
    "Gamma",
    "HedgeConfig",
    "HedgePolicy",
    "HystrixBreaker",
    "HystrixBreakerConfig",
    "LeakyBucket",
    "LimiterConfig",
    "Lognormal",
    "MetricsConfig",
    "PollyBreaker",
    "PollyBreakerConfig",
    "PybreakerBreaker",
    "PybreakerBreakerConfig",
    "ReplicatedResult",
    "Resilience4jBreaker",
    "Resilience4jBreakerConfig",
    "RetryBudget",
    "RetryConfig",
    "RetryPolicy",
    "RouterConfig",
    "RunResult",
    "Scenario",
    "SlidingWindowCounter",
    "SlidingWindowLog",
    "Stage",
    "SweepSpec",
    "Targets",
    "TokenBucket",
    "WorkloadConfig",
    "aggregate",
    "completed_runs",
    "build_breaker",
    "build_limiter",
    "builtin_names",
    "capacity",
    "compare_configs",
    "load_scenario",
    "load_sweep",
    "mser",
    "paired_t_interval",
    "replicate",
    "scenario_from_dict",
    "simulate",
    "sweep",
    "t_interval",
    # the real-clock engine (lazy, see _LIVE_NAMES)
    "GatewayService",
    "LiveLLMBackend",
    "LiveOptions",
    "LiveResult",
    "RouterService",
    "StepTimeFit",
    "StreamRecord",
    "calibrate_latency",
    "calibrated_llm_scenario",
    "compare_live",
    "fit_step_time",
    "from_live",
    "from_simulation",
    "run_live",
    "serving",
]

# Sweeps build pandas tables: imported on first use, so that a plain run does not load pandas.
_SWEEP_NAMES = ("aggregate", "completed_runs", "sweep")

# Plots and reports (simrouter.report), imported on first use: matplotlib is slow to import.
_REPORT_NAMES = (
    "latency_figure",
    "timeline_figure",
    "sweep_figure",
    "sweep_heatmap",
    "compare_figure",
    "write_run_plots",
    "write_report",
    "progress_bar",
    "track",
    "deployment_shares",
)
__all__ += _REPORT_NAMES


def __getattr__(name: str):
    if name in _SWEEP_NAMES:
        from . import sweeps

        return getattr(sweeps, name)
    if name in _REPORT_NAMES:
        from . import report

        return getattr(report, name)
    if name in _LIVE_NAMES:
        from importlib import import_module

        module, _, attribute = _LIVE_NAMES[name].rpartition(":")
        return getattr(import_module(f".live.{module}" if module else ".live", __name__), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
