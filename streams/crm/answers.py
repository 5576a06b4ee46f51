"""What a batch answers, besides its writes: each record's outcome, the full syncs' progress,
and the ``sync_conflict`` trigger of a newly held field."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from schemas.models import SYNC_CONFLICT, NotificationTrigger
from sinks.crm.links import NewConflict
from streams.crm.events import decode_change
from streams.crm.model import SIDES, CompiledCrmMapping
from streams.crm.writes import Pair
from streams.road import Outcome, RoadRecord
from synapseops.errors import SynapseOpsError
from synapseops.ids import trace_id_of
from topics.registry import CRM_SYNC


def conflict_trigger(
    mapping: CompiledCrmMapping, opened: NewConflict, traceparent: str | None
) -> NotificationTrigger:
    field, conflict = opened.conflict.field, opened.conflict
    return NotificationTrigger(
        kind=SYNC_CONFLICT,
        pipeline=CRM_SYNC,
        subject_id=f"crm-conflict:{opened.id}",
        summary=f"CRM mapping {mapping.id}: {field} differs on both sides and waits for a person",
        details={
            "mapping_id": str(mapping.id),
            "link_id": str(opened.link_id),
            "field": field,
            "salesforce_value": conflict.salesforce or "",
            "hubspot_value": conflict.hubspot or "",
            "resolve": f"/api/v1/crm/conflicts/{opened.id}/resolve",
        },
        occurred_at=datetime.now(UTC),
        trace_id=trace_id_of(traceparent) or "0" * 32,
        severity="warning",
        dedup_key=f"sync_conflict:{opened.id}",
    )


def outcome_of(pair: Pair) -> Outcome:
    plan = pair.plan
    assert plan is not None
    if plan.skip is not None:
        return Outcome("skipped", plan.skip)
    done: list[str] = []
    for side in SIDES:
        if side in plan.deletes:
            done.append(f"deleted on {side}")
        elif side in plan.creates:
            done.append(f"created on {side}")
        elif side in plan.writes:
            done.append(f"{side}: {', '.join(sorted(plan.writes[side]))}")
    if plan.conflicts:
        done.append(f"held for a person: {', '.join(c.field for c in plan.conflicts)}")
    if plan.unlink and not plan.deletes:
        done.append("link ended")
    return Outcome("done", "; ".join(done) or "link updated")


def full_syncs_of(pairs: list[Pair], records: Sequence[RoadRecord]) -> dict[int, dict[str, int]]:
    """Full sync id → outcome → how many of its events this batch answered."""
    handled: dict[int, dict[str, int]] = {}
    for pair in pairs:
        if pair.failure is not None or pair.plan is None:
            outcome = "failed"
        else:
            outcome = "skipped" if pair.plan.skip is not None else "done"
        for index in pair.indexes:
            full_sync = _full_sync_of(records[index])
            if full_sync is not None:
                counts = handled.setdefault(full_sync, {})
                counts[outcome] = counts.get(outcome, 0) + 1
    return handled


def _full_sync_of(record: RoadRecord) -> int | None:
    try:
        return decode_change(record.value).full_sync
    except SynapseOpsError:
        return None
