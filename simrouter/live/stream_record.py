"""What a client saw of each streamed answer: send, token arrivals, tokens (``StreamRecord``).

The record ``simrouter calibrate --fit step-time`` reads (``simrouter.live.step_fit``),
one entry per request that got a first token (successes and streams that failed
later alike: each held a sequence of the server while it streamed), in the
order of the run's columns:

* ``sent``: the actual send (s, the run's clock; a simulated exchange's first send);
* ``first_token``: arrival of the first content chunk (s, same clock);
* ``itl``: the gaps (s) between consecutive content chunks, flat, request by
  request; ``itl_start[i]`` .. ``itl_start[i + 1]`` are request ``i``'s (CSR);
  so its chunks arrived at ``first_token[i] + cumsum([0, gaps...])``;
* ``prompt`` / ``output``: tokens (``prompt`` -1 when the server reported none);
* ``succeeded``, ``measured``: the request's outcome and whether it was sent
  after the warm-up.

Two builders give the same record: ``from_live(result)`` from a ``LiveResult``
of an ``openai-chat`` / ``openai-completions`` streaming run (the generator's
``AnswerColumns``: only what a client sees, so it works against any endpoint),
and ``from_simulation(result)`` from a simulated run of ``backend.model =
"llm"``, where a request's chunks arrive at the ends of the engine steps from
the one emitting its first token on (a request that was preempted and
recomputed skipped steps: its gaps are left out, the rest of its entry kept).

On disk (``write`` / ``read``): one JSON document ``{"format":
"simrouter-streams/1", "config": the run's scenario, "target", "requests":
{column: list}}`` with ``itl`` as one list of gaps per request. ``simrouter
live --streams PATH`` writes it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..outcomes import SUCCESS

FORMAT = "simrouter-streams/1"
COLUMNS = ("sent", "first_token", "prompt", "output", "succeeded", "measured")


@dataclass(eq=False)
class StreamRecord:
    """Per streamed request (module docstring); ``config``: the run's scenario as a dict."""

    sent: np.ndarray
    first_token: np.ndarray
    itl: np.ndarray
    itl_start: np.ndarray  # len(sent) + 1 offsets into itl
    prompt: np.ndarray
    output: np.ndarray
    succeeded: np.ndarray
    measured: np.ndarray
    config: dict | None = None
    target: str = ""

    def __post_init__(self) -> None:
        n = self.sent.size
        if self.itl_start.size != n + 1 or any(getattr(self, c).size != n for c in COLUMNS):
            raise ConfigError("streams", f"columns of unequal length ({n} requests, {self.itl_start.size - 1} ITL lists)")

    def __len__(self) -> int:
        return int(self.sent.size)

    @property
    def chunks(self) -> np.ndarray:
        """Content chunks per request (1 + its gaps)."""
        return np.diff(self.itl_start) + 1

    def token_times(self) -> tuple[np.ndarray, np.ndarray]:
        """(arrival time of every content chunk, the request it belongs to), request by request."""
        n = len(self)
        chunks = self.chunks
        owner = np.repeat(np.arange(n), chunks)
        steps = np.zeros(int(chunks.sum()))
        firsts = np.concatenate([[0], np.cumsum(chunks)[:-1]]).astype(np.int64)
        later = np.ones(steps.size, dtype=bool)
        later[firsts] = False
        steps[later] = self.itl
        cumulative = np.cumsum(steps)
        return self.first_token[owner] + cumulative - cumulative[firsts][owner], owner

    def last_token(self) -> np.ndarray:
        """Arrival of each request's last content chunk."""
        total = np.add.reduceat(np.concatenate([self.itl, [0.0]]), self.itl_start[:-1]) if self.itl.size else np.zeros(len(self))
        empty = np.diff(self.itl_start) == 0
        return self.first_token + np.where(empty, 0.0, total)

    def to_dict(self) -> dict:
        gaps = [self.itl[a:b].tolist() for a, b in zip(self.itl_start[:-1], self.itl_start[1:])]
        columns = {c: getattr(self, c).tolist() for c in COLUMNS}
        return {"format": FORMAT, "config": self.config, "target": self.target, "requests": {**columns, "itl": gaps}}

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
        return path


