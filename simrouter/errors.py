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
