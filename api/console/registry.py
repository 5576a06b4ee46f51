"""What a service brings to the console: its pages, its card on the home page, its nav entry.

A service's pages are one package under ``api/console/services/`` that exports a
:class:`ServicePages`; ``api/console/services/__init__.py`` lists them (one line each). The
console mounts each router, puts the service in the navigation and asks it for its home card.
The package is named by the service as in every other layer (``payments``, ``integration``;
``crm``, ``aggregation``, ``notifications`` to come), and so is its templates folder
(``api/console/services/<service>/templates/<service>/...``); the URL keeps the product's
name (``/services/payment-gateway``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy
from fastapi import APIRouter


@dataclass(frozen=True)
class Tab:
    title: str
    path: str  # absolute, e.g. /services/payment-gateway/settlements


@dataclass(frozen=True)
class HomeCard:
    """One service on the home page: its health line and a few figures, each maybe a link."""

    title: str
    href: str
    status: str  # ok | warn | bad | idle
    headline: str
    figures: Sequence[tuple[str, str, str | None]] = ()  # (label, value, href)


@dataclass(frozen=True)
class ServicePages:
    service: str  # the service's name in every layer: its package and its templates folder
    slug: str  # the URL segment: /services/<slug>
    title: str
    router: APIRouter
    templates: Path
    tabs: Sequence[Tab] = ()
    # The pipelines whose dead letters and outcomes are this service's.
    pipelines: Sequence[str] = ()
    home_card: Callable[[sqlalchemy.Engine], HomeCard] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def href(self) -> str:
        return f"/services/{self.slug}"
