"""``--processes N``: one open-model live run spread over N generator processes.

Every process draws the same schedule (arrival times and user keys, from the
run's seed) and sends arrival ``j`` only when ``j % N`` is its index, so the N
processes together send exactly the arrivals one process would, on the same
clock: the parent hands each the same start (``time.monotonic()``, one clock for
every process of a machine) once all N are ready to send (session open, faults
injected, heap frozen: ``LiveOptions.start_at`` as a callable). Each has
``ceil(connections / N)`` connections and its own backlog bound.

The parent merges what the processes measured into one run: their per-request
columns (intended, ready, actual, done, kind, and any decoded answer's fields),
ordered by intended send time, and their counts (arrivals, dropped, late, lag,
resends), then builds the ``LiveResult`` as for one process, so the result has
the same shape; its HDR histograms are those of the merged requests (equal to
the merge of the processes' own histograms, ``hdr.merge``). The generator's CPU
share is the busiest process's. Only process 0 sends the scenario's
``[[faults]]``, shows the progress bar and reads the target's ``/metrics``.

SIGINT / SIGTERM to the parent is passed to every process: each stops sending,
ends its requests in flight as ``interrupted`` and reports what it measured.
Only the open model can be spread (closed users are one process's coroutines).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import signal
import threading
import time

import numpy as np

from .. import interrupts
from ..config import Scenario
from ..errors import ConfigError

START_MARGIN_S = 0.05  # from "all processes ready to send" to the run's first instant


def check_processes(scenario: Scenario, processes: int) -> None:
    if not isinstance(processes, int) or processes < 1:
        raise ConfigError("--processes", f"expected a whole number >= 1, got {processes!r}")
    if processes > 1 and scenario.workload.model != "open":
        raise ConfigError("--processes", f"spreads open-model arrivals over processes; workload.model is {scenario.workload.model!r} (use 1)")


def _child(scenario: Scenario, target: str, options, connection, LoadGenerator, loop_factory) -> None:  # noqa: N803 - a class
    """One generator process: build, say ready, wait for the start, run, send back what it measured."""
    import asyncio

    try:
        def ready_then_start() -> float:  # called by the run once it is ready to send
            connection.send(("ready", None))
            return connection.recv()

        generator = LoadGenerator(scenario, target, dataclasses.replace(options, start_at=ready_then_start))
        with asyncio.Runner(loop_factory=loop_factory(options.loop)) as runner:
            result = runner.run(generator.run())
        connection.send(("done", _measured(generator, result)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        connection.send(("error", exc))
    finally:
        connection.close()


def _measured(generator, result) -> dict:
    """What the parent merges: one process's columns and counts."""
    sent, actual, done, kind, ready = generator.columns.arrays()
    answers = generator.answers
    return {
        "columns": (sent, ready, actual, done, kind),
        "answers": {**answers.arrays(), "error_codes": dict(answers.error_codes), "last_ratelimit": dict(answers.last_ratelimit),
                    "ratelimited_answers": answers.ratelimited_answers},
        "counts": {name: getattr(generator, name) for name in ("arrivals", "dropped", "late", "late_pool", "lag_sum", "max_lag", "cpu_s", "sending_s", "resent")},
        "loop_lag": np.frombuffer(generator.loop_lag, dtype=np.float64).copy() if len(generator.loop_lag) else np.empty(0),
        "cut_short": generator.cut_short,
        "interrupted_by": generator.interrupted_by,
        "notes": list(generator.notes),
        "finished": list(generator.finished),
        "fault_injection": dict(generator.fault_injection),
        "target_metrics": result.target_metrics,
        "elapsed": result.sim_time_s,
        "wall_time_s": result.wall_time_s,
    }


