"""The policy path with requests that carry tokens (``backend.model = "llm"``).

``LLMRouter`` is ``client.PolicyRouter`` (limiter, validation, breaker,
timeout, retries, hedges: unchanged semantics) whose logical requests carry an
``LLMRequest``: ``call`` takes the next one from the token source, every copy
of the exchange (retries, hedges) carries the same one, and the limiter and
the backend read it through ``current()`` while a copy passes them. When an
exchange is answered it records, in recording order (as the recorder's
columns), the request's prompt and output tokens and its first-token time
(NaN unless it succeeded): TTFT is measured from the exchange's first send to
the first token of the copy that answered, as a client sees it.
"""

from __future__ import annotations

from array import array

import numpy as np

from ..outcomes import SUCCESS
from .client import PolicyRouter


class LLMRouter(PolicyRouter):
    """``PolicyRouter`` whose exchanges carry tokens (see the module docstring)."""

    def __init__(self, core, retry, hedge, budget, jitter, source):
        super().__init__(core, retry, hedge, budget, jitter)
        self._source = source
        self._request = None  # the request a copy is passing limiter and backend with
        self._requests: dict = {}  # exchange -> LLMRequest
        self._winner = None  # the copy whose success answers the exchange being finished
        self._first_token = array("d")
        self._prompt = array("l")
        self._output = array("l")

    def current(self):
        """The request now passing the limiter or entering the backend."""
        return self._request

    def call(self, key: int, now: float, wait: bool = False):
        self._request = self._source.next()
        return super().call(key, now, wait)

    def _send(self, exchange, now: float) -> None:
        request = self._requests.get(exchange)
        if request is None:  # the exchange's first copy, sent from ``call``
            request = self._requests[exchange] = self._request
        self._request = request
        super()._send(exchange, now)

    def _forward(self, copy, now: float) -> None:
        self._request = self._requests[copy.exchange]
        super()._forward(copy, now)

    def _resolve(self, copy, now: float, kind: int) -> None:
        if kind == SUCCESS and not copy.exchange.finished:
            self._winner = copy
        super()._resolve(copy, now, kind)

    def _finish(self, exchange, now: float, kind: int) -> None:
        winner, self._winner = self._winner, None
        super()._finish(exchange, now, kind)
        request = self._requests[exchange]
        job = winner.job if winner is not None and kind == SUCCESS else None
        self._first_token.append(job.first_token if job is not None else float("nan"))
        self._prompt.append(request.prompt)
        self._output.append(request.output if job is not None else 0)
        if not exchange.outstanding:  # no copy left to pass the limiter or backend
            del self._requests[exchange]

    def columns(self) -> dict:
        from ..llm_summary import LLMColumns

        columns = super().columns()
        steps = self.backend.steps.columns()
        columns["llm"] = LLMColumns(
            first_token=np.frombuffer(self._first_token, dtype=np.float64).copy(),
            prompt_tokens=np.frombuffer(self._prompt, dtype=np.int64).copy(),
            output_tokens=np.frombuffer(self._output, dtype=np.int64).copy(),
            steps=steps,
            preemptions=self.backend.preemptions,
        )
        return columns
