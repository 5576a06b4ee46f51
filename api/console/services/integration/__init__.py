"""API Integration in the console: ``/services/api-integration`` and its home card."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
from fastapi import APIRouter

from api.console.registry import HomeCard, ServicePages, Tab
from api.console.services.integration import mappings, pages
from api.console.services.integration.pages import BASE
from sinks.dead_letters.queries import waiting as dead_letters_waiting
from sinks.integration.run_queries import flow_summary
from topics.registry import INTEGRATION_DELIVERY

router = APIRouter()
router.include_router(pages.router)
router.include_router(mappings.router)


def home_card(engine: sqlalchemy.Engine) -> HomeCard:
    summary = flow_summary(engine)
    hour = [flow["last_hour"] for flow in summary["flows"]]
    succeeded = sum(w["succeeded"] for w in hour)
    finished = succeeded + sum(w["failed"] + w["dead"] for w in hour)
    dead = dead_letters_waiting(engine, INTEGRATION_DELIVERY)
    rate = f"{100 * succeeded / finished:.0f}%" if finished else "—"
    if dead:
        status = "bad"
    elif finished and succeeded < finished:
        status = "warn"
    else:
        status = "ok" if summary["active_flows"] else "idle"
    return HomeCard(
        title="API Integration",
        href=BASE,
        status=status,
        headline="webhooks, polled APIs and topics → mapped calls to their targets",
        figures=(
            ("active flows", str(summary["active_flows"]), f"{BASE}/flows"),
            ("success, last hour", rate, f"{BASE}/runs"),
            ("runs, last hour", str(sum(w["runs"] for w in hour)), f"{BASE}/runs"),
            ("dead letters", str(dead), f"/dead-letters?pipeline={INTEGRATION_DELIVERY}"),
        ),
    )


PAGES = ServicePages(
    service="integration",
    slug="api-integration",
    title="API Integration",
    router=router,
    templates=Path(__file__).resolve().parent / "templates",
    tabs=(
        Tab("Dashboard", BASE),
        Tab("Flows", f"{BASE}/flows"),
        Tab("Mappings", f"{BASE}/mappings"),
        Tab("Runs", f"{BASE}/runs"),
        Tab("Connections", f"{BASE}/connections"),
    ),
    pipelines=(INTEGRATION_DELIVERY,),
    home_card=home_card,
)
