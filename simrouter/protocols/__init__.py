"""OpenAI-compatible (and any HTTP) requests and answers, as codecs for ``simrouter live``.

One concept per module; none of them imports the configuration or the live engine,
so the scenario schema can use ``check`` and the generator can use the rest:

=================  ==========================================================================
``env``            ``${VAR}`` references: syntax, resolution at run time, ``redact(text, secrets)``
``check``          the ``[request]`` section's cross-field checks (``check_request``)
``prompts``        the JSONL prompt dataset: one prompt string or full body object per line
``encode``         request ``seq`` of user ``user`` -> (method, path, headers, body bytes)
``sse``            incremental Server-Sent Events decoder: bytes in, events out
``stream``         a streamed (or whole) OpenAI answer -> TTFT, inter-token gaps, tokens, finish
``answers``        status + headers + JSON error body -> outcome kind, Retry-After, x-ratelimit-*
=================  ==========================================================================

The reference service's side is ``simrouter.live.openai_service``.
"""

from .env import redact

__all__ = ["redact"]
