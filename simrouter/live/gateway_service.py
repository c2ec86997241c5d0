"""The reference router in front of several stand-in deployments (``simrouter serve`` with ``[[deployments]]``).

``GatewayService`` is ``RouterService`` (``simrouter.live.service``: the same HTTP
front end, admin endpoints, header timeout and router-wide running metrics) whose
requests go through the SAME gateway objects the simulation builds
(``simrouter.gateway_build.build_gateway_policies``: each deployment's limiter and
breaker in its ``AdmissionChain``, the ``policies.gateway.Gateway`` with its
routing strategy; no simulated backend), driven by ``time.monotonic()``. One request:

1. the router-wide chain: the top-level ``[limiter]`` (per user, in the bounded
   ``LimiterTable``), then validation (one draw per logical request); no breaker
   (behind a gateway each deployment has its own). A rejection is answered at
   once, with no attempt;
2. attempts (``policies.gateway``): ``Gateway.pick`` chooses a deployment among
   those not tried by this request whose breaker is available now (none left:
   the attempt is ``breaker_rejected``); the deployment's chain admits it (a
   429 of its limiter is told to its breaker: ``Gateway.rate_limited``) or
   answers at once; its stand-in backend (``simrouter.live.backend``, the
   deployment's merged ``backend`` config and its own random streams, keyed as
   the simulation keys them: ``streams.deployment_key``) serves it under
   ``router.timeout`` per attempt;
3. an attempt answered with a kind in ``router.fallback_on``, with fallbacks
   left and a candidate left, is followed AT ONCE by a fallback attempt (a real
   attempt: counted, through that deployment's limiter and breaker). The
   request's answer is its last attempt's; its latency runs from its arrival
   (the first send), across every attempt.

Every answer carries ``X-Simrouter-Deployment`` (the deployment whose attempt
gave the final answer; absent when none did: a router-wide rejection, or no
deployment available) and ``X-Simrouter-Attempts`` (0 for a router-wide
rejection).

``GET /metrics``: ``RouterService``'s summary of the logical requests, plus
what the simulation adds behind a gateway (``simrouter.deployment_summary``,
same keys): ``attempts`` (``total`` = requests + ``fallbacks``, split as
``routed`` + ``no_deployment`` + ``router_rejected``), ``fallbacks`` (``total``, ``per_request``,
``succeeded_after_fallback``), ``deployments`` (per deployment: ``name``,
``share`` of the routed attempts, ``requests`` = its attempts by kind,
``latency_ms`` of the attempts its backend answered, from the attempt's send,
``breaker`` {preset, state, trips, transitions, recovery_s, recovered,
recoveries} against the windows it saw, ``capacity``, ``utilisation``: busy
slot-seconds over capacity x time since the start or reset) and the run's
``breaker`` from the deployments' (``overall_breaker``: never better than the
worst). Everything counts requests that arrived after the last reset. The
``service`` section gains each deployment's busy slots, queue and own fault
windows, and ``faults`` lists every window with its ``deployment`` (null: all). Prometheus gets the same per
deployment with a ``deployment`` label (``simrouter.live.prometheus``).

``POST /admin/faults``: a window may carry ``"deployment": NAME`` (only that
deployment's backend; unknown name: ``ConfigError("deployment", ...)`` naming the
accepted ones, a 422); without it a window hits every deployment, as the
top-level ``[[faults]]`` do. Overlaps are refused per deployment (the
top-level windows plus its own, as a scenario's). The scenario's own
``faults`` and ``deployments[i].faults`` are not applied by the service:
``simrouter live`` posts them.

Departures from the simulation: a deployment limiter with ``scope = "per_user"``
keeps one limit per key for ever (``KeyedLimiter``: the deployment's chain is the
simulation's own), unlike the router-wide table; the fallback's send time is the
real clock's at that moment (microseconds after the previous answer), not the
answer's instant itself.
"""

from __future__ import annotations

import asyncio
import dataclasses

from ..config import FaultWindow, Scenario, scenario_from_dict
from ..deployment_summary import SEVERITY, overall_breaker
from ..distributions import VariateStream
from ..errors import ConfigError
from ..gateway_build import build_gateway_policies
from ..metrics import recoveries
from ..outcomes import BREAKER_REJECTED, QUEUE_FULL, SUCCESS, VALIDATION
from ..policies.breakers import BreakerState, NoBreaker
from ..policies.chain import AdmissionChain
from ..policies.routing import NO_ANSWER
from ..sim import streams
from .backend import StandInBackend, uniform
from .limiter_table import build_service_limiter
from .running import RunningRecorder
from .service import Answer, RouterService, answered_within