def run_processes(scenario: Scenario, target: str, options, generator_class, loop_factory, default_connections: int):
    """The run of ``scenario`` spread over ``options.processes`` processes -> one ``LiveResult``
    (``generator_class``: ``loadgen.LoadGenerator``, passed in, as ``loop_factory``: this module
    does not import the generator's, which imports this one)."""
    from .result import build_live_result

    count = options.processes
    check_processes(scenario, count)
    loop_factory(options.loop)  # a bad --loop fails here, not in N processes
    connections = options.connections or default_connections
    merged = generator_class(scenario, target, dataclasses.replace(options, processes=1))  # validates; never runs
    context = multiprocessing.get_context("spawn")
    children, pipes = [], []
    wall_start = time.time()
    for index in range(count):
        shard_options = dataclasses.replace(
            options, processes=1, shard=(index, count), connections=max(1, math.ceil(connections / count)),
            inject_faults=options.inject_faults and index == 0, progress=options.progress and index == 0,
        )
        parent_end, child_end = context.Pipe()
        process = context.Process(target=_child, args=(scenario, target, shard_options, child_end, generator_class, loop_factory), name=f"simrouter-live-{index}", daemon=True)
        process.start()
        child_end.close()
        children.append(process)
        pipes.append(parent_end)
    previous = _forward_signals(children)
    try:
        for pipe in pipes:
            status, payload = pipe.recv()
            if status == "error":
                raise payload
        start_at = time.monotonic() + START_MARGIN_S
        for pipe in pipes:
            pipe.send(start_at)
        shards = []
        for pipe in pipes:
            status, payload = pipe.recv()
            if status == "error":
                raise payload
            shards.append(payload)
    finally:
        _restore_signals(previous)
        for process in children:
            process.join(10)
            if process.is_alive():
                process.terminate()
    _merge_into(merged, shards)
    elapsed = max(shard["elapsed"] for shard in shards)
    return build_live_result(merged, elapsed, shards[0]["target_metrics"], wall_start)


def _merge_into(merged, shards: list[dict]) -> None:
    """The shards' columns (ordered by intended send time) and counts into the unrun generator ``merged``."""
    columns = [np.concatenate([shard["columns"][i] for shard in shards]) for i in range(5)]
    order = np.argsort(columns[0], kind="stable")
    sent, ready, actual, done, kind = (column[order] for column in columns)
    target = merged.columns
    target.sent.extend(sent.tolist())
    target.ready.extend(ready.tolist())
    target.actual.extend(actual.tolist())
    target.done.extend(done.tolist())
    target.kind.extend(kind.astype(np.int8).tolist())
    new_row = np.empty_like(order)
    new_row[order] = np.arange(order.size)  # a shard's row r, offset by the shards before it -> its merged row
    answers, offset = merged.answers, 0
    for shard in shards:
        a = shard["answers"]
        answers.row.extend(new_row[a["row"] + offset].tolist())
        for name in ("first_token", "output", "prompt", "usage", "tpot", "retry_after", "itl"):
            getattr(answers, name).extend(a[name].tolist())
        answers.itl_row.extend(new_row[a["itl_row"] + offset].tolist())
        answers.error_codes.update(a["error_codes"])
        answers.ratelimited_answers += a["ratelimited_answers"]
        if a["last_ratelimit"]:
            answers.last_ratelimit = dict(a["last_ratelimit"])
        offset += len(shard["columns"][0])
    counts = [shard["counts"] for shard in shards]
    for name in ("arrivals", "dropped", "late", "late_pool", "lag_sum", "resent"):
        setattr(merged, name, sum(c[name] for c in counts))
    merged.max_lag = max(c["max_lag"] for c in counts)
    merged.sending_s = max(c["sending_s"] for c in counts)
    busiest = max((c["cpu_s"] / c["sending_s"] if c["sending_s"] > 0 else 0.0) for c in counts)
    merged.cpu_s = busiest * merged.sending_s  # cpu_share: the busiest process's
    merged.loop_lag.extend(np.concatenate([shard["loop_lag"] for shard in shards]).tolist())
    merged.finished.extend(t for shard in shards for t in shard["finished"])
    merged.cut_short = any(shard["cut_short"] for shard in shards)
    merged.interrupted_by = next((shard["interrupted_by"] for shard in shards if shard["interrupted_by"]), None)
    merged.fault_injection = dict(shards[0]["fault_injection"])
    notes = []
    for shard in shards:
        notes += [note for note in shard["notes"] if note not in notes and note not in merged.notes]
    merged.notes += notes
    merged.notes.append(
        f"spread over {len(shards)} generator processes (each sent every {len(shards)}-th arrival of the schedule); "
        "generator CPU share is the busiest process's"
    )


def _forward_signals(children: list) -> dict:
    """While the processes run: SIGINT / SIGTERM to the parent goes to each of them."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def forward(sig, _frame):
        interrupts.note(sig)
        for process in children:
            if process.is_alive() and process.pid is not None:
                try:
                    os.kill(process.pid, sig)
                except ProcessLookupError:
                    pass

    previous = {}
    for sig in interrupts.SIGNALS:
        previous[sig] = signal.signal(sig, forward)
    return previous


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)
