"""Record links, conflicts and the sync counts: what one batch of the sync reads and writes.

A batch reads the links of its records in one query (:func:`load_links`) and writes
everything it learnt in one transaction (:func:`record_batch`): each pair's link (ids, the
values and hashes as synced, the watermarks, which only move forward), its new conflicts
(one open conflict per link and field, the unique partial index), the conflicts the batch
settled, and the counts per sync state (written, skipped with reason, failed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from sinks.crm.full_syncs import count_done
from sinks.crm.tables import crm_conflicts, crm_links, crm_sync_states
from sinks.db import database_errors
from streams.crm.model import SIDES, Side
from streams.crm.reconcile import Conflict, LinkState, Plan

Bind = sqlalchemy.Engine | sqlalchemy.Connection


@contextmanager
def _using(bind: Bind, write: bool) -> Iterator[sqlalchemy.Connection]:
    """A connection of its own (committed at the end when ``write``), or the caller's — a
    batch holding its records' locks (:mod:`sinks.crm.locks`), which commits itself."""
    if isinstance(bind, sqlalchemy.Connection):
        yield bind
        return
    with bind.begin() if write else bind.connect() as conn:
        yield conn


@dataclass(frozen=True)
class LinkRow:
    id: int
    state: LinkState
    match_value: str | None


def load_links(
    bind: Bind,
    mapping_id: int,
    salesforce_ids: Iterable[str],
    hubspot_ids: Iterable[str],
) -> list[LinkRow]:
    sf, hs = sorted(set(salesforce_ids)), sorted(set(hubspot_ids))
    if not sf and not hs:
        return []
    links = crm_links.c
    statement = select(crm_links).where(
        links.mapping_id == mapping_id,
        or_(links.salesforce_id.in_(sf), links.hubspot_id.in_(hs)),
    )
    with database_errors("crm: read links"), _using(bind, write=False) as conn:
        rows = [dict(r) for r in conn.execute(statement).mappings()]
        held: dict[int, set[str]] = {}
        if rows:
            open_ones = select(crm_conflicts.c.link_id, crm_conflicts.c.field).where(
                crm_conflicts.c.link_id.in_([r["id"] for r in rows]),
                crm_conflicts.c.status == "open",
            )
            for link_id, name in conn.execute(open_ones):
                held.setdefault(int(link_id), set()).add(str(name))
    return [_link(row, frozenset(held.get(int(row["id"]), ()))) for row in rows]


def _link(row: Mapping[str, Any], held: frozenset[str]) -> LinkRow:
    state = LinkState(
        id=int(row["id"]),
        ids={side: row[f"{side}_id"] for side in SIDES},
        values={side: dict(row[f"{side}_values"] or {}) for side in SIDES},
        hashes={side: row[f"{side}_hash"] for side in SIDES},
        watermarks={side: int(row[f"{side}_watermark"]) for side in SIDES},
        deleted=row["deleted_at"] is not None,
        held=held,
    )
    return LinkRow(int(row["id"]), state, row["match_value"])


@dataclass
class PairOutcome:
    """One pair's result, to be written: its plan succeeded (every write done)."""

    link_id: int | None
    ids: dict[Side, str | None]
    match_value: str | None
    plan: Plan
    watermarks: dict[Side, int]


@dataclass
class Counts:
    """Per side of a mapping (the direction from it): what the batch did."""

    written: Counter[Side] = field(default_factory=Counter)
    skipped: dict[Side, Counter[str]] = field(default_factory=dict)
    failed: Counter[Side] = field(default_factory=Counter)

    def skip(self, side: Side, reason: str) -> None:
        self.skipped.setdefault(side, Counter())[_reason(reason)] += 1


def _reason(text: str) -> str:
    """A reason as counted: without the record-specific part after a colon."""
    return text.split(":", 1)[0][:80]


@dataclass(frozen=True)
class NewConflict:
    id: int
    link_id: int
    conflict: Conflict


def record_batch(
    bind: Bind,
    mapping_id: int,
    outcomes: Sequence[PairOutcome],
    counts: Counts,
    full_syncs: Mapping[int, Mapping[str, int]] | None = None,
) -> list[NewConflict]:
    """Write the batch's links, conflicts and counts in one transaction; the conflicts that
    are new (a redone batch opens none twice)."""
    opened: list[NewConflict] = []
    with database_errors("crm: record batch"), _using(bind, write=True) as conn:
        for outcome in outcomes:
            link_id = _save_link(conn, mapping_id, outcome)
            opened += _conflicts(conn, mapping_id, link_id, outcome.plan)
        _counts(conn, mapping_id, counts)
        if full_syncs:
            count_done(conn, full_syncs)
    return opened


