"""``${VAR}`` references to environment variables, and keeping their values out of outputs.

A ``[request]`` path, header value or body template may contain ``${NAME}``
(``NAME``: letters, digits, ``_``, not starting with a digit). The scenario keeps
the reference literally; ``resolve`` substitutes the value at run time from an
environment mapping and raises ``ConfigError`` naming the field and the
variable (never a value) when it is unset. Every value substituted is a secret:
``Secrets`` collects them and ``redact(text, secrets)`` replaces each occurrence
(longest first) by ``${NAME}``, for whatever is about to be written (JSON, report,
dashboard, log line, error message). ``$`` not followed by ``{`` is literal; a
``${`` that does not form a reference is a configuration error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..errors import ConfigError

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_OPENING = "${"


def references(text: str) -> list[str]:
    """The variable names ``text`` refers to, in order (repeats kept)."""
    return REFERENCE.findall(text)


def check_syntax(text: str, field: str) -> None:
    """ConfigError if ``text`` has a ``${`` that is not a well-formed reference."""
    stripped = REFERENCE.sub("", text)
    if _OPENING in stripped:
        start = stripped.index(_OPENING)
        raise ConfigError(field, f"malformed environment reference near {stripped[start:start + 12]!r}: write ${{NAME}} with NAME of letters, digits and _")


class Secrets:
    """The values substituted for ``${VAR}`` references (name -> value), for redaction."""

    def __init__(self, values: Mapping[str, str] | None = None):
        self.values: dict[str, str] = dict(values or {})

    def add(self, name: str, value: str) -> None:
        self.values[name] = value

    def __iter__(self):
        return iter(self.values.values())

    def __bool__(self) -> bool:
        return any(self.values.values())

    def redact(self, text: str) -> str:
        return redact(text, self)


def resolve(text: str, environ: Mapping[str, str], field: str, secrets: Secrets | None = None) -> str:
    """``text`` with each ``${NAME}`` replaced by ``environ[NAME]`` (recorded in ``secrets``).

    ConfigError naming ``field`` and ``NAME`` if the variable is unset."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in environ:
            raise ConfigError(field, f"environment variable {name} is not set (referenced as ${{{name}}}); export it before the run")
        found = environ[name]
        if secrets is not None:
            secrets.add(name, found)
        return found

    return REFERENCE.sub(value, text)


def redact(text: str, secrets: Iterable[str] | Secrets) -> str:
    """``text`` with every occurrence of each secret replaced (longest first).

    A ``Secrets`` puts ``${NAME}`` in place of the value; plain strings become
    ``[redacted]``. Empty values are skipped (they cannot leak)."""
    if isinstance(secrets, Secrets):
        pairs = [(value, f"${{{name}}}") for name, value in secrets.values.items() if value]
    else:
        pairs = [(value, "[redacted]") for value in secrets if value]
    for value, shown in sorted(pairs, key=lambda pair: -len(pair[0])):
        text = text.replace(value, shown)
    return text
