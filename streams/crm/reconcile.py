"""What to write where for one linked pair of records: :func:`decide` (pure, no I/O).

The sync pipeline never applies a change event's payload blindly. For each record link it
reads both sides as they are *now* and compares them field by field with what it last synced
(the link's values per side): a field that moved on one side only travels to the other; a
field that moved on both is decided by its policy (:mod:`streams.crm.model`). Writes are the
fields whose mapped value differs from the other side's current value, never more — so a
redelivered event (after a crash, a retry, a replay) finds the two sides agreeing and writes
nothing: a change is written once.

Echo suppression, layer by layer (the first is the poller's, :mod:`streams.crm.feeds`):

1. origin: changes made by the integration's own user / app never become events;
2. hash: both sides' mapped fields hash to what the link last synced → nothing to do;
3. watermark: an event older than the newest one already applied for this side is skipped.

Deletes travel as tombstones: the other side's record is deleted (``propagate``) or the link
is only ended (``unlink``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streams.crm.model import SIDES, CompiledCrmMapping, Side, match_value, norm, other

Values = dict[str, str | None]


@dataclass(frozen=True)
class Snapshot:
    """One side's record as read now (``fields`` in that side's own names)."""

    id: str
    fields: Mapping[str, Any]
    modified_at: datetime


@dataclass(frozen=True)
class LinkState:
    """What the sync last knew of a pair (None ids: not on that side yet)."""

    id: int | None = None
    ids: Mapping[Side, str | None] = field(default_factory=dict)
    values: Mapping[Side, Values] = field(default_factory=dict)
    hashes: Mapping[Side, str | None] = field(default_factory=dict)
    watermarks: Mapping[Side, int] = field(default_factory=dict)
    deleted: bool = False
    held: frozenset[str] = frozenset()  # Salesforce field names with an open manual conflict


@dataclass(frozen=True)
class Trigger:
    """Why the pair is looked at: a change on ``side`` (``seq``: its feed position)."""

    side: Side
    op: str  # "upsert" | "delete"
    seq: int
    at_ms: int = 0  # when the change was committed on its side (for the sync lag)


@dataclass(frozen=True)
class Conflict:
    field: str  # the Salesforce field name (the pair is named by it)
    salesforce: str | None
    hubspot: str | None


@dataclass
class Plan:
    """What to do for one pair, and the link's state once it is done."""

    writes: dict[Side, dict[str, Any]] = field(default_factory=dict)
    creates: set[Side] = field(default_factory=set)
    deletes: set[Side] = field(default_factory=set)
    conflicts: list[Conflict] = field(default_factory=list)
    resolved: set[str] = field(default_factory=set)
    values: dict[Side, Values] = field(default_factory=dict)
    hashes: dict[Side, str | None] = field(default_factory=dict)
    unlink: bool = False
    skip: str | None = None  # why nothing is done (an Outcome's detail)
    notes: list[str] = field(default_factory=list)

    @property
    def acts(self) -> bool:
        return bool(self.writes or self.creates or self.deletes)


