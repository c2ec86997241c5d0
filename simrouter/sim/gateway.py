"""The simulated deployments behind a gateway, and the SimPy engine's gateway target.

``build_deployments`` gives each ``[[deployments]]`` entry its own backend (its
``backend`` keys over the top-level ``[backend]``, its fault windows plus the
top-level ones), its own admission chain (its limiter, its breaker: the
clock-free ``gateway_build.build_gateway_policies``, which the live service
uses too) and its own random streams (``streams.deployment_key``: deployment 0 draws from the
single backend's streams, so a one-deployment gateway is the single backend
draw for draw; deployment d > 0 from streams keyed by d), and the
``policies.gateway.Gateway`` that routes over them (its routing strategy draws
from ``streams.ROUTING``).

``GatewayTarget`` is ``client.PolicyRouter``'s target behind a gateway: a copy
that passed the router-wide chain (limiter, validation) makes attempts, each
routed to a deployment, through that deployment's limiter and breaker, into
its backend, with ``router.timeout`` per attempt; an attempt answered with a
kind in ``fallback_on`` is followed at once by a fallback to another
deployment (``Gateway.falls_back``). Every attempt goes into the
``AttemptRecorder`` when the router answers it; the copy is answered with its
last attempt's kind (``policies.gateway``). The fast engine runs the same
flow (``fast.gateway_calls``) and gives the same runs.

On the LLM backend (``backend.model = "llm"``, docs/llm.md) each deployment's
backend is its own batching server (``llm_run.llm_backend``: its merged
config, its fault windows, its streams), a deployment limiter with
``tokens_per_minute`` counts the tokens of the copy being admitted, and the
run is always on the SimPy engine (``llm_gateway.build_llm_gateway_router``). A
copy's request (``Exchange.request``) goes to the backend's ``submit``; every
attempt is admitted through ``PolicyRouter.admit`` (so a token limiter sees
it); ``sent`` tells the routing strategy its tokens (prompt + max_tokens, what
the router knows at the send: ``usage-based`` counts them; 0 without a request).
"""

from __future__ import annotations


import numpy as np

from ..distributions import VariateStream
from ..outcomes import BREAKER_REJECTED, QUEUE_FULL
from ..policies.chain import AdmissionChain
from ..policies.gateway import NO_DEPLOYMENT, Gateway
from ..policies.routing import NO_ANSWER
from . import streams
from .backend import Backend, ServiceModel
from .client import PENDING
from .event_backend import WAITING, EventBackend


def _uniform(rng: np.random.Generator, size: int) -> np.ndarray:
    return rng.random(size)


class Deployment:
    """One simulated deployment: its name, effective backend config, backend and chain."""

    __slots__ = ("name", "config", "backend", "chain", "preset")

    def __init__(self, name: str, config, backend, chain: AdmissionChain, preset: str):
        self.name = name
        self.config = config  # its BackendConfig (the top-level one with its keys laid over)
        self.backend = backend
        self.chain = chain
        self.preset = preset  # its breaker preset

    @property
    def breaker(self):
        return self.chain.breaker


def build_deployments(env, scenario, rng, cancels: bool, tokens=None) -> tuple[Gateway, list[Deployment]]:
    """The scenario's deployments (backends on the event-driven backend when
    ``cancels``; batching ones on the LLM backend, whose token limiters read
    ``tokens()``: module docstring) and the gateway over them: the clock-free
    policies of ``gateway_build.build_gateway_policies`` (shared with the live
    service), each with its simulated backend on its own streams."""
    from ..gateway_build import build_gateway_policies

    gateway, policies = build_gateway_policies(scenario, rng, tokens)
    deployments = []
    for policy in policies:
        key = streams.deployment_key(policy.index)
        config = policy.config
        if config.is_llm:
            from .llm_run import llm_backend

            backend = llm_backend(env, config, policy.faults, rng, *key)
        else:
            service = ServiceModel(
                config,
                policy.faults,
                latency=VariateStream(config.latency.sample, rng(streams.LATENCY, *key)),
                uniform=VariateStream(_uniform, rng(streams.BACKEND_OUTCOME, *key)),
                fault_uniform=VariateStream(_uniform, rng(streams.FAULT_OUTCOME, *key)),
            )
            backend = EventBackend(env, config, service) if cancels else Backend(config, service)
        deployments.append(Deployment(policy.name, config, backend, policy.chain, policy.preset))
    return gateway, deployments