DEPLOYMENT_FIELD = "deployment"  # the /admin/faults window field naming one deployment


class LiveDeployment:
    """One deployment of the live gateway: its name, index, merged backend config,
    admission chain (limiter, breaker), breaker preset, stand-in backend (created
    on the loop) and its attempts' running aggregates."""

    __slots__ = ("name", "index", "config", "chain", "preset", "backend", "attempts", "faults")

    def __init__(self, name: str, index: int, config, chain: AdmissionChain, preset: str):
        self.name = name
        self.index = index
        self.config = config
        self.chain = chain
        self.preset = preset
        self.backend: StandInBackend | None = None
        self.attempts: RunningRecorder | None = None
        self.faults: list[FaultWindow] = []  # its own windows (service clock), beside the top-level ones

    @property
    def breaker(self):
        return self.chain.breaker


class GatewayService(RouterService):
    """``RouterService`` over the scenario's ``[[deployments]]`` (module docstring)."""

    def __init__(self, scenario: Scenario, seed: int = 1, admin_token: str | None = None, **options):
        if not scenario.deployments:
            raise ConfigError("deployments", "GatewayService needs at least one [[deployments]] entry (without: RouterService)")
        if options.get("backend_factory") is not None:
            raise ConfigError("--upstream", "a real upstream backend behind [[deployments]] is not supported: each deployment is a stand-in")
        self.deployments: list[LiveDeployment] = []
        super().__init__(scenario, seed, admin_token, **options)

    # -- state

    def _reset_policies(self) -> None:
        scenario, seed = self.scenario, self.seed

        def rng(source: int, *index: int):  # replication 0's streams: common random numbers with the simulation
            return streams.stream(seed, 0, source, *index)

        gateway, policies = build_gateway_policies(scenario, rng)  # the simulation's own, without its backends
        previous = {d.name: d.backend for d in self.deployments}
        self.gateway = gateway
        self.deployments = [LiveDeployment(p.name, p.index, p.config, p.chain, p.preset) for p in policies]
        self.limiter = build_service_limiter(scenario.limiter, self.max_limiter_keys)
        self.breaker = NoBreaker()  # the router-wide chain has none: each deployment has its own
        validation = VariateStream(uniform, streams.stream(seed, 0, streams.VALIDATION)).next
        self.chain = AdmissionChain(self.limiter, self.breaker, scenario.backend.failures.validation, validation)
        self._epoch_offset = self.now()
        self.recorder = RunningRecorder(scenario.metrics.window, start=self._epoch_offset)
        self.fault_history: list[FaultWindow] = []
        self.fallbacks = 0  # fallback attempts since the reset
        self.unrouted = 0  # attempts no deployment could take (no candidate: breaker_rejected)
        self.rescued = 0  # requests that succeeded after a fallback
        self.router_rejected = 0  # requests the router-wide chain answered (no attempt)
        for deployment in self.deployments:
            deployment.attempts = RunningRecorder(scenario.metrics.window, start=self._epoch_offset)
            backend = deployment.backend = previous.get(deployment.name)
            if backend is not None:  # a reset keeps the backends (and their streams), as RouterService does
                backend.set_faults([])
                backend.restart_busy_time()

    def _backends(self, loop: asyncio.AbstractEventLoop) -> list[StandInBackend]:
        for d in self.deployments:
            if d.backend is None:
                d.backend = StandInBackend(d.config, self.seed, self.now, loop, stream_index=streams.deployment_key(d.index))
        return [d.backend for d in self.deployments]

    @property
    def deployment_names(self) -> list[str]:
        return [d.name for d in self.deployments]

    # -- the router

    async def handle(self, key, sent: float | None = None) -> Answer:
        """One request of user ``key`` arrived at ``sent`` (default now): the router-wide
        chain, then attempts over the deployments with fallbacks (module docstring)."""
        if sent is None:
            sent = self.now()
        # The policies that admit it answer it, even if a reset replaces them meanwhile.
        chain, gateway, deployments = self.chain, self.gateway, self.deployments
        ticket = chain.admit(key, sent)
        if ticket.kind is not None:
            return self._rejected(ticket.kind, sent, sent)
        try:
            forwarded = sent
            if ticket.delay > 0:
                await asyncio.sleep(ticket.delay)
                forwarded = self.now()
            refused = chain.forward(ticket, forwarded)
            if refused is not None:
                return self._rejected(refused, sent, forwarded)
            kind, done, answered_by, attempts = await self._attempts(gateway, deployments, key, sent >= self._epoch_offset)
            chain.settle(ticket, done, kind)  # the router-wide limiter slot, if it holds one
            if attempts > 1 and kind == SUCCESS and sent >= self._epoch_offset:
                self.rescued += 1
            return self._gateway_answer(kind, sent, done, answered_by, attempts)
        finally:
            chain.release(ticket, self.now())

    async def _attempts(self, gateway, deployments: list[LiveDeployment], key, measured: bool) -> tuple[int, float, LiveDeployment | None, int]:
        """Attempts until one is not followed by a fallback: (kind, done, deployment, attempts).
        ``measured``: the request arrived after the last reset (its fallbacks are counted)."""
        backends = self._backends(asyncio.get_running_loop())
        tried: list[int] = []
        attempts = fallbacks = 0
        while True:
            start = self.now()
            index = gateway.pick(start, tried)
            attempts += 1
            if index is None:  # no deployment available
                kind, done, deployment = BREAKER_REJECTED, start, None
                self.unrouted += measured
            else:
                tried.append(index)
                deployment = deployments[index]
                kind, done = await self._attempt(gateway, deployment, backends[index], key, start)
                deployment.attempts.add(start, done, kind)
            if gateway.falls_back(kind, fallbacks) and gateway.candidates(done, tried):
                fallbacks += 1
                self.fallbacks += measured
                continue
            return kind, done, deployment, attempts

    async def _attempt(self, gateway, deployment: LiveDeployment, backend: StandInBackend, key, now: float) -> tuple[int, float]:
        """One attempt at ``deployment`` made at ``now``: (kind, when it was answered)."""
        chain, index = deployment.chain, deployment.index
        ticket = chain.admit(key, now)
        if ticket.kind is not None:
            gateway.rate_limited(index, now)
            return ticket.kind, now
        in_flight = False
        try:
            forwarded = now
            if ticket.delay > 0:
                await asyncio.sleep(ticket.delay)
                forwarded = self.now()
            refused = chain.forward(ticket, forwarded, False)
            if refused is not None:
                return refused, forwarded
            future = backend.submit()
            if future is None:
                chain.queue_full(ticket)
                return QUEUE_FULL, forwarded
            gateway.sent(index, forwarded)
            in_flight = True
            outcome = await answered_within(future, self.scenario.router.timeout)
            done = self.now()
            chain.settle(ticket, done, outcome)
            in_flight = False
            gateway.answered(index, done, done - ticket.forwarded, outcome)
            return outcome, done
        finally:
            ended = self.now()
            if in_flight:  # the client went away: the attempt leaves the strategy's in-flight count, unanswered
                gateway.answered(index, ended, ended - ticket.forwarded, NO_ANSWER)
            chain.release(ticket, ended)

    def _rejected(self, kind: int, sent: float, done: float) -> Answer:
        """A request the router-wide chain answered (rate limited, validation): no attempt."""
        self.router_rejected += sent >= self._epoch_offset
        return self._gateway_answer(kind, sent, done, None, 0)

    def record_malformed(self, sent: float) -> Answer:
        """A request refused before the limiter (no usable key): a validation error, no attempt."""
        return self._rejected(VALIDATION, sent, self.now())

    def _gateway_answer(self, kind: int, sent: float, done: float, deployment: LiveDeployment | None, attempts: int) -> Answer:
        self.recorder.add(sent, done, kind)
        return Answer(kind, sent, done, deployment.name if deployment is not None else None, attempts)

    # -- metrics

    def _faults_of(self, deployment: LiveDeployment) -> list[FaultWindow]:
        """The windows ``deployment`` sees: the top-level ones and its own (service clock)."""
        return sorted([*self.fault_history, *deployment.faults], key=lambda f: f.start)

    def _scenario_now(self) -> Scenario:
        """The scenario with the fault windows injected so far (service clock) in place of its own."""
        deployments = [dataclasses.replace(entry, faults=list(d.faults)) for entry, d in zip(self.scenario.deployments, self.deployments)]
        return dataclasses.replace(self.scenario, faults=list(self.fault_history), deployments=deployments)

    def deployment_summaries(self, now: float | None = None) -> list[dict]:
        """One entry per deployment, shaped as the simulation's ``deployments``
        (``simrouter.deployment_summary``; the measured window starts at the reset)."""
        now = self.now() if now is None else now
        routed = sum(d.attempts.sent for d in self.deployments)
        since = now - self._epoch_offset
        rows = []
        for d in self.deployments:
            breaker = d.breaker
            if hasattr(breaker, "advance"):
                breaker.advance(now)  # a timer-driven transition that is due
            transitions = list(breaker.transitions)
            found = recoveries(transitions, self._faults_of(d), now)
            values = [r.seconds for r in found]
            recovery_s = max(values) if found and None not in values else None
            busy = d.backend.busy_time() if d.backend is not None else 0.0
            utilisation = busy / (d.config.capacity * since) if since > 0 else 0.0
            sent = d.attempts.sent
            rows.append(
                {
                    "name": d.name,
                    "share": sent / routed if routed else 0.0,
                    "requests": {"sent": sent, **d.attempts.kind_counts()},
                    "latency_ms": d.attempts.latency_stats(),
                    "breaker": {
                        "preset": d.preset,
                        "state": breaker.state.value,
                        "trips": sum(1 for tr in transitions if tr.to_state is BreakerState.OPEN),
                        "transitions": [tr.to_dict() for tr in transitions],
                        "recovery_s": recovery_s,
                        "recovered": None if not found else recovery_s is not None,
                        "recoveries": [r.to_dict() for r in found],
                    },
                    "capacity": d.config.capacity,
                    # Busy time counts since the reset (as RouterService's): one figure for both spans.
                    "utilisation": utilisation,
                    "utilization": utilisation,
                    "utilization_whole_run": utilisation,
                }
            )
        return rows

    def _add_sections(self, summary: dict, now: float) -> None:
        """The gateway's ``attempts``, ``fallbacks``, ``deployments``, the run's
        ``breaker`` from the deployments' (``deployment_summary.overall_breaker``) and
        ``backend`` over every deployment; O(1) in requests."""
        deployments = self.deployment_summaries(now)
        requests = self.recorder.sent
        attempts = requests + self.fallbacks  # as the simulation counts them: one per request, plus its fallbacks
        summary["attempts"] = {
            "total": attempts,
            "retries": 0,
            "hedges": 0,
            "per_request": attempts / requests if requests else 0.0,
            "retries_denied_by_budget": 0,
            "fallbacks": self.fallbacks,
            # Where they went: total = routed + no_deployment + router_rejected.
            "routed": sum(d["requests"]["sent"] for d in deployments),
            "no_deployment": self.unrouted,
            "router_rejected": self.router_rejected,
        }
        summary["fallbacks"] = {
            "total": self.fallbacks,
            "per_request": self.fallbacks / requests if requests else 0.0,
            "succeeded_after_fallback": self.rescued,
        }
        summary["deployments"] = deployments
        summary["breaker"].update(overall_breaker(deployments, self.breaker_gauges()[0]))
        capacity = sum(d["capacity"] for d in deployments)
        since = now - self._epoch_offset
        busy = sum(d.backend.busy_time() for d in self.deployments if d.backend is not None)
        utilization = busy / (capacity * since) if since > 0 else 0.0
        summary["backend"] = {"capacity": capacity, "utilization": utilization, "utilization_whole_run": utilization}

    def breaker_gauges(self) -> tuple[BreakerState, int]:
        """(the worst deployment's breaker state, trips summed over the deployments)."""
        state = max((d.breaker.state for d in self.deployments), key=SEVERITY.__getitem__)
        trips = sum(1 for d in self.deployments for tr in d.breaker.transitions if tr.to_state is BreakerState.OPEN)
        return state, trips

    def metrics(self) -> dict:
        data = super().metrics()
        service = data["service"]
        service["busy"], service["queued"] = self.backend_gauges()
        service["deployments"] = [
            {
                "name": d.name,
                "busy": d.backend.busy if d.backend else 0,
                "queued": d.backend.queued if d.backend else 0,
                "faults": [dataclasses.asdict(f) for f in d.faults],
            }
            for d in self.deployments
        ]
        return data

    def backend_gauges(self) -> tuple[int, int]:
        """(busy slots, queued requests) over every deployment's backend now."""
        live = [d.backend for d in self.deployments if d.backend is not None]
        return sum(b.busy for b in live), sum(b.queued for b in live)

    def deployment_gauges(self) -> list[dict]:
        """Per deployment, for Prometheus: name, attempts by kind, breaker state and trips, busy, queued."""
        rows = []
        for d in self.deployments:
            breaker = d.breaker
            rows.append(
                {
                    "name": d.name,
                    "attempts": d.attempts.kind_counts(),
                    "state": breaker.state,
                    "trips": sum(1 for tr in breaker.transitions if tr.to_state is BreakerState.OPEN),
                    "busy": d.backend.busy if d.backend else 0,
                    "queued": d.backend.queued if d.backend else 0,
                }
            )
        return rows

    # -- admin

    def add_faults(self, windows: list[dict]) -> list[FaultWindow]:
        """Add fault windows given relative to now; a window with ``"deployment": NAME``
        hits that deployment only, one without hits all. ConfigError if a name is
        unknown, a window invalid, or two windows one deployment sees overlap."""
        if not isinstance(windows, list):
            raise ConfigError("faults", 'expected a list of fault windows: {"faults": [{...}, ...]}')
        names = self.deployment_names
        targets, plain = [], []
        for i, window in enumerate(windows):
            target = None
            if isinstance(window, dict) and DEPLOYMENT_FIELD in window:
                window = dict(window)
                target = window.pop(DEPLOYMENT_FIELD)
                if target not in names:
                    raise ConfigError(DEPLOYMENT_FIELD, f"unknown deployment {target!r} (faults.{i}); accepted: {', '.join(names)}")
            targets.append(target)
            plain.append(window)
        relative = scenario_from_dict({"faults": plain}).faults
        if not relative:
            raise ConfigError("faults", "expected at least one fault window (start, end, error_rate and/or latency_factor)")
        now = self.now()
        added = [dataclasses.replace(f, start=now + f.start, end=now + f.end) for f in relative]
        history = list(self.fault_history)
        own = {d.name: list(d.faults) for d in self.deployments}
        for target, window in zip(targets, added):
            (history if target is None else own[target]).append(window)
        # Re-validates each deployment's timeline (top-level + own; overlaps) the way a scenario is.
        ends = [f.end for f in history] + [f.end for windows_ in own.values() for f in windows_]
        entries = [dataclasses.replace(entry, faults=own[entry.name]) for entry in self.scenario.deployments]
        dataclasses.replace(self.scenario, faults=history, deployments=entries, warmup=0.0, duration=max(ends))
        self.fault_history = history
        for d in self.deployments:
            d.faults = own[d.name]
        self._apply_faults()
        return added

    def _apply_faults(self) -> None:
        for d, backend in zip(self.deployments, self._backends(asyncio.get_running_loop())):
            backend.set_faults(self._faults_of(d))

    def clear_faults(self) -> None:
        """End every current window now (top-level and per deployment) and drop the future ones."""
        now = self.now()
        self.fault_history = _ended_by(self.fault_history, now)
        for d in self.deployments:
            d.faults = _ended_by(d.faults, now)
            if d.backend is not None:
                d.backend.set_faults(self._faults_of(d))

    def fault_windows(self) -> list[dict]:
        """Every window injected so far, with ``deployment`` (None: all of them)."""
        rows = [{**dataclasses.asdict(f), DEPLOYMENT_FIELD: None} for f in self.fault_history]
        rows += [{**dataclasses.asdict(f), DEPLOYMENT_FIELD: d.name} for d in self.deployments for f in d.faults]
        return sorted(rows, key=lambda row: row["start"])


def _ended_by(windows: list[FaultWindow], now: float) -> list[FaultWindow]:
    """The windows with the current one ended at ``now`` and the future ones dropped."""
    kept = []
    for f in windows:
        if f.end <= now:
            kept.append(f)
        elif f.start < now:
            kept.append(dataclasses.replace(f, end=now))
    return kept


__all__ = ["DEPLOYMENT_FIELD", "GatewayService", "LiveDeployment"]