def from_columns(sent, first_token, gaps: list, prompt, output, succeeded, measured, config=None, target="") -> StreamRecord:
    """A record from per-request columns and ``gaps`` (one sequence of gaps per request)."""
    lengths = np.fromiter((len(g) for g in gaps), dtype=np.int64, count=len(gaps))
    flat = np.concatenate([np.asarray(g, dtype=float) for g in gaps]) if lengths.sum() else np.empty(0)
    return StreamRecord(
        sent=np.asarray(sent, dtype=float), first_token=np.asarray(first_token, dtype=float), itl=flat,
        itl_start=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        prompt=np.asarray(prompt, dtype=np.int64), output=np.asarray(output, dtype=np.int64),
        succeeded=np.asarray(succeeded, dtype=bool), measured=np.asarray(measured, dtype=bool), config=config, target=target,
    )


def check_streaming(scenario) -> None:
    """ConfigError naming ``--streams`` unless the scenario's answers stream (an openai
    protocol with ``request.stream`` not false): checked before a run sends anything."""
    request = scenario.request
    if not request.effective_stream:
        got = f"request.protocol = {request.protocol!r}" + (", request.stream = false" if request.stream is False else "")
        raise ConfigError("--streams", f"records streamed answers: run an openai-chat / openai-completions scenario with request.stream = true (got {got})")


def from_live(result) -> StreamRecord:
    """The record of a live streaming run (``LiveResult``): its answers with a first token."""
    answers = result.answers
    if not answers or not result.stream or answers["row"].size == 0:
        raise ConfigError("--streams", "the run decoded no streamed answer: run an openai-chat / openai-completions scenario with request.stream = true")
    rows, first = answers["row"], answers["first_token"]
    keep = np.isfinite(first)
    rows, first = rows[keep], first[keep]
    prompt, output = answers["prompt"][keep], answers["output"][keep]
    order = np.argsort(answers["itl_row"], kind="stable")
    itl_row, itl = answers["itl_row"][order], answers["itl"][order]
    bounds = np.searchsorted(itl_row, rows, side="left"), np.searchsorted(itl_row, rows, side="right")
    gaps = [itl[a:b] for a, b in zip(*bounds)]
    return from_columns(
        result.actual[rows], first, gaps, prompt, output, result.kind[rows] == SUCCESS, result.measured[rows],
        config=result.to_dict().get("config"), target=result.target,
    )


def from_simulation(result) -> StreamRecord:
    """The record a client of the simulated LLM server would have made (module docstring)."""
    llm = result.llm
    if llm is None:
        raise ConfigError("backend.model", "expected a run of backend.model = \"llm\" (its token stream is what the record holds)")
    ends = llm.steps["end"]
    ok = np.flatnonzero(np.isfinite(llm.first_token))
    first = llm.first_token[ok]
    step = np.searchsorted(ends, first)  # the step emitting the first token ends exactly then
    outputs = llm.output_tokens[ok]
    gaps = []
    for k, n, done in zip(step, outputs, result.done[ok]):
        times = ends[k : k + n]
        # A preempted request skipped steps: its last step would not be its end.
        gaps.append(np.diff(times) if times.size == n and abs(times[-1] - done) <= 1e-9 * max(1.0, done) else [])
    return from_columns(
        result.sent[ok], first, gaps, llm.prompt_tokens[ok], outputs, result.kind[ok] == SUCCESS, result.measured[ok],
        config=result.scenario.to_dict(),
    )


def read(path: Path) -> StreamRecord:
    """The record of a file written by ``write`` (or a JSON with such a document under ``"streams"``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError("--from", f"cannot read {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError):
        raise ConfigError("--from", f"{path} is not JSON: expected a stream record (simrouter live --streams PATH)") from None
    if isinstance(data, dict) and isinstance(data.get("streams"), dict):
        data = data["streams"]
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError("--from", f"{path} is not a stream record (format {FORMAT!r}): write one with simrouter live SCENARIO --target URL --streams PATH")
    requests = data.get("requests") or {}
    try:
        return from_columns(*(requests[c] for c in ("sent", "first_token", "itl", "prompt", "output", "succeeded", "measured")), config=data.get("config"), target=data.get("target") or "")
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError("--from", f"{path}: a stream record needs the columns sent, first_token, itl, prompt, output, succeeded, measured ({exc})") from None
