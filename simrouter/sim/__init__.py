"""The SimPy engine: the router model (``model``), its backend (``backend``) and
``simulate`` (``run``)."""

from .run import simulate

__all__ = ["simulate"]
