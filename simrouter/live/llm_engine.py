"""The continuously batching LLM backend in real time (``serve --protocol openai``, ``backend.model = "llm"``).

The batching decisions are the simulation's own clock-free
``sim.batching.BatchScheduler`` (its docstring states them: FCFS queue,
``max_num_seqs`` slots, chunked prefill under ``max_num_batched_tokens``,
KV-cache preemption, step time from ``step_time`` and a fault's
``latency_factor``, who emits a token and who finishes). This module is its
asyncio engine, as ``sim.llm_backend`` is its SimPy engine:

* **A step is one timer.** ``plan_step(start)`` gives the step's duration; a
  ``loop.call_at`` fires at its end, which emits the step's tokens
  (``end_step``), plans the next step and arms the next timer. No coroutine per
  request, none per token.
* **Step timing is kept honest by absolute deadlines.** Steps run back to back
  on a nominal timeline: step k+1 starts at step k's nominal end (its
  deadline), not when the timer happened to fire, so the loop's lag (timer
  granularity, ~1 ms on Linux epoll; other work on the loop) is taken out of
  the next step instead of adding up. Lag is measured at every step
  (``lag``: how late the step's tokens went out). When a step's tokens go out
  more than ``MAX_CATCH_UP_S`` late (the process stalled), the timeline is
  re-anchored at the real time (the stall is then lost time, as a stalled
  server's; counted in ``reanchored``), rather than running a burst of steps
  with no time to catch up.
* **Idle, then busy.** A request that finds the server idle starts a step at
  once (in ``submit``, on the service clock), as the simulated one does.
* **Tokens.** Each request's ``TokenStream`` counts the tokens its sequence has
  emitted; a reader (``openai_service``) awaits ``changed()``. After each step
  every decoding sequence got one token; a sequence that emitted its last
  token got it and its answer (the router's future: ``SUCCESS``).
* **The router's side** is ``live.backend.StandInBackend``'s: ``submit()``
  returns a future that gets the outcome code when the sequence ends (its last
  token; ``FAILURE`` at once when refused on joining or too long for the
  cache; ``TIMEOUT`` after ``hang_time`` for a hung one), or None when the
  queue is full. The request being forwarded is read from ``CURRENT`` (a
  context variable the front end sets: the live counterpart of the
  simulation's ``current()``). The router's timeout sets the future's result
  and does not reach the batch (the sequence keeps running, as simulated: a
  timeout frees the user, not the server). A cancelled future (the client went
  away) cancels the sequence: it leaves the queue or the batch at once.
* Random numbers: the outcome and fault draws come from the simulation's
  streams for (seed, replication 0), and ``arrival_tokens`` gives each arrival
  the tokens of the simulation's logical request of the same rank (common
  random numbers with replication 0).

What it cannot do: a step is never shorter than the event loop can time
(~1 ms granularity and the loop's own work per step: writing each token's SSE
chunk), so steps of a few milliseconds are honest only on average and ITL
percentiles carry that jitter; a real GPU's step-time noise is not modelled
(the step time is exactly the linear model's).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable

from ..distributions import VariateStream
from ..outcomes import SUCCESS
from ..sim import streams
from ..sim.batching import DECODE, FINISHED, HUNG, BatchScheduler, Sequence
from ..sim.event_backend import CANCELLED, DONE
from .backend import uniform

MAX_CATCH_UP_S = 0.05  # later than this behind the nominal timeline: re-anchor at the real time

# The TokenStream of the request the front end is forwarding (set around RouterService.handle).
CURRENT: contextvars.ContextVar["TokenStream | None"] = contextvars.ContextVar("simrouter_llm_request", default=None)


def arrival_tokens(scenario, seed: int):
    """The token source of simulated replication 0 (``sim.llm_run.token_source``): the i-th
    call of its ``next()`` gives the i-th logical request's ``LLMRequest``."""
    from ..sim.llm_run import token_source

    return token_source(scenario, lambda source: streams.stream(seed, 0, source))


