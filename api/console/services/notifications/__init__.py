"""SaaS Notifications in the console: ``/services/notifications`` and its home card (with the
approvals waiting)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

from api.console.registry import HomeCard, ServicePages, Tab
from api.console.services.notifications.pages import BASE, router
from sinks.dead_letters.queries import waiting as dead_letters_waiting
from sinks.notifications.approvals import ApprovalStore
from sinks.notifications.store import RunStore
from topics.registry import NOTIFICATION_DISPATCH


def home_card(engine: sqlalchemy.Engine) -> HomeCard:
    pending, oldest = ApprovalStore(engine).pending_age(datetime.now(UTC))
    runs = RunStore(engine).counts()
    dead = dead_letters_waiting(engine, NOTIFICATION_DISPATCH)
    status = "bad" if dead else "warn" if pending else "ok" if runs else "idle"
    age = f"{int(oldest // 60)} min" if pending else "—"
    return HomeCard(
        title="Notifications",
        href=BASE,
        status=status,
        headline="triggers → Slack, Teams and e-mail, with a person's approval where asked",
        figures=(
            ("approvals waiting", str(pending), f"{BASE}/approvals"),
            ("oldest waiting", age, f"{BASE}/approvals"),
            ("runs waiting", str(runs.get("waiting", 0)), BASE),
            ("dead letters", str(dead), f"/dead-letters?pipeline={NOTIFICATION_DISPATCH}"),
        ),
    )


PAGES = ServicePages(
    service="notifications",
    slug="notifications",
    title="Notifications",
    router=router,
    templates=Path(__file__).resolve().parent / "templates",
    tabs=(
        Tab("Workflows", BASE),
        Tab("Pending Approvals", f"{BASE}/approvals"),
        Tab("Channels", f"{BASE}/channels"),
    ),
    pipelines=(NOTIFICATION_DISPATCH,),
    home_card=home_card,
)
