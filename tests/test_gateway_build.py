"""``gateway_build.build_gateway_policies``: one clock-free construction of a
gateway's policies for the simulation and the live service.

What could fail: the two engines building different chains (limiter, breaker,
preset, weights), the routing strategy drawing from another stream (the live
service would no longer make the simulation's picks), or the live service
still building simulated backends it throws away.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np

import simrouter
from simrouter.gateway_build import build_gateway_policies
from simrouter.live.service_thread import ServiceThread
from simrouter.policies import EnvoyBreaker, GlobalLimiter, LiteLLMBreaker, NoLimiter, TokenBucket
from simrouter.sim import gateway as sim_gateway
from simrouter.sim import streams

OVERRIDES = [
    'deployments.0.limiter={algorithm="token_bucket", rate=20.0, burst=20}',
    'deployments.2.breaker={preset="envoy", consecutive_5xx=5}',
    "deployments.1.weight=3.0",
    "deployments.1.backend.capacity=6",
]


def _rng(seed: int = 1):
    return lambda source, *index: streams.stream(seed, 0, source, *index)


def test_the_policies_follow_each_deployment_entry():
    scenario = simrouter.load_scenario("failover", OVERRIDES)
    gateway, policies = build_gateway_policies(scenario, _rng())
    assert [p.name for p in policies] == ["east", "west", "central"] and [p.index for p in policies] == [0, 1, 2]
    assert [p.preset for p in policies] == ["litellm", "litellm", "envoy"]
    assert isinstance(policies[0].breaker, LiteLLMBreaker) and isinstance(policies[2].breaker, EnvoyBreaker)
    assert policies[0].breaker is not policies[1].breaker  # one instance each, from the same top-level [breaker]
    assert isinstance(policies[0].chain.limiter, GlobalLimiter) and isinstance(policies[0].chain.limiter.limit, TokenBucket)  # scope "global"
    assert isinstance(policies[1].chain.limiter, NoLimiter)
    assert [p.config.capacity for p in policies] == [12, 6, 12]  # its own keys over [backend]
    assert [len(p.faults) for p in policies] == [0, 1, 0]
    assert gateway.breakers == [p.breaker for p in policies]


def test_the_simulation_and_the_policies_make_the_same_picks():
    # Weighted shuffle (1, 3, 1) draws one number per pick from streams.ROUTING: the simulation's
    # gateway and a fresh build_gateway_policies one pick the same deployments in the same order.
    scenario = simrouter.load_scenario("failover", OVERRIDES)
    simulated, deployments = sim_gateway.build_deployments(None, scenario, _rng(), cancels=False)
    built, policies = build_gateway_policies(scenario, _rng())
    assert [d.name for d in deployments] == [p.name for p in policies] and [d.preset for d in deployments] == [p.preset for p in policies]
    picks = [(simulated.pick(float(t)), built.pick(float(t))) for t in np.arange(0.0, 400.0, 0.5)]
    assert [a for a, _ in picks] == [b for _, b in picks]
    counts = np.bincount([a for a, _ in picks], minlength=3) / len(picks)
    assert abs(counts[1] - 0.6) < 4 * np.sqrt(0.6 * 0.4 / len(picks))  # weight 3 of 5, within 4 binomial sigmas


def test_the_live_gateway_builds_no_simulated_backend(monkeypatch):
    built = []
    original = sim_gateway.Backend.__init__

    def counting(self, *args, **kwargs):
        built.append(self)
        original(self, *args, **kwargs)

    monkeypatch.setattr(sim_gateway.Backend, "__init__", counting)
    scenario = simrouter.load_scenario("failover", ["duration=5"])
    with ServiceThread(scenario, admin_token="T") as service:
        request = urllib.request.Request(service.url + "/submit", data=json.dumps({"user": 1}).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 200
    assert built == []
    simrouter.simulate(scenario)  # the simulation still builds its own (the counter sees it)
    assert len(built) == 3
