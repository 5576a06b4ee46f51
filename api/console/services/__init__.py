"""The services that have pages in the console, in navigation order: one line each.

A new service adds its package here (``api/console/services/<slug>/`` exporting ``PAGES``,
a :class:`~api.console.registry.ServicePages`).
"""

from __future__ import annotations

from api.console.registry import ServicePages
from api.console.services.api_integration import PAGES as API_INTEGRATION
from api.console.services.payment_gateway import PAGES as PAYMENT_GATEWAY

SERVICES: tuple[ServicePages, ...] = (
    API_INTEGRATION,
    PAYMENT_GATEWAY,
)
