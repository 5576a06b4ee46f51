"""The services that have pages in the console, in navigation order: one line each.

A new service adds its package here (``api/console/services/<slug>/`` exporting ``PAGES``,
a :class:`~api.console.registry.ServicePages`).
"""

from __future__ import annotations

from api.console.registry import ServicePages
from api.console.services.aggregation import PAGES as AGGREGATION
from api.console.services.crm import PAGES as CRM
from api.console.services.integration import PAGES as INTEGRATION
from api.console.services.notifications import PAGES as NOTIFICATIONS
from api.console.services.payments import PAGES as PAYMENTS

SERVICES: tuple[ServicePages, ...] = (
    INTEGRATION,
    PAYMENTS,
    CRM,
    AGGREGATION,
    NOTIFICATIONS,
)