def _save_link(conn: sqlalchemy.Connection, mapping_id: int, outcome: PairOutcome) -> int:
    plan = outcome.plan
    values: dict[str, Any] = {"last_synced_at": func.now(), "last_error": None}
    for side in SIDES:
        if plan.values.get(side) is not None:
            values[f"{side}_values"] = plan.values[side]
            values[f"{side}_hash"] = plan.hashes.get(side)
        if outcome.ids.get(side):
            values[f"{side}_id"] = outcome.ids[side]
    if plan.unlink:
        values["deleted_at"] = func.now()
    if outcome.match_value is not None:
        values["match_value"] = outcome.match_value
    links = crm_links.c
    if outcome.link_id is not None:
        for side in SIDES:
            column = links[f"{side}_watermark"]
            values[f"{side}_watermark"] = func.greatest(column, outcome.watermarks.get(side, -1))
        conn.execute(update(crm_links).where(links.id == outcome.link_id).values(**values))
        return outcome.link_id
    for side in SIDES:
        values[f"{side}_watermark"] = outcome.watermarks.get(side, -1)
    statement = (
        pg_insert(crm_links)
        .values(mapping_id=mapping_id, **values)
        .on_conflict_do_update(constraint="uq_crm_links_salesforce", set_=values)
        .returning(links.id)
    )
    return int(conn.execute(statement).scalar_one())


def _conflicts(
    conn: sqlalchemy.Connection, mapping_id: int, link_id: int, plan: Plan
) -> list[NewConflict]:
    opened: list[NewConflict] = []
    for conflict in plan.conflicts:
        statement = (
            pg_insert(crm_conflicts)
            .values(
                mapping_id=mapping_id,
                link_id=link_id,
                field=conflict.field,
                salesforce_value=conflict.salesforce,
                hubspot_value=conflict.hubspot,
            )
            .on_conflict_do_nothing(
                index_elements=["link_id", "field"], index_where=crm_conflicts.c.status == "open"
            )
            .returning(crm_conflicts.c.id)
        )
        found = conn.execute(statement).scalar_one_or_none()
        if found is not None:
            opened.append(NewConflict(int(found), link_id, conflict))
    if plan.resolved:
        c = crm_conflicts.c
        conn.execute(
            update(crm_conflicts)
            .where(
                and_(c.link_id == link_id, c.field.in_(sorted(plan.resolved)), c.status == "open")
            )
            .values(status="resolved", resolved_at=func.now())
        )
    return opened


def _counts(conn: sqlalchemy.Connection, mapping_id: int, counts: Counts) -> None:
    states = crm_sync_states.c
    for side in SIDES:
        skipped = counts.skipped.get(side, Counter())
        written, failed = counts.written[side], counts.failed[side]
        if not (written or failed or skipped):
            continue
        pairs: list[Any] = []
        for reason, count in skipped.items():
            pairs += [reason, func.coalesce(states.skipped_reasons[reason].as_integer(), 0) + count]
        reasons: Any = states.skipped_reasons
        if pairs:
            reasons = reasons.op("||", return_type=JSONB)(func.jsonb_build_object(*pairs))
        conn.execute(
            update(crm_sync_states)
            .where(states.mapping_id == mapping_id, states.side == side)
            .values(
                written=states.written + written,
                skipped=states.skipped + sum(skipped.values()),
                failed=states.failed + failed,
                skipped_reasons=reasons,
                last_synced_at=func.now(),
            )
        )


def conflict_with_link(
    engine: sqlalchemy.Engine, conflict_id: int
) -> tuple[dict[str, Any], LinkRow] | None:
    """A conflict and its link (with the fields it holds), or None when there is none."""
    with database_errors("crm: read conflict"), engine.connect() as conn:
        conflict = (
            conn.execute(select(crm_conflicts).where(crm_conflicts.c.id == conflict_id))
            .mappings()
            .one_or_none()
        )
        if conflict is None:
            return None
        link = (
            conn.execute(select(crm_links).where(crm_links.c.id == conflict["link_id"]))
            .mappings()
            .one()
        )
        held = select(crm_conflicts.c.field).where(
            crm_conflicts.c.link_id == link["id"], crm_conflicts.c.status == "open"
        )
        fields = frozenset(str(name) for name in conn.execute(held).scalars())
    return dict(conflict), _link(dict(link), fields)
