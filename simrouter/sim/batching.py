"""The continuous-batching scheduler of an LLM server (vLLM-style), clock-free.

``BatchScheduler`` makes every decision of a continuously batching server and
reads no clock: each call takes ``now``. Two engines drive the SAME object
(docs/llm.md, "One scheduler, two engines"):

* ``sim.llm_backend.LLMBackend``: SimPy, one event per step;
* ``live.llm_engine.LiveLLMBackend``: asyncio in real time, one task sleeping
  each step to its absolute deadline, streaming each step's tokens.

An engine's loop: ``plan_step(now)`` returns the duration of the step that
starts now (None: nothing to compute, the engine idles until ``submit`` or
``end_hang`` makes ``wants_step`` true), the engine lets that much time pass
and calls ``end_step(now)``, which emits the step's tokens, calls
``on_finish(seq)`` for every sequence that emitted its last token, and leaves
the batch ready for the next ``plan_step``. Requests refused when they join
(failures, hangs) and at submission (too long for the cache) are put in
``refused``, in order; the engine drains it after ``submit`` and
``plan_step``: a ``FINISHED`` one is answered at once, a ``HUNG`` one ends
after ``hang_time`` (``end_hang``).

Semantics (docs/llm.md):

* **Waiting queue, FCFS.** A submitted request waits until a sequence
  slot is free (``max_num_seqs`` running sequences at most) and, with
  ``kv_cache_tokens``, until its prefill fits in the free cache (the head of
  the queue blocks those behind it). ``queue_limit`` bounds the requests
  waiting: an arrival that finds every slot taken and ``queue_limit`` waiting
  is rejected at once (``submit`` returns False: ``QUEUE_FULL``).
* **Scheduling a step, as vLLM's scheduler does: running sequences first.**
  Each decoding sequence takes one token of the step's budget
  ``max_num_batched_tokens``; what remains goes to prefill, in FCFS order:
  first to running sequences whose prefill is not finished, then to waiting
  requests that join the batch now (a request joins only if at least one
  prefill token is left for it). A prompt longer than the budget is prefilled
  in chunks over several steps (chunked prefill).
* **Tokens.** The step that completes a sequence's prefill emits its first
  token (its TTFT ends at that step's end); every later step emits one token
  per decoding sequence; the request ends with its last token (a one-token
  answer ends with its prefill). After ``end_step``, every sequence of
  ``running()`` in phase ``DECODE`` emitted exactly one token in that step
  (those that just completed their prefill included); those that emitted
  their last one were passed to ``on_finish`` and are no longer running.
* **Step time** = ``base`` + ``per_prefill_token`` x prompt tokens prefilled in
  the step + ``per_decode_token`` x sequences that emit a token in the step
  (decoding sequences and those whose prefill completes: each samples one
  token), multiplied by a fault window's ``latency_factor`` when the step
  starts inside it. With ``base = per_prefill_token = 0`` a step with n
  sequences costs ``per_decode_token x n`` and gives each one token: processor
  sharing with service ``per_decode_token x output`` (tests/test_llm_backend.py).
* **Faults and failures** are judged when a request first joins the batch:
  inside a fault window it fails with probability ``error_rate``; otherwise
  ``failures.processing`` fails it and ``failures.timeout`` makes it hang
  (it holds its sequence slot ``hang_time`` s, emits nothing, ends
  ``TIMEOUT``). A request whose prompt + output exceed ``kv_cache_tokens``
  could never run: it fails at submission.
* **KV cache** (optional ``kv_cache_tokens``): a running sequence holds its
  prompt (reserved in full when it joins) plus the tokens it has emitted.
  Before a step, while the cache cannot hold one more token for every
  sequence that may emit one, the newest running sequence is preempted and
  recomputed later (vLLM's default): it goes back to the head of the waiting
  queue, releases its cache, and must prefill its prompt plus the tokens it
  had emitted again; the step that completes that prefill emits its next
  token. So latency jumps when memory, not compute, binds.
* **Cancellation** (``cancel``): a waiting request leaves the queue; a running
  one leaves the batch at once (tokens of the current step are not emitted
  for it).

Work per step is O(1) for decoding sequences (a decoding sequence's last step
is known when it starts decoding: step counters, not per-token updates) plus
O(sequences in prefill, finishing or preempted). Optional logs, for a finite
run (the simulation; a long-lived service keeps counters instead):
``steps`` (``StepLog``: end time, duration, running and waiting sequences,
tokens emitted by decoding sequences) and ``services`` (``ServiceLog``: each
request's residency in the batch, first join -> end).
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from collections.abc import Callable

import numpy as np

from ..outcomes import FAILURE, SUCCESS, TIMEOUT
from .event_backend import CANCELLED, RUNNING, WAITING

# Where a sequence is inside the server (``Sequence.state`` is what the router reads).
QUEUED, PREFILL, DECODE, HUNG, FINISHED = range(5)


class Sequence:
    """One request inside the server (the router's job): ``state``, ``end``,
    ``outcome`` as ``event_backend.Job``; ``first_token`` (inf until emitted),
    ``request`` its tokens (``sim.requests.LLMRequest``), ``phase`` where it is
    in the server, ``on_done`` the engine's callback, ``context`` free for the
    engine (the live one keeps its token stream there)."""

    __slots__ = (
        "on_done", "state", "end", "outcome", "request", "submitted", "first_token", "phase", "emitted", "prefill_left",
        "kv", "decode_from", "finish_step", "last_emit", "logged_as", "joined_once", "chunk", "context",
    )  # fmt: skip

    def __init__(self, on_done: Callable[["Sequence"], None] | None, request, now: float, context=None):
        self.on_done = on_done
        self.state = WAITING
        self.end = float("inf")
        self.outcome = SUCCESS
        self.request = request
        self.submitted = now
        self.first_token = float("inf")
        self.phase = QUEUED
        self.emitted = 0  # tokens emitted (for a decoding sequence: as of step ``decode_from``)
        self.prefill_left = request.prompt
        self.kv = 0  # cache tokens held (decoding: as of step ``decode_from``)
        self.decode_from = 0
        self.finish_step = 0
        self.last_emit = now
        self.logged_as = -1
        self.joined_once = False
        self.chunk = 0  # prefill tokens scheduled in the current step
        self.context = context


class StepLog:
    """Per engine step: end time, duration, running sequences (slots held),
    waiting requests, tokens emitted by decoding sequences (inter-token gaps
    equal to the step's duration). Plus ``gaps``: inter-token gaps of
    sequences recomputed after a preemption (their next token's wait)."""

    __slots__ = ("end", "duration", "running", "waiting", "decoded", "gaps")

    def __init__(self) -> None:
        self.end = array("d")
        self.duration = array("d")
        self.running = array("l")
        self.waiting = array("l")
        self.decoded = array("l")
        self.gaps = array("d")

    def columns(self) -> dict[str, np.ndarray]:
        return {name: np.frombuffer(getattr(self, name), dtype=np.float64 if name in ("end", "duration", "gaps") else np.int64).copy() for name in self.__slots__}


class BatchScheduler:
    """The batching decisions (module docstring); ``on_finish(seq)`` is called
    when ``seq`` emits its last token (``seq.end`` set, ``outcome`` SUCCESS).

    ``uniform``, ``fault_uniform``: objects with ``next()`` giving uniform [0, 1)
    draws (the outcome of a request joining; a fault window's error draw).
    ``steps``, ``services``: optional logs (module docstring)."""

    def __init__(self, config, faults, uniform, fault_uniform, on_finish: Callable[[Sequence], None], steps: StepLog | None = None, services=None):
        st = config.step_time
        self._max_seqs = config.max_num_seqs
        self._budget = config.max_num_batched_tokens
        self._kv_cap = config.kv_cache_tokens
        self._queue_limit = config.queue_limit
        self._base, self._per_prefill, self._per_decode = st.base, st.per_prefill_token, st.per_decode_token
        self._p_failure = config.failures.processing
        self._p_fail_or_hang = config.failures.processing + config.failures.timeout
        self.hang_time = config.hang_time
        self._uniform = uniform
        self._fault_uniform = fault_uniform
        self.set_faults(faults)
        self._on_finish = on_finish
        self._waiting: deque[Sequence] = deque()  # may hold cancelled sequences, skipped
        self._n_waiting = 0
        self._running: dict[Sequence, None] = {}  # prefill and decode, in joining order (newest last)
        self._prefilling: dict[Sequence, None] = {}  # FCFS
        self._n_decode = 0
        self._finishing: dict[int, list[Sequence]] = {}  # step index -> decoding sequences ending then
        self._hung = 0
        self._kv_used = 0
        self._step = 0  # steps completed
        self._stepping = False
        self._scheduled: list[Sequence] = []  # prefill chunks of the current step
        self.preemptions = 0
        self.refused: list[Sequence] = []  # for the engine to answer (module docstring)
        self.steps = steps
        self.services = services

    # -- what the engines read

    @property
    def stepping(self) -> bool:
        """A step is in progress (planned, not yet ended)."""
        return self._stepping

    @property
    def wants_step(self) -> bool:
        """Idle with requests waiting: the engine should call ``plan_step`` now."""
        return not self._stepping and self._n_waiting > 0

    @property
    def steps_done(self) -> int:
        return self._step

    @property
    def running_count(self) -> int:
        """Sequences holding a slot (prefilling, decoding or hung)."""
        return len(self._running) + self._hung

    @property
    def waiting_count(self) -> int:
        return self._n_waiting

    def running(self):
        """The sequences in the batch (prefill and decode), oldest first."""
        return self._running.keys()

    def emitted(self, seq: Sequence) -> int:
        """Tokens ``seq`` has emitted so far."""
        if seq.phase == DECODE:
            return seq.emitted + (self._step - seq.decode_from)
        return seq.emitted

    def set_faults(self, faults) -> None:
        """Replace the fault windows (``FaultWindow``s on the engine's clock)."""
        self._faults = sorted(faults, key=lambda f: f.start)
        self._fault_starts = [f.start for f in self._faults]

    # -- requests

    def submit(self, seq: Sequence, now: float) -> bool:
        """Queue ``seq`` at ``now``; False: the queue is full (``QUEUE_FULL``). A
        request that can never fit the cache is put in ``refused`` (FAILURE)."""
        request = seq.request
        if self._kv_cap is not None and request.prompt + request.output > self._kv_cap:
            self._refuse(seq, now, FAILURE)  # can never fit: as a server refusing an over-long request
            return True
        if len(self._running) + self._hung + self._n_waiting >= self._max_seqs and self._n_waiting >= self._queue_limit:
            return False
        self._waiting.append(seq)
        self._n_waiting += 1
        return True

    def cancel(self, seq: Sequence, now: float) -> bool:
        """Withdraw ``seq``: out of the queue or out of the batch, now (its answer, if one is
        pending, is not delivered). False if it had already been answered or withdrawn."""
        if seq.state not in (WAITING, RUNNING):
            return False
        phase = seq.phase
        if phase == QUEUED:
            self._n_waiting -= 1
        elif phase == PREFILL:
            del self._prefilling[seq]
            del self._running[seq]
            self._kv_used -= seq.kv
        elif phase == DECODE:
            self._n_decode -= 1
            del self._running[seq]
            self._kv_used -= seq.kv + (self._step - seq.decode_from)
        elif phase == HUNG:
            self._hung -= 1
        # FINISHED but not DONE: refused, its answer not yet delivered (the engine drops it)
        seq.state, seq.phase = CANCELLED, FINISHED
        if seq.logged_as >= 0 and self.services is not None:
            self.services.cut(seq.logged_as, now)
        return True

    def end_hang(self, seq: Sequence, now: float) -> bool:
        """A hung sequence's ``hang_time`` is over: it ends ``TIMEOUT``, its slot free.
        False if it was cancelled meanwhile."""
        if seq.state == CANCELLED:
            return False
        self._hung -= 1
        seq.phase = FINISHED
        seq.end, seq.outcome = now, TIMEOUT
        if self.services is not None:
            self.services.cut(seq.logged_as, now)
        return True

    # -- the step

    def _refuse(self, seq: Sequence, now: float, outcome: int) -> None:
        seq.state, seq.phase, seq.end, seq.outcome = RUNNING, FINISHED, now, outcome
        self.refused.append(seq)

    def _join_outcome(self, seq: Sequence, now: float) -> int:
        """Faults and failures, drawn when a request first joins the batch."""
        if self._faults:
            i = bisect.bisect_right(self._fault_starts, now) - 1
            if i >= 0 and now < self._faults[i].end and self._fault_uniform.next() < self._faults[i].error_rate:
                return FAILURE
        u = self._uniform.next()
        if u < self._p_fail_or_hang:
            return FAILURE if u < self._p_failure else TIMEOUT
        return SUCCESS

    def _preempt_newest(self, now: float) -> None:
        seq = next(reversed(self._running))
        del self._running[seq]
        step = self._step
        if seq.phase == DECODE:
            self._n_decode -= 1
            elapsed = step - seq.decode_from
            seq.emitted += elapsed
            seq.kv += elapsed
        else:
            del self._prefilling[seq]
        self._kv_used -= seq.kv
        seq.kv = 0
        seq.phase = QUEUED
        seq.prefill_left = seq.request.prompt + seq.emitted  # recompute
        seq.last_emit = now
        self._waiting.appendleft(seq)
        self._n_waiting += 1
        self.preemptions += 1

    def plan_step(self, now: float) -> float | None:
        """Schedule the step starting at ``now`` (preemptions, prefill chunks, joins);
        its duration in seconds, or None when there is nothing to compute (idle, or
        only hung sequences). Sequences whose last token the step emits get ``end``."""
        kv_cap = self._kv_cap
        if kv_cap is not None:
            while self._running and self._kv_used + self._n_decode + len(self._prefilling) > kv_cap:
                self._preempt_newest(now)
        budget = self._budget - self._n_decode
        prefill_tokens = 0
        emitting = self._n_decode
        scheduled = self._scheduled
        for seq in self._prefilling:
            if budget <= 0:
                break
            chunk = _schedule_chunk(seq, budget, scheduled)
            budget -= chunk
            prefill_tokens += chunk
            emitting += chunk == seq.prefill_left
        waiting = self._waiting
        while waiting and budget > 0 and len(self._running) + self._hung < self._max_seqs:
            seq = waiting[0]
            if seq.state == CANCELLED:
                waiting.popleft()
                continue
            if kv_cap is not None and self._kv_used + self._n_decode + len(self._prefilling) + seq.prefill_left + 1 > kv_cap:
                break  # FCFS: the head waits for memory
            waiting.popleft()
            self._n_waiting -= 1
            if not seq.joined_once:
                seq.joined_once = True
                seq.state = RUNNING
                if self.services is not None:
                    seq.logged_as = self.services.add(now, float("inf"))
                outcome = self._join_outcome(seq, now)
                if outcome == FAILURE:
                    if self.services is not None:
                        self.services.cut(seq.logged_as, now)
                    self._refuse(seq, now, FAILURE)
                    continue
                if outcome == TIMEOUT:
                    seq.phase = HUNG
                    self._hung += 1
                    self.refused.append(seq)
                    continue
            seq.phase = PREFILL
            seq.kv = seq.prefill_left
            self._kv_used += seq.kv
            self._running[seq] = None
            self._prefilling[seq] = None
            chunk = _schedule_chunk(seq, budget, scheduled)
            budget -= chunk
            prefill_tokens += chunk
            emitting += chunk == seq.prefill_left
        if not self._running:
            self._stepping = False
            return None
        duration = self._base + self._per_prefill * prefill_tokens + self._per_decode * emitting
        if self._faults:
            i = bisect.bisect_right(self._fault_starts, now) - 1
            if i >= 0 and now < self._faults[i].end:
                duration *= self._faults[i].latency_factor
        self._stepping = True
        # Sequences whose last token this step emits end at its end: known now, so a router
        # deadline at that very instant finds them ending then (a success: instants.py rule 1).
        step_end = now + duration
        for seq in self._finishing.get(self._step + 1, ()):
            if seq.phase == DECODE and seq.finish_step == self._step + 1:
                seq.end = step_end
        for seq in scheduled:
            if seq.chunk == seq.prefill_left and seq.emitted + 1 >= seq.request.output:
                seq.end = step_end
        steps = self.steps
        if steps is not None:
            steps.duration.append(duration)
            steps.running.append(len(self._running) + self._hung)
            steps.waiting.append(self._n_waiting)
            steps.decoded.append(self._n_decode)
        return duration

    def end_step(self, now: float) -> None:
        """The planned step ended at ``now``: its tokens are emitted (module docstring)."""
        steps = self.steps
        if steps is not None:
            steps.end.append(now)
        self._step = step = self._step + 1
        # Decoding sequences each emitted a token; those at their last one end.
        self._kv_used += self._n_decode
        ending = self._finishing.pop(step, None)
        if ending:
            for seq in ending:
                if seq.phase == DECODE and seq.finish_step == step:
                    self._n_decode -= 1
                    del self._running[seq]
                    self._kv_used -= seq.kv + (step - seq.decode_from)
                    self._finish(seq, now)
        # Prefill chunks; a completed prefill emits a token.
        scheduled, self._scheduled = self._scheduled, []
        for seq in scheduled:
            if seq.phase != PREFILL:  # cancelled during the step
                continue
            seq.prefill_left -= seq.chunk
            if seq.prefill_left:
                continue
            del self._prefilling[seq]
            seq.emitted += 1
            seq.kv += 1
            self._kv_used += 1
            if seq.emitted == 1:
                seq.first_token = now
            elif steps is not None:
                steps.gaps.append(now - seq.last_emit)  # the wait of a recomputed sequence
            remaining = seq.request.output - seq.emitted
            if remaining <= 0:
                del self._running[seq]
                self._kv_used -= seq.kv
                self._finish(seq, now)
                continue
            seq.phase = DECODE
            seq.decode_from = step
            seq.finish_step = step + remaining
            self._n_decode += 1
            bucket = self._finishing.get(seq.finish_step)
            if bucket is None:
                self._finishing[seq.finish_step] = [seq]
            else:
                bucket.append(seq)
        self._stepping = False

    def _finish(self, seq: Sequence, now: float) -> None:
        seq.phase = FINISHED
        seq.emitted = seq.request.output
        seq.end = now
        if self.services is not None:
            self.services.cut(seq.logged_as, now)
        self._on_finish(seq)


def _schedule_chunk(seq, budget: int, scheduled: list) -> int:
    """Give ``seq`` the next chunk of its prefill, at most ``budget`` tokens, in this
    step (``scheduled``); returns the chunk's size (the whole rest: its first token comes)."""
    chunk = seq.prefill_left if seq.prefill_left < budget else budget
    seq.chunk = chunk
    scheduled.append(seq)
    return chunk
