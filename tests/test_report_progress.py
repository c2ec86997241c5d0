"""Progress bars: drawn on a terminal and erased when done, silent anywhere else."""

from __future__ import annotations

import io

from rich.console import Console

from simrouter.report import progress_bar, track


def console(terminal: bool):
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=terminal, width=100), buffer


def test_track_on_a_terminal_counts_every_item_and_erases_itself():
    term, buffer = console(terminal=True)
    assert list(track(range(5), "work", console=term)) == [0, 1, 2, 3, 4]
    text = buffer.getvalue()
    assert "work" in text and "5/5" in text  # the last frame showed all items done
    assert text.endswith("\x1b[2K")  # transient: the bar's line is cleared at the end


def test_progress_bar_advances_by_amounts():
    term, buffer = console(terminal=True)
    with progress_bar(10, "points", console=term) as advance:
        advance(4)
        advance(6)
    assert "10/10" in buffer.getvalue()


def test_silent_when_not_a_terminal_or_disabled():
    plain, buffer = console(terminal=False)
    assert list(track(iter("abc"), "work", console=plain)) == ["a", "b", "c"]  # no len(): unknown total
    assert buffer.getvalue() == ""
    term, buffer = console(terminal=True)
    with progress_bar(3, "quiet", console=term, enabled=False) as advance:
        advance(3)
    assert buffer.getvalue() == ""
