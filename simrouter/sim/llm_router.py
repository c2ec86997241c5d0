"""The policy path with requests that carry tokens (``backend.model = "llm"``).

``LLMRouter`` is ``client.PolicyRouter`` (limiter, validation, breaker,
timeout, retries, hedges; behind ``[[deployments]]`` its ``GatewayTarget``:
routing, each deployment's limiter and breaker, fallbacks; unchanged
semantics) whose logical requests carry an ``LLMRequest``, through
PolicyRouter's public hooks only:

* ``call`` takes the next request from the token source and gives it to the
  exchange (``call(..., request=)``): every copy (retries, hedges, fallbacks)
  carries the same one;
* the target passes it to the backend's ``submit`` (``LLMBackend``), and a
  tokens-per-minute limiter (the router's or a deployment's) reads its cost
  from ``admitting`` while a chain admits a copy (``admitting_tokens``);
* ``finished`` records, in recording order (as the recorder's columns), the
  request's prompt and output tokens and its first-token time (NaN unless it
  succeeded): TTFT is measured from the exchange's first send to the first
  token of the copy that answered (``Exchange.served_by``), as a client sees it.

``columns()`` adds ``llm`` (``llm_summary.LLMColumns``): behind a gateway the
step logs of every deployment's backend are concatenated (ITL pools the gaps
of all of them; batch occupancy is summed over the deployments, ``max_running``
is the largest one server held) and preemptions summed.
"""

from __future__ import annotations

from array import array

import numpy as np

from ..outcomes import SUCCESS
from .client import PolicyRouter


class LLMRouter(PolicyRouter):
    """``PolicyRouter`` whose exchanges carry tokens (see the module docstring);
    ``backends``: the LLM backends its target sends to (one, or one per deployment)."""

    def __init__(self, core, retry, hedge, budget, jitter, source, backends, target=None):
        super().__init__(core, retry, hedge, budget, jitter, target=target)
        self._source = source
        self._backends = list(backends)
        self._first_token = array("d")
        self._prompt = array("l")
        self._output = array("l")

    def admitting_tokens(self) -> int:
        """What a tokens-per-minute limit counts for the copy being admitted: prompt + max_tokens."""
        return self.admitting.admission_tokens

    def call(self, key: int, now: float, wait: bool = False, request=None):
        return super().call(key, now, wait, self._source.next() if request is None else request)

    def finished(self, exchange, now: float, kind: int) -> None:
        job = exchange.served_by if kind == SUCCESS else None
        self._first_token.append(job.first_token if job is not None else float("nan"))
        self._prompt.append(exchange.request.prompt)
        self._output.append(exchange.request.output if job is not None else 0)

    def columns(self) -> dict:
        from ..llm_summary import LLMColumns

        columns = super().columns()
        logs = [backend.steps.columns() for backend in self._backends]
        steps = logs[0] if len(logs) == 1 else {name: np.concatenate([log[name] for log in logs]) for name in logs[0]}
        columns["llm"] = LLMColumns(
            first_token=np.frombuffer(self._first_token, dtype=np.float64).copy(),
            prompt_tokens=np.frombuffer(self._prompt, dtype=np.int64).copy(),
            output_tokens=np.frombuffer(self._output, dtype=np.int64).copy(),
            steps=steps,
            preemptions=sum(backend.preemptions for backend in self._backends),
        )
        return columns
