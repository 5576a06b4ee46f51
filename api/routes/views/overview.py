"""``/api/v1/overview``: what waits for people across services (the console's home page).

Dead letters by pipeline with the age of the oldest, what each pipeline's records ended as in
the last hour, and how many payments wait for an approver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder

from api.deps import EngineDep
from sinks.dead_letters.queries import dead_letters_by_pipeline
from sinks.payments import queries as settlement_queries
from sinks.views.overview import recent_outcomes

router = APIRouter(prefix="/overview", tags=["overview"])


def overview(engine: Any) -> dict[str, Any]:
    """The overview's rows (the console renders the same)."""
    waiting = settlement_queries.SettlementFilter(state="pending_approval")
    approvals, approvals_total = settlement_queries.list_settlements(engine, waiting, limit=10)
    return {
        "generated_at": datetime.now(UTC),
        "dead_letters": dead_letters_by_pipeline(engine),
        "outcomes_last_hour": recent_outcomes(engine),
        "approvals_waiting": approvals_total,
        "approvals": approvals,
    }


@router.get("", summary="Dead letters by pipeline, last hour's outcomes, approvals waiting")
def get_overview(engine: EngineDep) -> dict[str, Any]:
    result: dict[str, Any] = jsonable_encoder(overview(engine))
    return result
