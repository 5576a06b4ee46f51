"""The feeds' shapes read into CrmEvents, and the first echo layer: our own origin."""

from __future__ import annotations

import pytest

from streams.crm.events import (
    CrmChange,
    decode_change,
    hubspot_changes,
    link_key,
    salesforce_changes,
)
from synapseops.errors import SchemaInvalid, Undecodable


def _sf(replay: int, change: str, origin: str, ids: list[str], entity: str = "Lead") -> dict:
    header = {
        "entityName": entity,
        "recordIds": ids,
        "changeType": change,
        "changeOrigin": origin,
        "commitUser": "0055e0000000002AAA",
        "commitTimestamp": 1796140000000,
    }
    return {"payload": {"ChangeEventHeader": header}, "event": {"replayId": replay}}


def test_salesforce_own_changes_are_dropped_by_origin() -> None:
    events = [
        _sf(1, "CREATE", "", ["00Q1"]),
        _sf(2, "UPDATE", "com/salesforce/api/rest/60.0;client=synapseops", ["00Q1"]),
        _sf(3, "DELETE", "com/salesforce/api/rest/60.0;client=DataLoader", ["00Q2"]),
        _sf(4, "UPDATE", "", ["0031"], entity="Contact"),
    ]
    changes, own = salesforce_changes(9, "Lead", events, "synapseops", None)
    assert own == 1
    assert [(c.id, c.op, c.seq) for c in changes] == [("00Q1", "upsert", 1), ("00Q2", "delete", 3)]


def test_hubspot_events_become_one_change_per_object_and_ours_are_dropped() -> None:
    def event(eid: int, kind: str, obj: int, source: str = "CRM_UI", app: str = "") -> dict:
        return {
            "eventId": eid,
            "subscriptionType": kind,
            "objectId": obj,
            "changeSource": source,
            "sourceId": app,
        }

    events = [
        event(1000, "contact.creation", 51001),
        event(1001, "contact.propertyChange", 51001),
        event(2000, "contact.propertyChange", 51002, "INTEGRATION", "1160452"),
        event(3000, "deal.propertyChange", 51003),
        event(4000, "contact.deletion", 51001),
        event(5000, "contact.propertyChange", 51004, "INTEGRATION", "999"),  # another app
    ]
    changes, own = hubspot_changes(9, "contacts", events, "1160452")
    assert own == 1
    assert [(c.id, c.op, c.seq) for c in changes] == [
        ("51001", "delete", 4000),
        ("51004", "upsert", 5000),
    ]


def test_a_change_round_trips_and_bad_bytes_are_refused() -> None:
    change = CrmChange(9, "hubspot", "contacts", "51001", "upsert", 7, "1")
    assert decode_change(change.encode()) == change
    with pytest.raises(Undecodable):
        decode_change(b"{not json")
    with pytest.raises(SchemaInvalid):
        decode_change(
            b'{"mapping_id": 1, "side": "zoho", "object": "x", "id": "1", "op": "upsert", "seq": 1}'
        )


def test_a_linked_pair_shares_one_key_whichever_side_moved() -> None:
    assert link_key(9, "00Q1", "hubspot", "51001") == link_key(9, "00Q1", "salesforce", "00Q1")
    assert link_key(9, None, "hubspot", "51001") == b"9:hubspot:51001"
