"""The sync's decisions for one pair (pure): policies, echo layers, tombstones, creates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streams.crm.model import compile_crm_mapping
from streams.crm.reconcile import LinkState, Snapshot, Trigger, decide, side_values, values_hash
from synapseops.errors import MappingFailed

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FIELDS = [
    {"salesforce": "FirstName", "hubspot": "firstname"},
    {"salesforce": "Title", "hubspot": "jobtitle", "policy": "manual"},
    {"salesforce": "Phone", "hubspot": "phone", "policy": "fill_if_empty"},
    {"salesforce": "LeadSource", "hubspot": "hs_lead_source", "policy": "source_wins"},
    {
        "salesforce": "NumberOfEmployees",
        "hubspot": "employees",
        "to_salesforce": ["to_int"],
        "to_hubspot": ["to_str"],
    },
]


def _mapping(**spec: Any) -> Any:
    return compile_crm_mapping(
        1,
        {
            "salesforce_object": "Lead",
            "hubspot_object": "contacts",
            "match": {"salesforce": "Email", "hubspot": "email"},
            "fields": FIELDS,
            **spec,
        },
    )


SF = {
    "FirstName": "Ada",
    "Title": "CFO",
    "Phone": "1",
    "LeadSource": "Web",
    "NumberOfEmployees": 12,
    "Email": "ada@example.com",
}
HS = {
    "firstname": "Ada",
    "jobtitle": "CFO",
    "phone": "1",
    "hs_lead_source": "Web",
    "employees": "12",
    "email": "ada@example.com",
}


def _now(
    sf: dict[str, Any] | None = None, hs: dict[str, Any] | None = None, hs_later: bool = True
) -> Any:
    later = T0 + timedelta(seconds=1 if hs_later else -1)
    return {
        "salesforce": Snapshot("00Q1", {**SF, **(sf or {})}, T0),
        "hubspot": Snapshot("51001", {**HS, **(hs or {})}, later),
    }


def _synced(mapping: Any, **extra: Any) -> LinkState:
    base = _now()
    values = {side: side_values(mapping, side, base[side]) for side in ("salesforce", "hubspot")}
    return LinkState(
        id=7,
        ids={"salesforce": "00Q1", "hubspot": "51001"},
        values=values,
        hashes={side: values_hash(v) for side, v in values.items()},
        watermarks={"salesforce": 10, "hubspot": 10},
        **extra,
    )


UP_SF = [Trigger("salesforce", "upsert", 11)]
UP_HS = [Trigger("hubspot", "upsert", 11)]


def test_a_change_on_one_side_is_written_to_the_other_only() -> None:
    mapping = _mapping()
    plan = decide(mapping, _synced(mapping), _now(sf={"FirstName": "Augusta"}), UP_SF)
    assert plan.writes == {"hubspot": {"firstname": "Augusta"}}
    assert plan.values["hubspot"]["firstname"] == "Augusta"


def test_types_are_coerced_by_the_mapping_engine_each_way() -> None:
    mapping = _mapping()
    plan = decide(mapping, _synced(mapping), _now(hs={"employees": "40"}), UP_HS)
    assert plan.writes == {"salesforce": {"NumberOfEmployees": 40}}


def test_an_echo_with_equal_values_is_skipped_by_hash() -> None:
    mapping = _mapping()
    plan = decide(mapping, _synced(mapping), _now(), UP_HS)
    assert plan.skip == "unchanged (hash)" and not plan.acts


def test_an_old_event_is_skipped_by_watermark() -> None:
    mapping = _mapping()
    stale = [Trigger("salesforce", "upsert", 9)]
    plan = decide(mapping, _synced(mapping), _now(sf={"FirstName": "X"}), stale)
    assert plan.skip == "already synced (watermark)"


def test_a_full_sync_look_is_never_a_stale_event() -> None:
    mapping = _mapping()
    look = [Trigger("salesforce", "upsert", -1)]
    plan = decide(mapping, _synced(mapping), _now(sf={"FirstName": "X"}), look)
    assert plan.writes == {"hubspot": {"firstname": "X"}}


def test_both_sides_edited_last_writer_wins() -> None:
    mapping = _mapping()
    now = _now(sf={"FirstName": "Sf"}, hs={"firstname": "Hs"}, hs_later=True)
    assert decide(mapping, _synced(mapping), now, UP_SF).writes == {
        "salesforce": {"FirstName": "Hs"}
    }
    now = _now(sf={"FirstName": "Sf"}, hs={"firstname": "Hs"}, hs_later=False)
    assert decide(mapping, _synced(mapping), now, UP_SF).writes == {"hubspot": {"firstname": "Sf"}}


def test_source_wins_takes_the_source_side() -> None:
    mapping = _mapping(source_side="hubspot")
    now = _now(sf={"LeadSource": "Phone"}, hs={"hs_lead_source": "Other"}, hs_later=False)
    assert decide(mapping, _synced(mapping), now, UP_SF).writes == {
        "salesforce": {"LeadSource": "Other"}
    }


def test_fill_if_empty_fills_and_never_overwrites() -> None:
    mapping = _mapping()
    plan = decide(mapping, _synced(mapping), _now(hs={"phone": ""}, sf={"Phone": "2"}), UP_SF)
    assert plan.writes == {"hubspot": {"phone": "2"}}
    plan = decide(mapping, _synced(mapping), _now(sf={"Phone": "2"}), UP_SF)
    assert not plan.acts and "fill_if_empty" in (plan.skip or "")


def test_manual_holds_the_field_with_both_values() -> None:
    mapping = _mapping()
    now = _now(sf={"Title": "CEO"}, hs={"jobtitle": "CTO"})
    plan = decide(mapping, _synced(mapping), now, UP_SF)
    assert not plan.acts
    assert [(c.field, c.salesforce, c.hubspot) for c in plan.conflicts] == [("Title", "CEO", "CTO")]
    # a field already held opens no second conflict
    held = decide(mapping, _synced(mapping, held=frozenset({"Title"})), now, UP_SF)
    assert held.conflicts == []
    # a person chose HubSpot's value: written to Salesforce, the conflict settled
    chosen = decide(
        mapping, _synced(mapping, held=frozenset({"Title"})), now, [], {"Title": "hubspot"}
    )
    assert chosen.writes == {"salesforce": {"Title": "CTO"}} and chosen.resolved == {"Title"}


def test_a_record_only_on_one_side_is_created_on_the_other_with_its_match_key() -> None:
    mapping = _mapping()
    now = {"salesforce": Snapshot("00Q1", SF, T0), "hubspot": None}
    plan = decide(mapping, None, now, UP_SF)
    assert plan.creates == {"hubspot"}
    assert plan.writes["hubspot"]["email"] == "ada@example.com"
    assert plan.writes["hubspot"]["employees"] == "12"


def test_a_one_way_mapping_writes_nothing_back() -> None:
    mapping = _mapping(directions="to_hubspot")
    plan = decide(mapping, _synced(mapping), _now(hs={"firstname": "Hs"}), UP_HS)
    assert not plan.acts
    now = {"salesforce": None, "hubspot": Snapshot("51001", HS, T0)}
    assert decide(mapping, None, now, UP_HS).skip is not None


def test_tombstones_follow_the_delete_policy() -> None:
    mapping = _mapping()
    delete = [Trigger("salesforce", "delete", 12)]
    now = {"salesforce": None, "hubspot": Snapshot("51001", HS, T0)}
    plan = decide(mapping, _synced(mapping), now, delete)
    assert plan.deletes == {"hubspot"} and plan.unlink
    unlink = decide(_mapping(delete_policy="unlink"), _synced(mapping), now, delete)
    assert unlink.deletes == set() and unlink.unlink
    assert decide(mapping, None, now, delete).skip == "deleted before it was synced"


def test_a_record_that_breaks_the_rules_fails_fatally() -> None:
    mapping = _mapping()
    with pytest.raises(MappingFailed):
        decide(mapping, _synced(mapping), _now(hs={"employees": "many"}), UP_HS)
