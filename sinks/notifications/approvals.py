"""Approvals, digests and throttles: the engine's steps that keep state across runs.

An approval is answered once: every answer is ``UPDATE … WHERE state = 'pending'``, so two
answers racing give one winner and one ``False``. A large payment's approval carries its
``settlement_id`` and is answered only from the settlement command stream (see
``streams/notifications/engine.py``), which makes it one decision with the settlement's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from sinks.db import database_errors
from sinks.notifications.tables import approvals, digests, run_steps, runs, throttles
from synapseops.ids import new_id

MAX_DIGEST_ITEMS = 20


@dataclass(frozen=True)
class Answer:
    """Who answered an approval, how and why."""

    decision: str  # approved | rejected | expired
    by: str
    reason: str | None
    at: datetime


class ApprovalStore:
    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    def for_step(self, run_id: str, step: int) -> dict[str, Any] | None:
        with database_errors("read approval"), self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(approvals).where(approvals.c.run_id == run_id, approvals.c.step == step)
                )
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def get(self, approval_id: str) -> dict[str, Any] | None:
        with database_errors("read approval"), self.engine.connect() as conn:
            row = (
                conn.execute(select(approvals).where(approvals.c.id == approval_id))
                .mappings()
                .first()
            )
        return dict(row) if row is not None else None

    def open(self, run_id: str, step: int, **values: Any) -> dict[str, Any]:
        """The run's approval for this step, asked once (a redo finds the first)."""
        with database_errors("open approval"), self.engine.begin() as conn:
            conn.execute(
                insert(approvals)
                .values(id=new_id("appr"), run_id=run_id, step=step, state="pending", **values)
                .on_conflict_do_nothing(constraint="uq_notification_approvals_step")
            )
            row = (
                conn.execute(
                    select(approvals).where(approvals.c.run_id == run_id, approvals.c.step == step)
                )
                .mappings()
                .one()
            )
        return dict(row)

    def answer(self, approval_id: str, answer: Answer) -> str | None:
        """Answer a pending approval; its run id, or None when it was answered already."""
        statement = (
            update(approvals)
            .where(approvals.c.id == approval_id, approvals.c.state == "pending")
            .values(
                state=answer.decision,
                answered_by=answer.by,
                answered_at=answer.at,
                reason=answer.reason,
            )
            .returning(approvals.c.run_id)
        )
        with database_errors("answer approval"), self.engine.begin() as conn:
            run_id = conn.execute(statement).scalar_one_or_none()
            if run_id is not None:
                conn.execute(
                    update(runs)
                    .where(runs.c.id == run_id)
                    .values(wake_at=answer.at, resume_sent_at=None)
                )
        return run_id

    def pending_for_settlement(self, settlement_id: str) -> list[str]:
        with database_errors("find settlement approvals"), self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(approvals.c.id).where(
                        approvals.c.settlement_id == settlement_id, approvals.c.state == "pending"
                    )
                ).scalars()
            )

    def pending_for_kind(self, trigger_kind: str) -> list[str]:
        with database_errors("find pending approvals"), self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(approvals.c.id).where(
                        approvals.c.trigger_kind == trigger_kind, approvals.c.state == "pending"
                    )
                ).scalars()
            )

    def expiry_sent(self, approval_id: str, now: datetime) -> None:
        with database_errors("mark approval expiry"), self.engine.begin() as conn:
            conn.execute(
                update(approvals).where(approvals.c.id == approval_id).values(expiry_sent_at=now)
            )

    def pending_age(self, now: datetime) -> tuple[int, float]:
        """How many approvals wait, and the oldest one's age in seconds."""
        with database_errors("count pending approvals"), self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.min(approvals.c.created_at)).where(
                    approvals.c.state == "pending"
                )
            ).one()
        count, oldest = int(row[0]), row[1]
        return count, (now - oldest).total_seconds() if oldest is not None else 0.0


def _step_done(conn: sqlalchemy.Connection, run_id: str, step: int) -> dict[str, Any] | None:
    """What this run's step decided already (a redo after a crash reads it, never recounts)."""
    found = conn.execute(
        select(run_steps.c.detail).where(run_steps.c.run_id == run_id, run_steps.c.step == step)
    ).scalar_one_or_none()
    return dict(found) if found is not None else None


