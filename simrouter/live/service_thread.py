"""The reference service in a background thread, for tests and notebooks.

``router_service(scenario)`` picks the service a scenario needs: the
gateway (``simrouter.live.gateway_service.GatewayService``) when it has
``[[deployments]]``, else the single-backend ``RouterService``
(``simrouter.live.service``). ``ServiceThread`` runs it on its own event loop
in a background thread; ``serving`` does that on a free loopback port.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..config import Scenario
from .app_thread import AppThread
from .gateway_service import GatewayService
from .header_timeout import DEFAULT_HEADER_TIMEOUT_S
from .service import RouterService, start_service


def router_service(scenario: Scenario, seed: int = 1, admin_token: str | None = None, **options) -> RouterService:
    """The service for ``scenario``: ``GatewayService`` (``simrouter.live.gateway_service``)
    when it has ``[[deployments]]``, else ``RouterService``; ``options`` are their own."""
    if scenario.deployments:
        return GatewayService(scenario, seed, admin_token, **options)
    return RouterService(scenario, seed, admin_token, **options)


class ServiceThread(AppThread):
    """The service on its own event loop in a background thread (tests, notebooks).

    ``with ServiceThread(scenario) as svc: svc.url ...``; the loop and server stop on exit.
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int = 1,
        admin_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT_S,
        backend_factory=None,
    ):
        self.service = router_service(scenario, seed, admin_token, header_timeout=header_timeout, backend_factory=backend_factory)
        super().__init__(lambda h, p: start_service(self.service, h, p, shutdown_timeout=0.1), host, port, "simrouter-serve")

    @property
    def admin_token(self) -> str:
        return self.service.admin_token


@contextmanager
def serving(scenario: Scenario, seed: int = 1, admin_token: str | None = None, header_timeout: float = DEFAULT_HEADER_TIMEOUT_S):
    """``with serving(scenario) as svc:`` a ServiceThread on a free loopback port."""
    with ServiceThread(scenario, seed, admin_token, header_timeout=header_timeout) as svc:
        yield svc
