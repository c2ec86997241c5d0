"""SIGINT and SIGTERM: both stop a command the same way; each has its exit status.

``handling_signals()`` (the CLI runs every command inside it) makes SIGTERM raise
``Terminated``, a ``KeyboardInterrupt``, so everything that keeps completed work on
Ctrl-C (replications, sweeps, the live generator) does the same when a scheduler,
``timeout`` or ``docker stop`` sends SIGTERM. ``exit_status()`` is then 128 + the
signal number, as shells report it: **130** after SIGINT, **143** after SIGTERM.

``note(signum)`` records a signal handled elsewhere (the live generator's event
loop catches both itself). ``shielded()`` defers both signals while completed
results are being written, so a second Ctrl-C cannot leave a half-written file;
a signal deferred that way is raised when the block ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)

__all__ = ["Terminated", "exit_status", "handling_signals", "note", "received", "shielded"]

_received: int | None = None


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (handled like Ctrl-C)."""


def note(signum: int) -> None:
    """Record that ``signum`` stopped (or is stopping) the command."""
    global _received
    _received = signum


def received() -> int | None:
    """The last SIGINT / SIGTERM seen since ``handling_signals()`` began (None: none)."""
    return _received


def exit_status() -> int:
    """128 + the signal that interrupted the command (SIGINT when none was recorded:
    a ``KeyboardInterrupt`` raised by other means)."""
    return 128 + int(_received or signal.SIGINT)


def _raise_for(signum: int) -> None:
    note(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _on_signal(signum, frame) -> None:
    _raise_for(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _handlers(handler) -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


@contextmanager
def handling_signals() -> Iterator[None]:
    """Within the block SIGINT raises ``KeyboardInterrupt`` and SIGTERM ``Terminated``;
    the previous handlers come back after it (a no-op outside the main thread)."""
    global _received
    _received = None
    if not _in_main_thread():
        yield
        return
    with _handlers(_on_signal):
        yield


@contextmanager
def shielded() -> Iterator[None]:
    """Defer SIGINT / SIGTERM until the block ends, then raise for the last one."""
    if not _in_main_thread():
        yield
        return
    deferred: list[int] = []
    with _handlers(lambda signum, frame: deferred.append(signum)):
        yield
    if deferred:
        _raise_for(deferred[-1])
