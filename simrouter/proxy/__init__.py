"""``simrouter proxy``: a fault-injecting reverse proxy in front of one backend.

``simrouter.proxy.server`` (``FaultProxy``: pass-through, faults, admin API),
``simrouter.proxy.record`` (its per-request record, served at ``GET /metrics``),
``simrouter.proxy.upstream`` (an HTTP backend for ``simrouter serve --upstream``, so
the reference router's breaker can sit in front of the proxy). docs/proxy.md.
"""
