"""One pair, two handlers at once: the change waiting on a retry tier and the same pair's next
change on the input topic, or a new record's first change keyed by its own id and a later one
keyed by its link. Both handlers must not write the one change twice (``sinks.crm.locks``).

Two sync handlers (as two consumers would run them) take events of the same pair at the same
moment, against the sandbox over real HTTP and a real database; the sandbox's writes log
counts what reached the other side.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streams.crm.events import CrmChange, link_key
from streams.crm.sync import CrmSync
from streams.road import Outcome, RoadRecord
from synapseops.settings import Settings
from tests.integration.crm.world import People, crm_world, lead_spec, make_pair


@pytest.fixture(scope="module")
def world(settings: Settings, kafka_bootstrap: str, database_url: str) -> Iterator[dict[str, Any]]:
    with crm_world(settings, database_url) as world:
        world["mapping_id"] = make_pair(world, lead_spec(), f"locks-{uuid.uuid4().hex[:6]}")
        world["people"] = People(world["sandbox"].url)
        yield world


def _event(mapping_id: int, record_id: str, seq: int, linked_sf: str | None) -> RoadRecord:
    change = CrmChange(mapping_id, "hubspot", "contacts", record_id, "upsert", seq)
    key = link_key(mapping_id, linked_sf, "hubspot", record_id)
    return RoadRecord("crm.changes", 0, seq, None, key, change.encode(), [])


async def _at_once(world: dict[str, Any], *events: RoadRecord) -> list[Any]:
    """Each event in its own handler, all at the same moment."""
    syncs = [CrmSync(world["settings"], world["engine"], None) for _ in events]
    try:
        answers = await asyncio.gather(*(s.handle([e]) for s, e in zip(syncs, events, strict=True)))
    finally:
        for sync in syncs:
            await sync.aclose()
    return [a for (a,) in answers]


def _contact(people: People, first: str) -> tuple[str, str]:
    """A person creates a HubSpot contact: its e-mail and id."""
    email = f"{first.lower()}.{uuid.uuid4().hex[:6]}@example.com"
    fields = {"email": email, "firstname": first, "lastname": "Locks", "company": "Locks"}
    return email, people.edit("hubspot", op="create", object_type="contacts", fields=fields)["id"]


def test_a_new_record_in_two_handlers_is_created_once(world: dict[str, Any]) -> None:
    people: People = world["people"]
    email, made = _contact(people, "Ada")
    first = _event(world["mapping_id"], made, 1, None)
    later = _event(world["mapping_id"], made, 2, None)
    answers = asyncio.run(_at_once(world, first, later))
    assert all(isinstance(a, Outcome) for a in answers), answers
    writes = [w for w in people.writes("salesforce") if w["fields"].get("Email") == email]
    assert [(w["op"], w["changed"] != []) for w in writes] == [("create", True)]


def test_a_change_in_two_handlers_is_written_once(world: dict[str, Any]) -> None:
    people: People = world["people"]
    email, made = _contact(people, "Bo")
    asyncio.run(_at_once(world, _event(world["mapping_id"], made, 10, None)))
    (created,) = [w for w in people.writes("salesforce") if w["fields"].get("Email") == email]
    people.edit(
        "hubspot",
        op="update",
        object_type="contacts",
        id=made,
        fields={"firstname": "Bowie"},
    )
    # the tier's retry of an older event and the input's next one, both of the linked pair
    tier = _event(world["mapping_id"], made, 11, created["id"])
    head = _event(world["mapping_id"], made, 12, created["id"])
    answers = asyncio.run(_at_once(world, tier, head))
    assert all(isinstance(a, Outcome) for a in answers), answers
    writes = [w for w in people.writes("salesforce") if w["id"] == created["id"]]
    assert [(w["op"], w["fields"]) for w in writes[1:]] == [("update", {"FirstName": "Bowie"})]
