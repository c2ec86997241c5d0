"""What a live run read from the answers beyond their kind: token timing, token counts, limits.

``AnswerRecord`` is one decoded answer of an ``openai-chat`` / ``openai-completions``
run (``LoadGenerator._exchange_*`` builds it from ``simrouter.protocols``):

* ``first_token``: arrival of the first content chunk on the generator's clock
  (seconds since the run started; NaN when none came). A whole (non-streamed)
  answer's content arrives with its last byte, so its TTFT is its latency;
* ``itl``: the gaps (s) between consecutive content chunks of a stream;
* ``output`` / ``prompt``: tokens (``usage`` when the server reported it, else
  the content chunks counted, ``usage`` True/False; ``prompt`` -1 when unknown);
* ``tpot``: ``(e2e - ttft) / (output - 1)`` in seconds (NaN below two tokens);
* ``retry_after``: the answer's ``Retry-After`` / ``retry-after-ms`` in seconds
  (NaN: none), ``ratelimit``: its ``x-ratelimit-*`` headers, ``error_code``: the
  JSON error body's ``error.code`` (else ``error.type``), None for none.

``AnswerColumns`` keeps them sparse, by row (the request's index in the run's
columns): a run of the ``simrouter`` protocol records nothing here and pays
nothing. ``arrays()`` gives numpy columns; ``itl`` is one flat array of every
gap with the row each belongs to.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

NAN = math.nan


@dataclass(slots=True)
class AnswerRecord:
    first_token: float = NAN
    itl: list[float] = field(default_factory=list)
    output: int = -1
    prompt: int = -1
    usage: bool = False
    tpot: float = NAN
    retry_after: float = NAN
    ratelimit: dict[str, str] | None = None
    error_code: str | None = None


class AnswerColumns:
    """Sparse per-request columns of ``AnswerRecord`` (module docstring)."""

    def __init__(self) -> None:
        self.row = array("q")
        self.first_token = array("d")
        self.output = array("q")
        self.prompt = array("q")
        self.usage = array("b")
        self.tpot = array("d")
        self.retry_after = array("d")
        self.itl = array("d")
        self.itl_row = array("q")
        self.error_codes: Counter[str] = Counter()
        self.last_ratelimit: dict[str, str] = {}
        self.ratelimited_answers = 0  # answers that carried x-ratelimit-* headers

    def add(self, row: int, record: AnswerRecord) -> None:
        self.row.append(row)
        self.first_token.append(record.first_token)
        self.output.append(record.output)
        self.prompt.append(record.prompt)
        self.usage.append(1 if record.usage else 0)
        self.tpot.append(record.tpot)
        self.retry_after.append(record.retry_after)
        if record.itl:
            self.itl.extend(record.itl)
            self.itl_row.extend([row] * len(record.itl))
        if record.error_code is not None:
            self.error_codes[record.error_code] += 1
        if record.ratelimit:
            self.ratelimited_answers += 1
            self.last_ratelimit = dict(record.ratelimit)

    def __len__(self) -> int:
        return len(self.row)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every column as a numpy array (copies)."""
        names = {"row": np.int64, "first_token": np.float64, "output": np.int64, "prompt": np.int64, "usage": np.int8, "tpot": np.float64,
                 "retry_after": np.float64, "itl": np.float64, "itl_row": np.int64}
        return {name: np.frombuffer(getattr(self, name), dtype=dtype).copy() if len(getattr(self, name)) else np.empty(0, dtype) for name, dtype in names.items()}
