"""The LLM backend: a continuously batching server (vLLM-style), one event per engine step.

``[backend] model = "llm"``. A request carries its tokens (``sim.requests.LLMRequest``).
The server runs a loop of **steps**; each step serves every running sequence at once.

The batching decisions (FCFS queue, slots, chunked prefill, KV-cache
preemption, step time, faults, who emits a token and who finishes) are the
clock-free ``sim.batching.BatchScheduler``, whose docstring states them; the
real-time engine (``live.llm_engine``) drives the same object. This module is
its SimPy engine: a step is one event at ``now + duration`` (``instants.ANSWERS``
priority), a request refused when it joins is answered at an event at the same
instant, a hung one at an event ``hang_time`` later.

The router's timeout does not cancel: as with the delay model a timed-out
request keeps its place (timeouts free the user). ``cancel`` (hedge losers)
does.

The engine is event-driven (a request's end depends on requests that arrive
after it, so the fast engine's resolve-at-admission cannot run it):
``sim.llm_run`` builds it behind ``client.PolicyRouter``.

Per-step records (``StepLog``: end time, duration, running and waiting
sequences, tokens emitted by decoding sequences) give batch occupancy over
time and the pooled inter-token latencies; each request's ``Sequence`` keeps
its first-token time for TTFT.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from .backend import ServiceLog
from .batching import FINISHED, HUNG, BatchScheduler, Sequence, StepLog
from .event_backend import CANCELLED, DONE
from .instants import ANSWERS, at_instant

__all__ = ["LLMBackend", "Sequence", "StepLog"]


class LLMBackend:
    """Continuous batching server; ``submit(now, on_done, request)`` admits a
    request (``LLMRequest``: the router passes the exchange's own)."""

    cancellable = True

    def __init__(self, env: simpy.Environment, config, faults, uniform, fault_uniform):
        self._env = env
        self.steps = StepLog()
        self.services = ServiceLog()  # each request's residency in the batch (first join -> end)
        self._scheduler = BatchScheduler(config, faults, uniform, fault_uniform, self._done, self.steps, self.services)
        self._plan = self._scheduler.plan_step
        self._ending = self._end_step  # bound once

    @property
    def preemptions(self) -> int:
        return self._scheduler.preemptions

    # -- the router's side

    def submit(self, now: float, on_done: Callable[[Sequence], None], request) -> Sequence | None:
        """Admit ``request`` at ``now`` (None: ``QUEUE_FULL``)."""
        seq = Sequence(on_done, request, now)
        scheduler = self._scheduler
        if not scheduler.submit(seq, now):
            return None
        if scheduler.refused:
            self._answer_refused()
        elif not scheduler.stepping:
            self._start_step(now)
        return seq

    def cancel(self, seq: Sequence, now: float) -> None:
        """Withdraw ``seq``: out of the queue or out of the batch, now."""
        scheduler = self._scheduler
        if scheduler.cancel(seq, now) and scheduler.wants_step:
            self._start_step(now)

    def busy_time_until(self, t: float) -> float:
        """Sequence-seconds in the batch by ``t`` (the residency log)."""
        return self.services.busy_between(0.0, t)

    def busy_time_between(self, t0: float, t1: float) -> float:
        return self.services.busy_between(t0, t1)

    # -- the engine loop

    def _done(self, seq: Sequence) -> None:
        if seq.state == CANCELLED:
            return
        seq.state = DONE
        seq.on_done(seq)

    def _answer_refused(self) -> None:
        """Answer the requests refused at submission or when joining: at once, or after a hang."""
        refused = self._scheduler.refused
        for seq in refused:
            if seq.phase == HUNG:
                self._env.timeout(self._scheduler.hang_time).callbacks.append(lambda _event, seq=seq: self._hung_up(seq))
            elif seq.phase == FINISHED:
                at_instant(self._env, 0.0, ANSWERS).callbacks.append(lambda _event, seq=seq: self._done(seq))
        refused.clear()

    def _hung_up(self, seq: Sequence) -> None:
        scheduler = self._scheduler
        now = self._env.now
        if not scheduler.end_hang(seq, now):
            return
        self._done(seq)
        if scheduler.wants_step:
            self._start_step(now)

    def _start_step(self, now: float) -> None:
        duration = self._plan(now)
        if self._scheduler.refused:
            self._answer_refused()
        if duration is not None:
            at_instant(self._env, duration, ANSWERS).callbacks.append(self._ending)

    def _end_step(self, _event) -> None:
        now = self._env.now
        self._scheduler.end_step(now)
        self._start_step(now)