def values_hash(values: Values) -> str:
    text = json.dumps(sorted(values.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def side_values(mapping: CompiledCrmMapping, side: Side, record: Snapshot | None) -> Values:
    if record is None:
        return {}
    names = [*mapping.fields_of(side), mapping.match_field(side)]
    return {name: norm(record.fields.get(name)) for name in names}


def decide(
    mapping: CompiledCrmMapping,
    link: LinkState | None,
    now: Mapping[Side, Snapshot | None],
    triggers: list[Trigger],
    resolutions: Mapping[str, Side] | None = None,
) -> Plan:
    """The plan for one pair. Raises :class:`~synapseops.errors.MappingFailed` (fatal) when a
    record breaks the mapping's rules."""
    resolutions = resolutions or {}
    deletes = [t for t in triggers if t.op == "delete"]
    if deletes and not resolutions:
        return _tombstone(mapping, link, now, deletes[-1].side)
    if link is not None and link.deleted:
        return Plan(skip="the link was ended by a delete")
    if (
        link is not None
        and not resolutions
        and triggers
        # a full sync's look (seq -1) is no feed position: it always compares both sides
        and all(0 <= t.seq <= link.watermarks.get(t.side, -1) for t in triggers)
    ):
        return Plan(skip="already synced (watermark)")
    sf, hs = now.get("salesforce"), now.get("hubspot")
    if sf is None and hs is None:
        return Plan(skip="the record is gone on both sides")
    if sf is None or hs is None:
        present: Side = "salesforce" if sf is not None else "hubspot"
        return _one_side(mapping, link, now[present], present)
    current = {side: side_values(mapping, side, now[side]) for side in SIDES}
    hashes = {side: values_hash(current[side]) for side in SIDES}
    if (
        link is not None
        and not resolutions
        and all(link.hashes.get(side) == hashes[side] for side in SIDES)
    ):
        return Plan(skip="unchanged (hash)", values=current, hashes=dict(hashes))
    return _fields(mapping, link, sf, hs, current, resolutions)


def _tombstone(
    mapping: CompiledCrmMapping,
    link: LinkState | None,
    now: Mapping[Side, Snapshot | None],
    side: Side,
) -> Plan:
    if link is None:
        return Plan(skip="deleted before it was synced")
    if link.deleted:
        return Plan(skip="the link was already ended")
    target = other(side)
    if (
        mapping.spec.delete_policy == "propagate"
        and mapping.spec.allows(side)
        and now.get(target) is not None
    ):
        return Plan(deletes={target}, unlink=True)
    return Plan(unlink=True, notes=[f"link ended ({mapping.spec.delete_policy})"])


def _one_side(
    mapping: CompiledCrmMapping, link: LinkState | None, record: Snapshot | None, side: Side
) -> Plan:
    assert record is not None
    target = other(side)
    if link is not None and link.ids.get(target):
        return Plan(skip=f"the {target} record is deleted (its tombstone ends the link)")
    if not mapping.spec.allows(side):
        return Plan(skip=f"{side} → {target} is not synced by this mapping")
    key = record.fields.get(mapping.match_field(side))
    if match_value(key) is None:
        return Plan(skip=f"no match key ({mapping.match_field(side)}) to create it by")
    mapped = mapping.toward(target).apply(dict(record.fields)).raise_for_errors()
    fields = {name: value for name, value in mapped.items() if norm(value) is not None}
    fields[mapping.match_field(target)] = key
    current = side_values(mapping, side, record)
    after = {name: norm(fields.get(name)) for name in [*mapping.fields_of(target)]}
    after[mapping.match_field(target)] = norm(key)
    return Plan(
        writes={target: fields},
        creates={target},
        values={side: current, target: after},
        hashes={side: values_hash(current), target: values_hash(after)},
    )


def _fields(
    mapping: CompiledCrmMapping,
    link: LinkState | None,
    sf: Snapshot,
    hs: Snapshot,
    current: dict[Side, Values],
    resolutions: Mapping[str, Side],
) -> Plan:
    to_hs = mapping.to_hubspot.apply(dict(sf.fields)).raise_for_errors()
    to_sf = mapping.to_salesforce.apply(dict(hs.fields)).raise_for_errors()
    last: Mapping[Side, Values] = link.values if link is not None else {}
    held = link.held if link is not None else frozenset()
    plan = Plan(values={side: dict(current[side]) for side in SIDES})
    newer: Side = "salesforce" if sf.modified_at >= hs.modified_at else "hubspot"
    for pair in mapping.spec.fields:
        s_name, h_name = pair.salesforce, pair.hubspot
        s_now, h_now = current["salesforce"][s_name], current["hubspot"][h_name]
        if norm(to_hs.get(h_name)) == h_now and pair.salesforce not in resolutions:
            if s_name in held:
                plan.resolved.add(s_name)  # the two sides came to agree on their own
            continue
        moved = {
            "salesforce": link is None or last.get("salesforce", {}).get(s_name) != s_now,
            "hubspot": link is None or last.get("hubspot", {}).get(h_name) != h_now,
        }
        winner: Side | None
        if s_name in resolutions:
            winner = resolutions[s_name]
            plan.resolved.add(s_name)
        elif pair.policy == "fill_if_empty":
            winner = "salesforce" if h_now is None else "hubspot" if s_now is None else None
        elif moved["salesforce"] != moved["hubspot"]:
            winner = "salesforce" if moved["salesforce"] else "hubspot"
        elif pair.policy == "last_writer_wins":
            winner = newer
        elif pair.policy == "source_wins":
            winner = mapping.spec.source_side
        else:  # manual: held with both values until a person decides
            if s_name not in held:
                plan.conflicts.append(Conflict(s_name, s_now, h_now))
            # keep the last synced values: the field stays "moved on both sides"
            plan.values["salesforce"][s_name] = last.get("salesforce", {}).get(s_name)
            plan.values["hubspot"][h_name] = last.get("hubspot", {}).get(h_name)
            continue
        if winner is None:
            plan.notes.append(f"{s_name}: both set, fill_if_empty keeps both")
            continue
        if not mapping.spec.allows(winner) and s_name not in resolutions:
            plan.notes.append(f"{s_name}: {winner} → {other(winner)} is not synced")
            continue
        if winner == "salesforce":
            plan.writes.setdefault("hubspot", {})[h_name] = to_hs.get(h_name)
            plan.values["hubspot"][h_name] = norm(to_hs.get(h_name))
        else:
            plan.writes.setdefault("salesforce", {})[s_name] = to_sf.get(s_name)
            plan.values["salesforce"][s_name] = norm(to_sf.get(s_name))
    plan.hashes = {side: values_hash(plan.values[side]) for side in SIDES}
    if not plan.acts and not plan.conflicts and not plan.resolved:
        plan.skip = "; ".join(plan.notes) or "both sides already agree"
    return plan