class WindowStore:
    """Digests (collect per key and window, send one) and throttles (at most N per window)."""

    def __init__(self, engine: sqlalchemy.Engine) -> None:
        self.engine = engine

    def collect(
        self,
        run_id: str,
        step: int,
        *,
        workflow_id: int,
        key: str,
        window_end: datetime,
        channel: str,
        template: dict[str, Any],
        item: str,
    ) -> int:
        """Add the run's item to its digest once (with the run's step record); the digest id."""
        with database_errors("collect into digest"), self.engine.begin() as conn:
            done = _step_done(conn, run_id, step)
            if done is not None:
                return int(done["digest_id"])
            statement = insert(digests).values(
                workflow_id=workflow_id,
                step=step,
                key=key,
                window_end=window_end,
                channel=channel,
                template=template,
                count=1,
                items=[item],
            )
            upsert = statement.on_conflict_do_update(
                constraint="uq_notification_digests",
                set_={
                    "count": digests.c["count"] + 1,
                    "items": sqlalchemy.case(
                        (
                            func.jsonb_array_length(digests.c["items"]) < MAX_DIGEST_ITEMS,
                            digests.c["items"].op("||")(statement.excluded["items"]),
                        ),
                        else_=digests.c["items"],
                    ),
                },
            ).returning(digests.c.id)
            digest_id = int(conn.execute(upsert).scalar_one())
            conn.execute(
                insert(run_steps).values(
                    run_id=run_id,
                    step=step,
                    kind="digest",
                    detail={"digest_id": digest_id, "key": key},
                )
            )
        return digest_id

    def due_digests(self, now: datetime, resend_after_s: float) -> list[int]:
        """Closed windows not sent yet, marked as flushed now."""
        due = (
            select(digests.c.id)
            .where(
                digests.c.sent_at.is_(None),
                digests.c.window_end <= now,
                sqlalchemy.or_(
                    digests.c.flush_sent_at.is_(None),
                    digests.c.flush_sent_at < now - timedelta(seconds=resend_after_s),
                ),
            )
            .limit(200)
            .with_for_update(skip_locked=True)
        )
        with database_errors("find due digests"), self.engine.begin() as conn:
            ids = [int(i) for i in conn.execute(due).scalars()]
            if ids:
                conn.execute(update(digests).where(digests.c.id.in_(ids)).values(flush_sent_at=now))
        return ids

    def hold_digest(self, digest_id: int, until: datetime, resend_after_s: float) -> None:
        """The digest's flush waits until ``until`` (its channel answered 429): the waker
        takes a digest again ``resend_after_s`` after its last flush command, so the command
        is dated that much before ``until``."""
        at = until - timedelta(seconds=resend_after_s)
        with database_errors("hold digest"), self.engine.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id).values(flush_sent_at=at))

    def digest(self, digest_id: int) -> dict[str, Any] | None:
        with database_errors("read digest"), self.engine.connect() as conn:
            row = conn.execute(select(digests).where(digests.c.id == digest_id)).mappings().first()
        return dict(row) if row is not None else None

    def digest_sent(self, digest_id: int, now: datetime) -> None:
        with database_errors("mark digest sent"), self.engine.begin() as conn:
            conn.execute(update(digests).where(digests.c.id == digest_id).values(sent_at=now))

    def open_digests(self) -> int:
        with database_errors("count digests"), self.engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).where(digests.c.sent_at.is_(None))).scalar_one()
            )

    def throttle(
        self,
        run_id: str,
        step: int,
        *,
        workflow_id: int,
        key: str,
        window_start: datetime,
        limit: int,
    ) -> bool:
        """Whether this run may go on: counted once per run (a redo reads its verdict)."""
        with database_errors("throttle"), self.engine.begin() as conn:
            done = _step_done(conn, run_id, step)
            if done is not None:
                return bool(done["allowed"])
            counted = conn.execute(
                insert(throttles)
                .values(
                    workflow_id=workflow_id, step=step, key=key, window_start=window_start, count=1
                )
                .on_conflict_do_update(
                    constraint="pk_notification_throttles", set_={"count": throttles.c["count"] + 1}
                )
                .returning(throttles.c["count"])
            ).scalar_one()
            allowed = int(counted) <= limit
            conn.execute(
                insert(run_steps).values(
                    run_id=run_id,
                    step=step,
                    kind="throttle",
                    detail={"allowed": allowed, "key": key, "count": int(counted)},
                )
            )
        return allowed