def needs_policy_path(deployments: list[Deployment]) -> bool:
    """A deployment limiter that delays or holds needs the SimPy engine."""
    return any(not d.chain.at_once for d in deployments)


class Route:
    """A copy's attempts behind the gateway: the deployments tried, the fallbacks
    sent, and the attempt under way (its deployment, ticket and send time)."""

    __slots__ = ("tried", "fallbacks", "deployment", "ticket", "sent")

    def __init__(self) -> None:
        self.tried: list[int] = []
        self.fallbacks = 0
        self.deployment = NO_DEPLOYMENT
        self.ticket = None
        self.sent = 0.0


class GatewayTarget:
    """``PolicyRouter.target`` behind a gateway (module docstring)."""

    def __init__(self, router, gateway: Gateway, deployments: list[Deployment], attempts):
        self.router = router
        self.gateway = gateway
        self.deployments = deployments
        self.attempts = attempts  # metrics.AttemptRecorder

    def forward(self, copy, now: float) -> None:
        """The copy passed the router-wide chain at ``now``: its first attempt."""
        copy.route = Route()
        self._attempt(copy, now)

    def _attempt(self, copy, now: float) -> None:
        route, gateway = copy.route, self.gateway
        deployment = gateway.pick(now, route.tried)
        route.sent = now
        if deployment is None:  # no deployment available
            route.deployment = NO_DEPLOYMENT
            self._answered_at_once(copy, now, BREAKER_REJECTED)
            return
        route.tried.append(deployment)
        route.deployment = deployment
        chain = self.deployments[deployment].chain
        ticket = route.ticket = self.router.admit(chain, copy.exchange, now)
        if ticket.kind is not None:
            gateway.rate_limited(deployment, now)
            self._answered_at_once(copy, now, ticket.kind)
        elif ticket.delay > 0:
            env = self.router.env
            env.timeout(ticket.delay).callbacks.append(lambda _event: self._to_backend(copy, ticket, env.now))
        else:
            self._to_backend(copy, ticket, now)

    def _to_backend(self, copy, ticket, now: float) -> None:
        route = copy.route
        if route.ticket is not ticket:  # cancelled while the deployment's limiter held it
            return
        deployment = self.deployments[route.deployment]
        refused = deployment.chain.forward(ticket, now, False)
        if refused is not None:
            self._answered_at_once(copy, now, refused)
            return
        if self.router.serve(copy, deployment.backend, now, lambda job: self._done(copy, job)):
            request = copy.exchange.request
            self.gateway.sent(route.deployment, now, request.admission_tokens if request is not None else 0)
            return
        deployment.chain.queue_full(ticket)
        self._answered_at_once(copy, now, QUEUE_FULL)

    def _done(self, copy, job) -> None:
        """The service of ``job`` ended; an answer unless the copy moved on (its attempt timed out)."""
        if copy.job is job and job.state != WAITING:
            self.router.answer_due(copy, job.end, job.outcome)

    def answered(self, copy, done: float, outcome: int) -> None:
        """The router answers the attempt its deployment's backend had (in the instant's order)."""
        route = copy.route
        deployment = route.deployment
        ticket = route.ticket
        self.deployments[deployment].chain.settle(ticket, done, outcome)
        self.gateway.answered(deployment, done, done - ticket.forwarded, outcome)
        self._next(copy, done, outcome)

    def _answered_at_once(self, copy, now: float, kind: int) -> None:
        self._next(copy, now, kind)

    def _next(self, copy, now: float, kind: int) -> None:
        """Log the attempt; a fallback if the rule allows and a deployment is left, else the copy's answer."""
        route, gateway = copy.route, self.gateway
        self.attempts.add(route.deployment, route.sent, now, kind)
        copy.job = None
        # A hedge copy left running after its request was answered sends no fallback: no one waits for it.
        if not copy.exchange.finished and gateway.falls_back(kind, route.fallbacks) and gateway.candidates(now, route.tried):
            route.fallbacks += 1
            copy.exchange.fallbacks += 1
            copy.state = PENDING  # the copy goes on with its fallback
            self._attempt(copy, now)
            return
        if not copy.exchange.finished:
            copy.exchange.deployment = route.deployment
        self.router.chain.settle(copy.ticket, now, kind)  # the router-wide limiter slot, if it holds one
        self.router.resolve(copy, now, kind)

    def cancel(self, copy, now: float) -> None:
        """A hedge loser: its attempt under way leaves its backend and gives back
        its deployment's breaker permit and limiter slot; the router-wide slot too."""
        route = copy.route
        if route is not None and route.ticket is not None and route.deployment != NO_DEPLOYMENT:
            deployment = self.deployments[route.deployment]
            if copy.job is not None:
                deployment.backend.cancel(copy.job, now)
            if route.ticket.admitted:  # it was sent to the backend: no longer in flight, no latency sample
                self.gateway.answered(route.deployment, now, now - route.ticket.forwarded, NO_ANSWER)
            deployment.chain.release(route.ticket, now)
            route.ticket = None
        self.router.chain.release(copy.ticket, now)



