"""The Payment Gateway in the console: ``/services/payment-gateway`` and its home card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

from api.console.registry import HomeCard, ServicePages, Tab
from api.console.services.payments.pages import BASE, router
from sinks.dead_letters.queries import waiting as dead_letters_waiting
from sinks.payments import queries
from topics.registry import PAYMENT_SETTLEMENT


def home_card(engine: sqlalchemy.Engine) -> HomeCard:
    today = datetime.now(UTC).date()
    rows = queries.daily_volumes(engine, since=today, until=today)
    by_state: dict[str, int] = {}
    for row in rows:
        by_state[row["state"]] = by_state.get(row["state"], 0) + row["count"]
    dead = dead_letters_waiting(engine, PAYMENT_SETTLEMENT)
    waiting = by_state.get("pending_approval", 0)
    status = "bad" if dead else "warn" if waiting or by_state.get("failed") else "ok"
    if not rows and not dead:
        status = "idle"
    return HomeCard(
        title="Payment Gateway",
        href=BASE,
        status=status,
        headline="Stripe events → exactly one finance ledger entry each",
        figures=(
            ("settled today", str(by_state.get("settled", 0)), f"{BASE}/settlements?state=settled"),
            ("waiting approval", str(waiting), f"{BASE}/settlements?state=pending_approval"),
            ("failed today", str(by_state.get("failed", 0)), f"{BASE}/failed"),
            ("dead letters", str(dead), f"{BASE}/failed"),
        ),
    )


PAGES = ServicePages(
    service="payments",
    slug="payment-gateway",
    title="Payment Gateway",
    router=router,
    templates=Path(__file__).resolve().parent / "templates",
    tabs=(
        Tab("Dashboard", BASE),
        Tab("Settlements", f"{BASE}/settlements"),
        Tab("Failed & dead letters", f"{BASE}/failed"),
        Tab("Reconciliation", f"{BASE}/reconciliation"),
    ),
    pipelines=(PAYMENT_SETTLEMENT,),
    home_card=home_card,
)
