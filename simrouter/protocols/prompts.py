"""The prompt dataset of ``[request] prompts``: a JSONL file, cycled.

Each non-blank line is one JSON value: a string (a prompt, sent as the chat
message's content, the completion's ``prompt``, the template's ``{prompt}``) or
an object (a full request body, sent as given; see ``simrouter.protocols.encode``
for the keys the openai protocols add when it lacks them). Request number
``seq`` uses line ``seq % len(prompts)``. Blank lines are skipped; anything else
is a ``ConfigError`` naming the field, the file and the line.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError

DEFAULT_PROMPT = "Hello! Please write a short story about a router."  # no dataset given
MAX_LINE_ERRORS_SHOWN = 1


def load_prompts(path: str | Path, field: str = "request.prompts") -> list[str | dict]:
    """The prompts (strings) and bodies (dicts) of a JSONL file; at least one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(field, f"cannot read {path}: {exc.strerror}") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(field, f"cannot read {str(path)!r}: not a usable path") from None
    except UnicodeDecodeError:
        raise ConfigError(field, f"{path} is not UTF-8 text (expected JSON lines)") from None
    items: list[str | dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ConfigError(field, f"{path} line {number} is not JSON ({exc.msg}); expected a prompt string or a body object") from None
        if not isinstance(item, (str, dict)):
            raise ConfigError(field, f"{path} line {number}: expected a JSON string (a prompt) or object (a full body), got {type(item).__name__}")
        items.append(item)
    if not items:
        raise ConfigError(field, f"{path} has no prompts (one JSON string or object per line)")
    return items
