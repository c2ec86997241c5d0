"""The gateway's (and issue 13's) public names, re-exported where users look for them,
without making ``import simrouter`` heavier (lazy where the package is lazy)."""

from __future__ import annotations

import subprocess
import sys

import simrouter
import simrouter.config
import simrouter.policies
import simrouter.report


def test_policies_export_the_gateway_and_its_parts():
    from simrouter.policies import breakers, gateway, routing

    for name, module in [
        ("RoutingStrategy", routing), ("build_routing", routing), ("ROUTING_STRATEGIES", routing), ("NO_ANSWER", routing),
        ("EjectionPool", breakers), ("LiteLLMBreaker", breakers), ("EnvoyBreaker", breakers), ("Gateway", gateway), ("build_gateway", gateway),
    ]:
        assert name in simrouter.policies.__all__ and getattr(simrouter.policies, name) is getattr(module, name), name


def test_config_exports_the_gateways_config_classes():
    from simrouter.config import sections

    for name in ("LiteLLMBreakerConfig", "EnvoyBreakerConfig", "DeploymentConfig", "DeploymentLimiterConfig", "PartialBackend", "PartialFailures"):
        assert name in simrouter.config.__all__ and getattr(simrouter.config, name) is getattr(sections, name), name


def test_the_package_exports_them_lazily_where_it_is_lazy():
    from simrouter.live import gateway_service, llm_engine, step_fit, stream_record
    from simrouter.report import deployments_plot
    from simrouter.sim import batching

    expected = {
        "build_routing": simrouter.policies.build_routing,
        "BatchScheduler": batching.BatchScheduler,
        "deployment_shares": deployments_plot.deployment_shares,
        "GatewayService": gateway_service.GatewayService,
        "LiveLLMBackend": llm_engine.LiveLLMBackend,
        "fit_step_time": step_fit.fit_step_time,
        "StepTimeFit": step_fit.StepTimeFit,
        "calibrated_llm_scenario": step_fit.calibrated_llm_scenario,
        "StreamRecord": stream_record.StreamRecord,
        "from_live": stream_record.from_live,
        "from_simulation": stream_record.from_simulation,
    }
    for name, value in expected.items():
        assert name in simrouter.__all__ and getattr(simrouter, name) is value, name
    assert simrouter.report.deployment_shares is deployments_plot.deployment_shares


def test_import_simrouter_stays_light():
    heavy = ("pandas", "matplotlib", "scipy", "aiohttp", "rich", "simrouter.live", "simrouter.report.deployments_plot")
    probe = f"import sys, simrouter; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert loaded == []
