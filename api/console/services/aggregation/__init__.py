"""Data Aggregation in the console: ``/services/data-aggregation`` and its home card."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from api.console.registry import HomeCard, ServicePages, Tab
from api.console.services.aggregation.pages import BASE, router
from sinks.aggregation.health import source_health
from sinks.dead_letters.queries import waiting as dead_letters_waiting
from topics.registry import AGGREGATION_TRANSFORM


def home_card(engine: sqlalchemy.Engine) -> HomeCard:
    health = source_health(engine, 60)
    events = sum(int(row["events"]) for row in health)
    flagged = sum(1 for row in health if row["flagged"])
    dead = dead_letters_waiting(engine, AGGREGATION_TRANSFORM)
    status = "bad" if dead else "warn" if flagged else "ok" if events else "idle"
    return HomeCard(
        title="Data Aggregation",
        href=BASE,
        status=status,
        headline="many sources → one canonical Avro event → the warehouse, once",
        figures=(
            ("events, last hour", str(events), BASE),
            ("sources", str(len(health)), BASE),
            ("high latency", str(flagged), BASE),
            ("dead letters", str(dead), f"/dead-letters?pipeline={AGGREGATION_TRANSFORM}"),
        ),
    )


PAGES = ServicePages(
    service="aggregation",
    slug="data-aggregation",
    title="Data Aggregation",
    router=router,
    templates=Path(__file__).resolve().parent / "templates",
    tabs=(Tab("Run health", BASE), Tab("Canonical schema", f"{BASE}/schema")),
    pipelines=(AGGREGATION_TRANSFORM,),
    home_card=home_card,
)
