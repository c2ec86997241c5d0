"""Where independent runs execute: in this process, on local processes, or on Dask.

``run_tasks(fn, tasks, executor)`` calls ``fn(*args)`` for every task and returns
the results keyed like ``tasks``. Each task carries its own seed and replication,
so its result does not depend on where or in which order it ran: callers sort
by key, and the same seed gives the same table on 1 process, 8 processes or a
Dask cluster. ``executor`` is any ``concurrent.futures.Executor`` (None: run in
this process, one after another).

A Ctrl-C (``KeyboardInterrupt``, or SIGTERM under ``simrouter.interrupts``)
cancels what has not started and raises ``TasksInterrupted`` carrying every
result already completed, so callers can write them out; leaving
``open_executor`` by an exception stops its worker processes at once (a task
they were running is lost, not waited for). A task that raises, or whose worker
process dies, either fails the whole call (the default) or, with
``on_error(key, exception)``, gets that function's return value as its result
and the other tasks carry on.

``open_executor(kind, workers, address)`` is a context manager for the CLI's
``--executor processes|dask|serial``: ``ProcessPoolExecutor(workers)``; for Dask a
``distributed.Client`` on ``address`` or, without one, on a new
``LocalCluster`` of ``workers`` single-threaded worker processes bound to
127.0.0.1 with the web dashboard off. Dask is imported only when asked for.

``worker_count(executor)`` is how many tasks an executor runs at once: the
worker count ``open_executor`` opened it with, 1 for None (in this process),
and otherwise ``os.cpu_count()`` (the standard pools' default). Callers use it
only to size rounds of work, never to change a result.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import multiprocessing
import os
import signal
import weakref
from collections.abc import Callable, Hashable, Iterator, Mapping

from .errors import ConfigError

EXECUTOR_KINDS = ("processes", "dask", "serial")

__all__ = ["EXECUTOR_KINDS", "TasksInterrupted", "check_executor_options", "open_executor", "run_tasks", "worker_count"]

# Executors opened here -> their worker count (weak: a shut-down executor drops out).
_WORKERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class TasksInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived; ``completed`` maps each finished task's key to its result."""

    def __init__(self, completed: dict):
        super().__init__(f"interrupted after {len(completed)} completed tasks")
        self.completed = completed


def run_tasks(
    fn: Callable,
    tasks: Mapping[Hashable, tuple],
    executor: cf.Executor | None = None,
    on_done: Callable[[Hashable, object], None] | None = None,
    on_error: Callable[[Hashable, Exception], object] | None = None,
) -> dict:
    """``{key: fn(*args)}`` for every task; ``on_done(key, result)`` as each finishes;
    ``on_error``: see the module docstring."""
    completed: dict = {}
    futures: dict[cf.Future, Hashable] = {}

    def finish(key, outcome: Callable[[], object]) -> None:
        try:
            completed[key] = outcome()
        except Exception as exc:
            if on_error is None:
                raise
            completed[key] = on_error(key, exc)
        if on_done:
            on_done(key, completed[key])

    try:
        if executor is None:
            for key, args in tasks.items():
                finish(key, lambda: fn(*args))
            return completed
        futures = {executor.submit(fn, *args): key for key, args in tasks.items()}
        for future in cf.as_completed(futures):
            finish(futures[future], future.result)
        return completed
    except KeyboardInterrupt:
        for future in futures:
            future.cancel()
        raise TasksInterrupted(completed) from None
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def worker_count(executor: cf.Executor | None) -> int:
    """How many tasks ``executor`` runs at once (see the module docstring)."""
    if executor is None:
        return 1
    try:
        known = _WORKERS.get(executor)
    except TypeError:  # not weakly referenceable
        known = None
    return known or os.cpu_count() or 1


@contextlib.contextmanager
def open_executor(kind: str = "processes", workers: int | None = None, address: str | None = None) -> Iterator[cf.Executor | None]:
    """An executor of ``kind`` (see the module docstring), shut down on exit."""
    check_executor_options(kind, workers, address)
    if kind == "serial":
        yield None
    elif kind == "processes":
        context = _TrackingContext(multiprocessing.get_context())
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_ignore_interrupts)
        _WORKERS[pool] = workers or os.cpu_count() or 1
        try:
            yield pool
        except BaseException:
            _stop_workers(pool, context.processes)
            raise
        pool.shutdown(wait=True)
    else:
        with _dask_client(workers, address) as client:
            executor = client.get_executor()
            try:
                _WORKERS[executor] = sum(client.nthreads().values()) or 1
            except TypeError:  # not weakly referenceable
                pass
            yield executor


def check_executor_options(kind: str, workers: int | None = None, address: str | None = None) -> None:
    """ConfigError naming the option unless ``open_executor`` accepts these."""
    if kind not in EXECUTOR_KINDS:
        raise ConfigError("--executor", f"expected one of {', '.join(EXECUTOR_KINDS)}, got {kind!r}")
    if workers is not None and workers < 1:
        raise ConfigError("--workers", f"expected a whole number >= 1, got {workers}")
    if address and kind != "dask":
        raise ConfigError("--dask-address", "only used with --executor dask")


def _ignore_interrupts() -> None:
    """Worker processes leave Ctrl-C (sent to the whole process group) and SIGTERM to
    the parent, which keeps what has finished and then stops them itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class _TrackingContext:
    """A multiprocessing context that keeps every process it starts (``processes``),
    passed as the pool's public ``mp_context``: the pool's own process table is
    private, and the workers ignore SIGINT / SIGTERM, so stopping them at once needs
    their handles."""

    def __init__(self, base):
        self._base = base
        self.processes: list = []

    def Process(self, *args, **kwargs):  # noqa: N802 - the multiprocessing name
        process = self._base.Process(*args, **kwargs)
        self.processes.append(process)
        return process

    def __getattr__(self, name):
        return getattr(self._base, name)


def _stop_workers(pool: cf.ProcessPoolExecutor, processes: list) -> None:
    """Cancel what has not started and kill the workers (they ignore SIGINT / SIGTERM):
    an interrupted sweep should not wait for the runs in progress."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(5)


@contextlib.contextmanager
def _dask_client(workers: int | None, address: str | None):
    try:
        from distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - dask[distributed] is a dependency
        raise ConfigError("--executor", "dask needs the 'distributed' package: pip install 'dask[distributed]'") from None
    if address:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise ConfigError("--dask-address", f"cannot reach the Dask scheduler at {address}: {exc}") from None
        with client:
            yield client
        return
    cluster = LocalCluster(
        n_workers=workers or 1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    with cluster, Client(cluster) as client:
        yield client
