"""The simulation engines: the router model (``model``), its backends
(``backend``, ``event_backend``), the event-free fast path (``fast``), the SimPy
engine's client policies (``client``) and ``simulate`` (``run``)."""

from .run import simulate

__all__ = ["simulate"]