class GatewayRouter:
    """The router's parts behind a gateway, as ``model.SimRouter`` is for one
    backend: the router-wide chain (``[limiter]`` and validation, no breaker),
    the gateway and its deployments, the recorders (logical requests, attempts)
    and the per-request columns (fallbacks, final deployment: the fast engine
    sets them with ``set_columns`` when its run ends). The fast engine drives
    them directly (``fast.run_closed_gateway`` / ``run_open_gateway``);
    ``client.PolicyRouter`` wraps them with a ``GatewayTarget``."""

    backend = None  # no single backend: each deployment has its own

    def __init__(self, env, scenario, limiter, gateway: Gateway, deployments: list[Deployment], recorder, attempts, validation_uniform: VariateStream):
        from ..policies.breakers import NoBreaker

        self.env = env
        self.chain = AdmissionChain(limiter, NoBreaker(), scenario.backend.failures.validation, validation_uniform.next)
        self.validation_draw = validation_uniform.next  # the chain's validation draws (the fast engine inlines its decide)
        self.limiter = limiter
        self.gateway = gateway
        self.deployments = deployments
        self.recorder = recorder
        self.attempts = attempts
        self._fallbacks = self._final_deployment = np.zeros(0, dtype=np.int64)  # per logical request, fast engine
        self._timeout = scenario.router.timeout

    @property
    def timeout(self) -> float:
        return self._timeout

    def malformed(self) -> bool:
        """One validation draw per logical request (``model.SimRouter.malformed``)."""
        return self.chain.malformed()

    def set_columns(self, fallbacks: np.ndarray, final_deployment: np.ndarray) -> None:
        """The fast engine's per-request columns, in request (answer) order: the
        fallback attempts, the deployment of the final answer (-1: none)."""
        self._fallbacks = fallbacks.astype(np.int64)
        self._final_deployment = final_deployment.astype(np.int64)

    def columns(self) -> dict[str, np.ndarray]:
        """Per logical request on the fast engine: fallbacks, the deployment of the final answer."""
        return {"fallbacks": self._fallbacks, "deployment": self._final_deployment}

    def target(self, policy_router) -> GatewayTarget:
        """This gateway's target for ``client.PolicyRouter`` (its per-copy hook)."""
        return GatewayTarget(policy_router, self.gateway, self.deployments, self.attempts)