class TokenStream:
    """One request's tokens as the batch emits them: ``tokens`` so far, ``request``
    (``LLMRequest``); ``changed()`` waits for the next token or ``wake()``.
    ``token_wait``: set when the tokens-per-minute budget refused the request,
    the seconds it needs to hold the request's cost (None: not refused by it)."""

    __slots__ = ("request", "tokens", "token_wait", "_waiter")

    def __init__(self, request):
        self.request = request
        self.tokens = 0
        self.token_wait: float | None = None
        self._waiter: asyncio.Future | None = None

    def emit(self, count: int = 1) -> None:
        self.tokens += count
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def changed(self, timeout: float | None = None) -> None:
        """Return at the next ``emit`` / ``wake``, or after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(timeout, self.wake) if timeout is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


class LiveLLMBackend:
    """``BatchScheduler`` on an asyncio loop (module docstring); a ``RouterService``
    backend (``backend_factory``) with ``submit()``, ``busy``, ``queued``,
    ``set_faults``, ``busy_time``, ``restart_busy_time``, plus ``gauges()``."""

    def __init__(self, config, seed: int, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None):
        self._loop = loop or asyncio.get_running_loop()
        self._clock = clock
        self._scheduler = BatchScheduler(
            config,
            [],
            VariateStream(uniform, streams.stream(seed, 0, streams.BACKEND_OUTCOME)),
            VariateStream(uniform, streams.stream(seed, 0, streams.FAULT_OUTCOME)),
            self._finished,
        )
        self._faults: list = []
        self._deadline = 0.0  # the current step's nominal end (service clock)
        self._timer: asyncio.TimerHandle | None = None
        # Sequence-seconds held: integrated at every change of the running count.
        self._busy_s = 0.0
        self._held = 0
        self._since = clock()
        self.steps = 0
        self.step_seconds = 0.0  # nominal step time, summed
        self.lag_sum = 0.0
        self.lag_max = 0.0
        self.reanchored = 0

    # -- the router's side

    @property
    def busy(self) -> int:
        """Sequences holding a slot (prefilling, decoding or hung)."""
        return self._scheduler.running_count

    @property
    def queued(self) -> int:
        return self._scheduler.waiting_count

    @property
    def faults(self) -> list:
        return list(self._faults)

    def set_faults(self, windows) -> None:
        """Replace the fault windows (FaultWindow, times on the service clock)."""
        self._faults = list(windows)
        self._scheduler.set_faults(self._faults)

    def busy_time(self) -> float:
        """Sequence-seconds in the batch so far (since the last ``restart_busy_time``)."""
        return self._busy_s + self._held * (self._clock() - self._since)

    def restart_busy_time(self) -> None:
        self._account(self._clock())
        self._busy_s = 0.0

    def gauges(self) -> dict:
        """The engine's figures for ``/metrics`` (``service.llm``)."""
        steps = self.steps
        return {
            "running": self._scheduler.running_count,
            "waiting": self._scheduler.waiting_count,
            "steps": steps,
            "mean_step_ms": self.step_seconds / steps * 1000.0 if steps else None,
            "step_lag_ms": {"mean": self.lag_sum / steps * 1000.0 if steps else None, "max": self.lag_max * 1000.0},
            "reanchored_steps": self.reanchored,
            "preemptions": self._scheduler.preemptions,
        }

    def submit(self) -> asyncio.Future | None:
        """A future that gets the outcome code when the request in ``CURRENT`` ends;
        None if the queue is full."""
        stream = CURRENT.get()
        if stream is None:
            raise RuntimeError("LiveLLMBackend.submit: no request in CURRENT (the front end sets it)")
        now = self._clock()
        future = self._loop.create_future()
        seq = Sequence(None, stream.request, now, context=(future, stream))
        scheduler = self._scheduler
        if not scheduler.submit(seq, now):
            return None
        future.add_done_callback(lambda f: self._withdraw(seq) if f.cancelled() else None)
        self._answer_refused()
        if scheduler.wants_step:
            self._start_step(now)
        return future

    # -- the engine loop

    def _account(self, now: float) -> None:
        self._busy_s += self._held * (now - self._since)
        self._since = now
        self._held = self._scheduler.running_count

    def _withdraw(self, seq: Sequence) -> None:
        now = self._clock()
        scheduler = self._scheduler
        if scheduler.cancel(seq, now):
            self._account(now)
            if scheduler.wants_step:
                self._start_step(now)

    def _answer(self, seq: Sequence, outcome: int) -> None:
        seq.state = DONE
        future = seq.context[0]
        if not future.done():
            future.set_result(outcome)

    def _finished(self, seq: Sequence) -> None:
        """The scheduler's ``on_finish``: the last token, and the answer."""
        seq.context[1].emit()
        self._answer(seq, SUCCESS)

    def _answer_refused(self) -> None:
        refused = self._scheduler.refused
        for seq in refused:
            if seq.phase == HUNG:
                self._loop.call_later(self._scheduler.hang_time, self._hung_up, seq)
            elif seq.phase == FINISHED and seq.state != CANCELLED:
                self._answer(seq, seq.outcome)
        refused.clear()

    def _hung_up(self, seq: Sequence) -> None:
        now = self._clock()
        scheduler = self._scheduler
        if scheduler.end_hang(seq, now):
            self._account(now)
            self._answer(seq, seq.outcome)
            if scheduler.wants_step:
                self._start_step(now)

    def _start_step(self, start: float) -> None:
        """Plan the step starting at ``start`` (service clock) and arm its end."""
        duration = self._scheduler.plan_step(start)
        self._answer_refused()
        self._account(self._clock())
        if duration is None:
            self._timer = None
            return
        self._deadline = start + duration
        self.step_seconds += duration
        self._timer = self._loop.call_at(self._loop.time() + (self._deadline - self._clock()), self._end_step)

    def _end_step(self) -> None:
        now = self._clock()
        deadline = self._deadline
        lag = max(0.0, now - deadline)
        self.steps += 1
        self.lag_sum += lag
        if lag > self.lag_max:
            self.lag_max = lag
        scheduler = self._scheduler
        scheduler.end_step(deadline)
        for seq in scheduler.running():
            if seq.phase == DECODE:
                seq.context[1].emit()
        if lag > MAX_CATCH_UP_S:
            self.reanchored += 1
            deadline = now
        self._start_step(deadline)
