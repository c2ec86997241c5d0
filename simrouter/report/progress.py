"""Progress bars for work that takes more than a second or two (rich.progress).

``progress_bar(total, description)`` is a context manager yielding a callable:
call it with the number of items just finished (default 1). The bar shows items
done, elapsed and remaining time; it is transient (erased when done) and draws
nothing when the console is not a terminal (a pipe, a file, CI, a test), so
callers never need to check. ``track(iterable, description)`` wraps an iterable.

Commands that run replications, sweeps or live runs use these; pass
``enabled=False`` to silence them (e.g. ``--quiet``), or a ``Console`` to draw
elsewhere than standard error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _progress(console: Console | None, enabled: bool) -> Progress:
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not (enabled and console.is_terminal),
    )


@contextmanager
def progress_bar(total: float | None, description: str, *, console: Console | None = None, enabled: bool = True) -> Iterator[Callable[[float], None]]:
    """A transient bar for ``total`` items (None: unknown); yields ``advance(n=1)``."""
    with _progress(console, enabled) as progress:
        task = progress.add_task(description, total=total)

        def advance(amount: float = 1) -> None:
            progress.advance(task, amount)

        yield advance


def track(items: Iterable, description: str, *, total: float | None = None, console: Console | None = None, enabled: bool = True) -> Iterator:
    """Yield ``items``, advancing a transient bar after each."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)
    with progress_bar(total, description, console=console, enabled=enabled) as advance:
        for item in items:
            yield item
            advance()
