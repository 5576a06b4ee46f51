"""CRM Automation in the console: ``/services/crm-automation`` and its home card."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy

from api.console.registry import HomeCard, ServicePages, Tab
from api.console.services.crm.pages import BASE, router
from sinks.crm import queries
from sinks.dead_letters.queries import waiting as dead_letters_waiting
from topics.registry import CRM_SYNC


def home_card(engine: sqlalchemy.Engine) -> HomeCard:
    states = queries.sync_states(engine)
    written = sum(int(s["written"]) for s in states)
    failed = sum(int(s["failed"]) for s in states)
    opened = sum(queries.open_conflicts(engine).values())
    dead = dead_letters_waiting(engine, CRM_SYNC)
    status = "bad" if dead else "warn" if opened or failed else "ok" if states else "idle"
    return HomeCard(
        title="CRM Automation",
        href=BASE,
        status=status,
        headline="Salesforce ⇄ HubSpot, each change once, no echo",
        figures=(
            ("changes written", str(written), BASE),
            ("conflicts open", str(opened), f"{BASE}/conflicts"),
            ("failed", str(failed), f"{BASE}/records?failed=true"),
            ("dead letters", str(dead), "/dead-letters?pipeline=crm-sync"),
        ),
    )


PAGES = ServicePages(
    service="crm",
    slug="crm-automation",
    title="CRM Automation",
    router=router,
    templates=Path(__file__).resolve().parent / "templates",
    tabs=(
        Tab("Sync", BASE),
        Tab("Platforms", f"{BASE}/platforms"),
        Tab("Mappings", f"{BASE}/mappings"),
        Tab("Conflicts", f"{BASE}/conflicts"),
        Tab("Records", f"{BASE}/records"),
    ),
    pipelines=(CRM_SYNC,),
    home_card=home_card,
)
