"""Errors a user can cause, each carrying the field or address it concerns.

``ConfigError`` names a dotted configuration field (``backend.capacity``) and
says what is accepted; the CLI prints it as one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ConfigError(ValueError):
    """A configuration value that cannot be used; ``field`` is its dotted name."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


def unknown_key_message(key: str, accepted: Iterable[str], where: str) -> str:
    """'unknown key' text with a did-you-mean suggestion and the accepted keys."""
    accepted = list(accepted)
    close = difflib.get_close_matches(key, accepted, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key in {where}{hint}; accepted keys: {', '.join(accepted)}"


class ScenarioWarning(UserWarning):
    """A scenario that runs, but not as its author probably meant (names the field);
    the ``simrouter`` command prints it as one ``simrouter: warning:`` line."""


class SimulationStalled(ConfigError):
    """A run whose simulated clock stopped advancing: a configuration under which
    users keep sending at one instant (every request answered at once, no think
    time) would loop forever; both engines raise this instead."""

    def __init__(self, at: float, sends: int):
        self.at = at
        self.sends = sends
        super().__init__(
            "workload.think_time",
            f"the simulation stalled at t = {at:g} s: {sends:,} sends without the simulated clock advancing "
            "(requests answered at once and a think time of 0); use a think time that is never 0, or requests_per_user > 0",
        )
        self.args = (at, sends)  # SimPy re-raises a process's exception as type(error)(*error.args)

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"
