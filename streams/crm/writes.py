"""The writes of one batch's plans, a platform's batch calls at a time.

Every pair's plan says what to create, update and delete on each side. They are gathered per
side and kind into the platform's batch calls (HubSpot ≤ 100 inputs, Salesforce collections
≤ 200 records: the clients cut them), the two sides' calls concurrently. A record the platform
refused fails its own pair only; a call that failed as a whole (429 past the inline wait,
5xx, a timeout) fails every pair that was in it. A create answers the new record's id, which
the pair's link keeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sinks.crm.client import CrmClient
from sinks.crm.links import LinkRow
from streams.crm.model import SIDES, CompiledCrmMapping, Side
from streams.crm.reconcile import Plan, Snapshot, Trigger
from synapseops.errors import RetryableError


@dataclass
class Pair:
    """One record link (or a record not linked yet) and everything the batch knows of it."""

    indexes: list[int]
    triggers: list[Trigger]
    link: LinkRow | None
    ids: dict[Side, str | None]
    now: dict[Side, Snapshot | None] = field(default_factory=dict)
    match_value: str | None = None
    plan: Plan | None = None
    failure: BaseException | None = None

    def fail(self, exc: BaseException) -> None:
        # A retryable failure wins over a fatal one: trying again may fix the pair entirely.
        if self.failure is None or (
            isinstance(exc, RetryableError) and not isinstance(self.failure, RetryableError)
        ):
            self.failure = exc


async def write_all(
    mapping: CompiledCrmMapping, pairs: Sequence[Pair], clients: dict[Side, CrmClient]
) -> None:
    """Apply every ready pair's plan; failures land on the pairs (see the module doc)."""
    ready = [p for p in pairs if p.plan is not None and p.failure is None and p.plan.acts]
    await asyncio.gather(*(_side(mapping, side, ready, clients[side]) for side in SIDES))


def _object(mapping: CompiledCrmMapping, side: Side) -> str:
    spec = mapping.spec
    return spec.salesforce_object if side == "salesforce" else spec.hubspot_object


async def _side(
    mapping: CompiledCrmMapping, side: Side, pairs: Sequence[Pair], client: CrmClient
) -> None:
    kind = _object(mapping, side)
    updates: list[tuple[Pair, str, dict[str, Any]]] = []
    creates: list[tuple[Pair, dict[str, Any]]] = []
    deletes: list[tuple[Pair, str]] = []
    for pair in pairs:
        assert pair.plan is not None
        record_id = pair.ids.get(side)
        if side in pair.plan.deletes and record_id:
            deletes.append((pair, record_id))
        elif side in pair.plan.creates:
            creates.append((pair, pair.plan.writes[side]))
        elif side in pair.plan.writes and record_id:
            updates.append((pair, record_id, pair.plan.writes[side]))
    if updates:
        await _call(
            [p for p, _, _ in updates],
            client.update(kind, [(i, f) for _, i, f in updates]),
        )
    if creates:
        made = await _call(
            [p for p, _ in creates],
            client.upsert(kind, mapping.match_field(side), [f for _, f in creates]),
        )
        for (pair, _), result in zip(creates, made or [], strict=False):
            if isinstance(result, str):
                pair.ids[side] = result
    if deletes:
        await _call([p for p, _ in deletes], client.delete(kind, [i for _, i in deletes]))


async def _call(pairs: list[Pair], call: Any) -> list[Any] | None:
    """Await one batch call; put each record's failure (or the call's) on its pair."""
    try:
        results: list[Any] = list(await call)
    except Exception as exc:  # the call failed as a whole: every pair in it failed with it
        for pair in pairs:
            pair.fail(exc)
        return None
    for pair, result in zip(pairs, results, strict=False):
        if isinstance(result, Exception):
            pair.fail(result)
    return results
