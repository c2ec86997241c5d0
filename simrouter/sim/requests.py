"""A request is data: each logical request's prompt and output tokens.

``[workload.tokens]`` gives every logical request (one workload send, whatever
retries or hedges it takes) one ``LLMRequest``: ``prompt`` and ``output``
tokens drawn from their own random streams (``streams.PROMPT_TOKENS``,
``streams.OUTPUT_TOKENS``), the i-th logical request taking the i-th draw of
each, so two configurations run with one seed see the same requests (common
random numbers). Draws are rounded up to a whole number >= 1. With ``[request]
max_tokens`` the output is capped at it and the token limiter counts
``prompt + max_tokens`` (as OpenAI does); without it the client is taken to ask
for exactly what it gets (``max_tokens = output``).

``trace = "requests.jsonl"`` replays a file instead: one ``{"t": s,
"prompt_tokens": n, "output_tokens": m}`` per line, ``t`` the arrival time in
seconds (non-decreasing), read by ``load_trace``.

The record is read by the token limiter (``policies.limiters.tokens``) and the
LLM backend (``sim.llm_backend``); nothing else needs to know tokens exist.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..distributions import VariateStream
from ..errors import ConfigError


class LLMRequest:
    """One logical request's tokens: ``prompt``, ``output`` (>= 1 each) and
    ``max_tokens`` (what the client asks for: the token limiter's count)."""

    __slots__ = ("prompt", "output", "max_tokens")

    def __init__(self, prompt: int, output: int, max_tokens: int | None = None):
        self.prompt = prompt
        self.output = output
        self.max_tokens = output if max_tokens is None else max_tokens

    @property
    def admission_tokens(self) -> int:
        """What a tokens-per-minute limit counts at admission: prompt + max_tokens."""
        return self.prompt + self.max_tokens

    def __repr__(self) -> str:
        return f"LLMRequest(prompt={self.prompt}, output={self.output}, max_tokens={self.max_tokens})"


def _whole(draw):
    """``draw`` rounded up to whole tokens, at least 1."""

    def sample(rng: np.random.Generator, size: int) -> np.ndarray:
        return np.maximum(np.ceil(draw(rng, size)), 1.0).astype(np.int64)

    return sample


class TokenSource:
    """The next logical request's tokens, from the distributions' own streams."""

    __slots__ = ("_prompt", "_output", "_max_tokens")

    def __init__(self, tokens, prompt_rng: np.random.Generator, output_rng: np.random.Generator, max_tokens: int | None = None):
        self._prompt = VariateStream(_whole(tokens.prompt.sample), prompt_rng).next
        self._output = VariateStream(_whole(tokens.output.sample), output_rng).next
        self._max_tokens = max_tokens

    def next(self) -> LLMRequest:
        output = self._output()
        if self._max_tokens is not None and output > self._max_tokens:
            output = self._max_tokens
        return LLMRequest(self._prompt(), output, self._max_tokens)


class TraceSource:
    """Requests in the order of a trace (``load_trace``), then an error if asked for more."""

    __slots__ = ("_next",)

    def __init__(self, requests: list[LLMRequest]):
        self._next = iter(requests).__next__

    def next(self) -> LLMRequest:
        return self._next()


def load_trace(path: str | Path, max_tokens: int | None = None) -> tuple[list[float], list[LLMRequest]]:
    """(arrival times, requests) of a JSONL trace; ConfigError naming the line if malformed."""
    times: list[float] = []
    requests: list[LLMRequest] = []
    field = "workload.tokens.trace"
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(field, f"cannot read {path}: {exc.strerror}") from None
    last = 0.0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            t, prompt, output = row["t"], row["prompt_tokens"], row["output_tokens"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(field, f'line {number} of {path}: expected {{"t": s, "prompt_tokens": n, "output_tokens": m}}') from None
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (t, prompt, output))
        if not ok or t < last or prompt < 1 or output < 1:
            raise ConfigError(field, f"line {number} of {path}: t must be a non-decreasing number of seconds >= 0, tokens whole numbers >= 1")
        last = float(t)
        times.append(last)
        output = int(math.ceil(output))
        if max_tokens is not None:
            output = min(output, max_tokens)
        requests.append(LLMRequest(int(math.ceil(prompt)), output, max_tokens))
    if not times:
        raise ConfigError(field, f"{path} holds no request")
    return times, requests
